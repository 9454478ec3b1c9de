"""Decoding untrusted files: every failure is an ImageDecodeError with a reason; odd formats decode to RGB."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image
from tiny_data import encode, jpeg

from ocrdet.data.io import decode
from ocrdet.data.io.decode import ImageDecodeError, decode_bytes, decode_image


def test_sixteen_bit_grey_is_scaled_to_its_maximum() -> None:
    values = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    image = decode_bytes(encode(Image.fromarray(values), "PNG")).image
    assert image.dtype == np.uint8 and image.shape == (2, 2, 3)
    assert image[..., 0].tolist() == [[0, 63], [127, 255]]


@pytest.mark.parametrize("data", [jpeg(40, 30), encode(Image.new("RGB", (40, 30)), "PNG")], ids=["JPEG", "PNG"])
def test_pixel_limit_is_checked_before_decoding(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode, "MAX_PIXELS", 1000)
    with pytest.raises(ImageDecodeError, match="40x30 pixels exceeds the limit of 1000"):
        decode_bytes(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"GIF89a" + b"\x00" * 10, "not an image file in a known format"),
        (b"\xff\xd8\xff\xe0 nothing more", "corrupt JPEG: Truncated File Read"),
        (b"\xff\xd8 nothing", "corrupt JPEG: no valid header"),
        (b"%PDF-1.4", "not an image file in a known format"),
    ],
)
def test_bad_bytes_give_a_reason_and_no_pillow_internals(data: bytes, reason: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageDecodeError, match=reason) as error:
            decode_bytes(data)
    assert "BytesIO" not in str(error.value)


def test_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(ImageDecodeError, match="x.jpg: cannot read"):
        decode_image(tmp_path / "x.jpg")
    (tmp_path / "folder.jpg").mkdir()
    with pytest.raises(ImageDecodeError, match="folder.jpg: cannot read"):
        decode_image(tmp_path / "folder.jpg")
