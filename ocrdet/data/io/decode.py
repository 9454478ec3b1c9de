"""Decode images once into the upright ("canonical") frame, fast.

JPEGs go through libjpeg-turbo (simplejpeg) with DCT-domain downscaling (1/2, 1/4, 1/8) when a
smaller image is enough; everything else (PNG, CMYK, 16-bit, grayscale) goes through Pillow.
The EXIF orientation is applied to the pixels and reported as a matrix, so that polygons in the
stored frame can follow the pixels (``DecodedImage.to_image``) and come back (``to_stored``).

Annotation points live in the stored frame (the raw JPEG pixel grid, before EXIF is applied). Points are
continuous coordinates: pixel (col, row) covers [col, col + 1] x [row, row + 1], so a horizontal flip of a
``width``-wide image maps x to ``width - x``.
"""

from __future__ import annotations

import io
import os
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
"""File name suffixes (lower case) taken for images when a folder is listed."""

MAX_PIXELS = 100_000_000
MAX_FILE_BYTES = 512 * 2**20
"""Image files larger than this are not read (an uncompressed 8-bit RGB image of ``MAX_PIXELS`` is 300 MB)."""
"""Refuse images with more stored pixels than this (decompression bombs)."""


JPEG_START = b"\xff\xd8"

ORIENTATION_TAG = 0x0112
"""The EXIF tag that holds the orientation (1..8)."""

INVERSE_ORIENTATION = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}
"""Orientation k -> the orientation whose transform undoes k's."""


def orientation_matrix(orientation: int, width: int, height: int) -> np.ndarray:
    """3x3 float64 affine matrix mapping stored-frame points (x, y, 1) to canonical points.

    ``width`` and ``height`` are the stored image's size; for orientations 5..8 the canonical
    image is ``height`` wide and ``width`` tall.
    """
    w, h = float(width), float(height)
    rows = {
        1: ((1, 0, 0), (0, 1, 0)),
        2: ((-1, 0, w), (0, 1, 0)),  # mirror left-right
        3: ((-1, 0, w), (0, -1, h)),  # rotate 180
        4: ((1, 0, 0), (0, -1, h)),  # mirror top-bottom
        5: ((0, 1, 0), (1, 0, 0)),  # transpose
        6: ((0, -1, h), (1, 0, 0)),  # rotate 90 clockwise
        7: ((0, -1, h), (-1, 0, w)),  # transverse
        8: ((0, 1, 0), (-1, 0, w)),  # rotate 90 counter-clockwise
    }
    if orientation not in rows:
        raise ValueError(f"EXIF orientation must be 1..8, got {orientation}")
    return np.array([*rows[orientation], (0, 0, 1)], dtype=np.float64)


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Stored (H, W[, C]) array -> canonical array, as ``PIL.ImageOps.exif_transpose`` does; a view, not a copy."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    if orientation not in ops:
        raise ValueError(f"EXIF orientation must be 1..8, got {orientation}")
    return ops[orientation](image)


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 3x3 affine ``matrix`` to (N, 2) points; returns float64 (N, 2)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return points @ matrix[:2, :2].T + matrix[:2, 2]


class ImageDecodeError(ValueError):
    """An image file that cannot be decoded; the message names the file and the reason."""


@dataclass(frozen=True)
class DecodedImage:
    image: np.ndarray
    """uint8 (H, W, 3) RGB, upright, possibly DCT-downscaled."""
    orientation: int
    stored_size: tuple[int, int]
    """(width, height) of the file's pixel grid, before orientation and scaling."""
    matrix: np.ndarray
    """3x3 float64: stored-frame points -> points in ``image``."""

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Stored-frame (N, 2) points -> float32 points in ``image``."""
        return transform_points(self.matrix, points).astype(np.float32)

    def to_stored(self, points: np.ndarray) -> np.ndarray:
        """Points in ``image`` -> float32 points in the stored frame."""
        return transform_points(np.linalg.inv(self.matrix), points).astype(np.float32)


def read_orientation(data: bytes) -> int:
    """EXIF orientation 1..8; 1 when missing or invalid (a bad tag must not stop training)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about corrupt EXIF blocks and large images
            with Image.open(io.BytesIO(data)) as img:
                value = img.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block is treated as "no orientation"
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def too_large(height: int, width: int) -> ImageDecodeError:
    """The error for an image of more than ``MAX_PIXELS`` stored pixels."""
    return ImageDecodeError(f"{width}x{height} pixels exceeds the limit of {MAX_PIXELS} (decompression bomb?)")


