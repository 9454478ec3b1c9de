"""The app stays local: host check (DNS rebinding), security headers, uploads refused by size before spooling,
upload names that are file names, a warning when bound to a network address."""

from __future__ import annotations

import asyncio

import pytest
import uvicorn

from ocrdet.data.io.format import split_paths
from ocrdet.serve.app import create_app, open_workspace, serve
from ocrdet.serve.security import SECURITY_HEADERS, allowed_hosts

SPLIT = "val"


def test_a_foreign_host_name_gets_nothing(client):
    rebound = client.get("/api/info", headers={"host": "attacker.example:8000"})
    assert rebound.status_code == 400 and "/" not in rebound.text  # no paths, no data
    assert client.get("/api/info", headers={"host": "localhost:8000"}).status_code == 200
    assert client.get("/api/info").status_code == 200  # 127.0.0.1


def test_every_response_carries_the_security_headers(client):
    for url in ("/data", "/static/data.js", "/api/info", "/api/image/none.jpg"):
        response = client.get(url)
        assert {k: response.headers.get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS, url
    assert "frame-ancestors 'none'" in SECURITY_HEADERS["Content-Security-Policy"]


def test_allowed_hosts_follow_the_address_bound():
    assert allowed_hosts("127.0.0.1") == ["127.0.0.1", "localhost", "::1"]
    assert allowed_hosts("192.168.1.5", ["box.lan"]) == ["127.0.0.1", "localhost", "::1", "box.lan", "192.168.1.5"]
    assert "attacker.example" not in allowed_hosts("0.0.0.0")


def test_an_oversized_upload_is_refused_from_its_content_length_alone(synth_root):
    """The body is never read: ``receive`` fails the test if the app asks for it."""
    app = create_app(open_workspace(None, synth_root, SPLIT, None, None))
    sent: list[dict] = []

    async def receive() -> dict:
        raise AssertionError("the app read the body of an upload whose declared size is over the limit")

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [(b"host", b"127.0.0.1:8000"), (b"content-length", str(500 * 2**20).encode())]
    headers.append((b"content-type", b"multipart/form-data; boundary=x"))
    scope = {"type": "http", "method": "POST", "path": "/api/detect", "headers": headers, "query_string": b""}
    asyncio.run(app({**scope, "http_version": "1.1", "scheme": "http", "root_path": ""}, receive, send))
    assert sent[0]["status"] == 413
    assert b"larger than the upload limit of 50 MiB" in sent[1]["body"]


@pytest.mark.parametrize(
    ("sent", "shown"),
    [("/etc/receipt.jpg", "receipt.jpg"), ("../../receipt.jpg", "receipt.jpg"), ("C:\\x\\receipt.jpg", "receipt.jpg")],
)
def test_an_upload_is_named_by_its_base_name(client, synth_root, sent, shown):
    image = next(split_paths(synth_root, SPLIT)[0].iterdir()).read_bytes()
    response = client.post("/api/detect", files={"file": (sent, image, "image/jpeg")})
    assert response.status_code == 200 and response.json()["name"] == shown
    assert response.json()["csv"].splitlines()[1].startswith(f"{shown},")


@pytest.mark.parametrize("sent", [b".", b"..", b"a\x00.jpg", b"/", b"x/.."])
def test_an_upload_name_that_is_no_file_name_is_a_400(client, synth_root, sent):
    """Sent byte for byte as curl would (httpx would percent-encode the NUL)."""
    image = next(split_paths(synth_root, SPLIT)[0].iterdir()).read_bytes()
    head = b'--x\r\nContent-Disposition: form-data; name="file"; filename="' + sent + b'"\r\n\r\n'
    body = head + image + b"\r\n--x--\r\n"
    response = client.post("/api/detect", content=body, headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 400 and "not a file name" in response.json()["detail"]


def test_binding_a_network_address_warns(synth_root, monkeypatch, capsys):
    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: started.update(kwargs))
    serve(data=synth_root, host="0.0.0.0", port=8123)
    assert started == {"host": "0.0.0.0", "port": 8123, "log_level": "warning"}
    assert "warning: bound to 0.0.0.0, so every machine that can reach this one" in capsys.readouterr().err
    serve(data=synth_root)
    assert "warning" not in capsys.readouterr().err
