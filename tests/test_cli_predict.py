"""``ocrdet predict`` through the CLI entry point: bad images are reported one by one, the good ones still predicted."""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

import ocrdet.data.io.decode
from ocrdet.cli import main
from ocrdet.data.io.decode import ImageDecodeError, read_image_bytes
from ocrdet.data.io.predictions import read_predictions
from ocrdet.data.io.saved_maps import load_maps


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint: Path) -> Path:
    """The suite's untrained small DBNet (``tests/conftest.py``); thresholds 0 find a polygon on any image."""
    return tiny_checkpoint


def image_folder(folder: Path) -> Path:
    """a_truncated.jpg (first half of a JPEG), b_good.jpg, c_text.jpg (a text file): the good one in between."""
    folder.mkdir()
    image = np.random.default_rng(0).integers(0, 256, (96, 160, 3), dtype=np.uint8)
    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
    (folder / "a_truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "b_good.jpg").write_bytes(jpeg)
    (folder / "c_text.jpg").write_text("not an image\n")
    return folder


def test_predict_goes_on_past_bad_images_and_exits_1(checkpoint, tmp_path, capsys):
    images = image_folder(tmp_path / "images")
    out, overlays, maps = tmp_path / "preds.csv", tmp_path / "overlays", tmp_path / "maps.npz"
    argv = ["predict", str(checkpoint), str(images), "--out", str(out), "--overlay", str(overlays)]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--save-maps", str(maps)])
    assert exit_info.value.code == "ocrdet predict: 2 of 3 images could not be read"  # a message: exit status 1
    captured = capsys.readouterr()
    truncated, text = [line for line in captured.err.splitlines() if line.startswith("error ")]  # not tqdm's bar
    assert truncated.startswith(f"error {images / 'a_truncated.jpg'}: corrupt JPEG: ")  # libjpeg words the rest
    assert text == f"error {images / 'c_text.jpg'}: not an image file in a known format"
    assert re.match(r"\d+ polygons? in 1 image -> ", captured.out)  # "1 image", not "1 images"
    predictions = read_predictions(out)
    assert list(predictions) == ["b_good.jpg"] and len(predictions["b_good.jpg"]) >= 1
    assert [p.name for p in overlays.iterdir()] == ["b_good.png"]
    assert load_maps(maps).names == ["b_good.jpg"]


def test_slivers_predict_like_any_other_image(checkpoint, tmp_path, capsys):
    """30000 x 10 and 10 x 30000 pixels: the letterbox keeps a 1-pixel side instead of resizing to 0 pixels."""
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, shape in (("tall.png", (30000, 10, 3)), ("wide.png", (10, 30000, 3)), ("usual.png", (96, 160, 3))):
        cv2.imwrite(str(folder / name), rng.integers(0, 256, shape, dtype=np.uint8))
    out, maps = tmp_path / "preds.csv", tmp_path / "maps.npz"
    main(["predict", str(checkpoint), str(folder), "--out", str(out), "--overlay", str(tmp_path / "ov")])
    assert sorted(read_predictions(out)) == ["tall.png", "usual.png", "wide.png"]
    assert len(list((tmp_path / "ov").iterdir())) == 3
    main(["predict", str(checkpoint), str(folder / "wide.png"), "--out", str(out), "--save-maps", str(maps)])
    assert load_maps(maps).maps[0].shape[0] >= 1


def test_a_fifo_or_device_named_jpg_is_skipped_with_a_message(checkpoint, tmp_path, capsys):
    """A FIFO would block the read forever, /dev/zero would fill the memory: neither is opened for reading."""
    folder = image_folder(tmp_path / "images")
    os.mkfifo(folder / "d_fifo.jpg")
    (folder / "e_zero.jpg").symlink_to("/dev/zero")
    out = tmp_path / "preds.csv"
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(checkpoint), str(folder), "--out", str(out)])
    assert exit_info.value.code == "ocrdet predict: 4 of 5 images could not be read"
    err = capsys.readouterr().err
    for name in ("d_fifo.jpg", "e_zero.jpg"):
        assert f"error {folder / name}: not a regular file (a FIFO, device or socket); skipped" in err
    assert list(read_predictions(out)) == ["b_good.jpg"]


def test_an_image_file_over_the_byte_limit_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(ocrdet.data.io.decode, "MAX_FILE_BYTES", 1000)
    path = tmp_path / "big.jpg"
    path.write_bytes(b"\xff\xd8" + bytes(2000))
    with pytest.raises(ImageDecodeError, match=f"{path}: 2002 bytes exceeds the limit of 1000 for an image"):
        read_image_bytes(path)