def _decode_jpeg(data: bytes, min_long_side: int | None) -> tuple[np.ndarray, tuple[int, int]] | None:
    """libjpeg-turbo decode -> (pixels, stored (width, height)); None for what simplejpeg can't do (CMYK, ...)."""
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    if colorspace not in ("RGB", "YCbCr", "Gray"):
        return None
    if height * width > MAX_PIXELS:
        raise too_large(height, width)
    min_h = min_w = 0
    if min_long_side:
        ratio = min(1.0, min_long_side / max(height, width))
        min_h, min_w = int(np.ceil(height * ratio)), int(np.ceil(width * ratio))
    try:
        pixels = simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=min_h, min_width=min_w)
    except ValueError as exc:
        raise ImageDecodeError(f"corrupt JPEG: {exc}") from None
    return pixels, (width, height)


def _decode_pillow(data: bytes) -> np.ndarray:
    """Pillow decode of any format it knows -> uint8 (H, W, 3); 16-bit grey is scaled to its maximum."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS is the limit here
            with Image.open(io.BytesIO(data)) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise too_large(img.height, img.width)
                if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                    array = np.asarray(img, dtype=np.float64)
                    scale = 255.0 / max(float(array.max()), 1.0)
                    return np.repeat((array * scale).astype(np.uint8)[..., None], 3, axis=2)
                return np.asarray(img.convert("RGB"))
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        count = f"{pixels.group(1)} pixels" if pixels else "more pixels"
        raise ImageDecodeError(f"{count} exceeds the limit of {MAX_PIXELS} (decompression bomb?)") from None
    except UnidentifiedImageError:
        what = "corrupt JPEG: no valid header" if data[:2] == JPEG_START else "not an image file in a known format"
        raise ImageDecodeError(what) from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on damaged or crafted files
        raise ImageDecodeError(f"{'corrupt JPEG' if data[:2] == JPEG_START else 'cannot decode'}: {exc}") from None


def decode_bytes(data: bytes, min_long_side: int | None = None) -> DecodedImage:
    """Decode ``data``; with ``min_long_side`` JPEGs may be DCT-downscaled to no less than it."""
    if not data:
        raise ImageDecodeError("empty file")
    decoded = _decode_jpeg(data, min_long_side) if data[:2] == JPEG_START else None
    if decoded is None:
        pixels = _decode_pillow(data)
        decoded = pixels, (pixels.shape[1], pixels.shape[0])
    stored, (width, height) = decoded
    orientation = read_orientation(data)
    image = np.ascontiguousarray(apply_orientation(stored, orientation))
    canonical = orientation_matrix(orientation, width, height)
    full_w, full_h = (height, width) if orientation >= 5 else (width, height)
    scale = np.diag([image.shape[1] / full_w, image.shape[0] / full_h, 1.0])
    return DecodedImage(image, orientation, (width, height), scale @ canonical)


def read_image_bytes(path: Path) -> bytes:
    """The bytes of an image file; ImageDecodeError names the file when it cannot be read.

    Only regular files of at most ``MAX_FILE_BYTES`` are read: a FIFO named ``.jpg`` would block forever and a
    link to ``/dev/zero`` would fill the memory. The file is opened non-blocking and checked on its descriptor.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ImageDecodeError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ImageDecodeError(f"{path}: cannot read: Is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise ImageDecodeError(f"{path}: not a regular file (a FIFO, device or socket); skipped")
        if info.st_size > MAX_FILE_BYTES:
            raise ImageDecodeError(f"{path}: {info.st_size} bytes exceeds the limit of {MAX_FILE_BYTES} for an image")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ImageDecodeError(f"{path}: cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:  # grew while being read
        raise ImageDecodeError(f"{path}: more than {MAX_FILE_BYTES} bytes, the limit for an image")
    return data


def decode_image(path: str | Path, min_long_side: int | None = None) -> DecodedImage:
    """Read and decode one image file; errors name the file."""
    path = Path(path)
    data = read_image_bytes(path)
    try:
        return decode_bytes(data, min_long_side)
    except ImageDecodeError as exc:
        raise ImageDecodeError(f"{path}: {exc}") from None
