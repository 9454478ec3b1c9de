"""The four pages in a real browser (headless Chromium through Selenium): each loads and draws its polygons
or charts, an upload is detected and drawn, a bad upload shows its message. One screenshot per page."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from ocrdet.data.io.format import split_paths
from ocrdet.serve.app import create_app, open_workspace

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver (apt-get install)"
)
WAIT_S = 60


@pytest.fixture(scope="module")
def base_url(synth_root, run_dir, predictions_file) -> Iterator[str]:
    """The app served by uvicorn on a free port of 127.0.0.1, in a thread."""
    workspace = open_workspace(run_dir, synth_root, "val", predictions_file, None)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(workspace), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(WAIT_S)
    sock.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve_shots")


def count(driver, selector: str) -> int:
    return len(driver.find_elements(By.CSS_SELECTOR, selector))


def wait_for(driver, selector: str, at_least: int = 1) -> int:
    """Wait until ``selector`` matches ``at_least`` elements; fail with the page's error box otherwise."""
    try:
        WebDriverWait(driver, WAIT_S).until(lambda d: count(d, selector) >= at_least)
    except Exception:
        error = driver.find_element(By.ID, "error").text
        pytest.fail(f"{selector!r}: fewer than {at_least} after {WAIT_S} s; page error: {error!r}")
    return count(driver, selector)


def screenshot(driver, shots: Path, page: str) -> None:
    path = shots / f"{page}.png"
    driver.save_screenshot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_data_page_draws_ground_truth_and_filters(browser, base_url, shots):
    browser.get(f"{base_url}/data")
    drawn = wait_for(browser, "#view svg polygon")
    assert drawn == wait_for(browser, "#view polygon.care") + count(browser, "#view polygon.ignore")
    assert count(browser, "#images tr") == 4
    browser.find_element(By.ID, "filter").send_keys("00003")
    assert [r.text.split()[0] for r in browser.find_elements(By.CSS_SELECTOR, "#images tr") if r.is_displayed()] == [
        "val_00003.jpg"
    ]
    assert "none found" in browser.find_element(By.ID, "problems").text
    screenshot(browser, shots, "data")


def test_eval_page_colors_matched_missed_and_false_positives(browser, base_url, shots):
    browser.get(f"{base_url}/eval")
    wait_for(browser, "#images tr.item", 4)
    hmeans = [float(r.text.split()[-1]) for r in browser.find_elements(By.CSS_SELECTOR, "#images tr.item")]
    assert hmeans == sorted(hmeans)
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#images tr.item") if "val_00001" in r.text)
    row.click()
    for selector in ("polygon.gt.matched", "polygon.gt.missed", "polygon.det.matched", "polygon.det.false_positive"):
        wait_for(browser, f"#view {selector}")
    assert browser.find_element(By.ID, "image-name").text == "val_00001.jpg"
    screenshot(browser, shots, "eval")


def test_infer_page_detects_an_upload_and_refuses_a_bad_one(browser, base_url, shots, synth_root, tmp_path):
    browser.get(f"{base_url}/infer")
    upload = browser.find_element(By.ID, "upload")
    upload.send_keys(str(split_paths(synth_root, "val")[0] / "val_00002.jpg"))
    drawn = wait_for(browser, "#view polygon.detected")
    assert browser.find_element(By.ID, "result").text == f"{drawn} text regions"
    links = [a.get_attribute("download") for a in browser.find_elements(By.CSS_SELECTOR, "#downloads a")]
    assert links == ["val_00002.csv", "val_00002.json"]
    screenshot(browser, shots, "infer")

    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    upload.send_keys(str(bad))
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_element(By.ID, "error").text)
    assert "notes.txt: not an image that can be read" in browser.find_element(By.ID, "error").text
    assert count(browser, "#view polygon") == 0


def test_run_page_draws_curves_and_bench(browser, base_url, shots):
    browser.get(f"{base_url}/run")
    assert wait_for(browser, "#charts svg polyline", 4) == 4
    assert "ocrdet          96.0" in browser.find_element(By.CSS_SELECTOR, "#bench pre").text
    WebDriverWait(browser, WAIT_S).until(
        lambda d: d.execute_script("return document.querySelector('#bench img').naturalWidth") == 40
    )
    screenshot(browser, shots, "run")
