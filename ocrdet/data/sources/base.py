"""What every source gives: ``Sample`` (decoded, upright, shrunk) or ``EncodedSample`` (bytes), and ``Source``.

Three backends read sources: the native Dataset (``get``), the shard stream (``EncodedSample`` from tar
members) and DALI (``encoded``: bytes, decoded by DALI). ``shrink_sample`` is the one way a decoded image
becomes a ``Sample``, so the folder, the cache (written from folder samples) and the shards hold the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from ocrdet.data.check import Problem
from ocrdet.data.io.decode import DecodedImage
from ocrdet.data.io.orientation import transform_points


@dataclass(frozen=True)
class Sample:
    """One annotated image, upright and resized."""

    image: np.ndarray
    """uint8 (H, W, 3) RGB; from a cache a read-only view into its memmap."""
    polygons: list[np.ndarray]
    """float32 (N_i, 2) points in ``image``'s pixel frame."""
    ignore: np.ndarray
    """bool (len(polygons),) don't-care flags."""
    name: str
    """File name relative to ``images/<split>/``."""
    matrix: np.ndarray
    """float64 (3, 3): stored-frame (annotation file) points -> ``image`` points."""


@dataclass(frozen=True)
class EncodedSample:
    """One sample not yet decoded: encoded image bytes and polygons (a shard member, or a file's bytes)."""

    data: bytes
    """The encoded image (in a shard upright: its EXIF orientation, if any, is 1)."""
    polygons: list[np.ndarray]
    """float32 (N_i, 2) points in ``data``'s stored pixel frame."""
    ignore: np.ndarray
    """bool (len(polygons),) don't-care flags."""
    name: str
    """File name relative to ``images/<split>/``."""
    matrix: np.ndarray
    """float64 (3, 3): annotation-file points -> ``data``'s stored pixel frame."""
    key: str
    """The sample's key in its shard (its index for a folder)."""


class Source(Protocol):
    """What a Dataset needs from a source of samples."""

    names: list[str]
    skipped: list[Problem]
    """Images the data check left out (``on_bad_sample=skip``), for the run's ``skipped.json``."""

    def __len__(self) -> int: ...

    def get(self, index: int) -> Sample: ...


def resize_long_side(image: np.ndarray, long_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Shrink uint8 (H, W, 3) ``image`` (INTER_AREA) so its long side is at most ``long_side``.

    Returns the (possibly unchanged) image and the float64 (3, 3) matrix mapping its points into the result.
    """
    height, width = image.shape[:2]
    if max(height, width) <= long_side:
        return image, np.eye(3)
    ratio = long_side / max(height, width)
    new_w, new_h = max(1, round(width * ratio)), max(1, round(height * ratio))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return resized, np.diag([new_w / width, new_h / height, 1.0])


def shrink_sample(
    decoded: DecodedImage,
    name: str,
    polygons: list[np.ndarray],
    ignore: np.ndarray,
    long_side: int | None,
    stored: np.ndarray | None = None,
) -> Sample:
    """The Sample of a decoded image: shrunk to ``long_side`` (None: full size), its polygons (in the decoded
    file's stored frame) moved along; ``stored`` maps annotation-file points into that frame (default: same)."""
    image, resize = (decoded.image, np.eye(3)) if long_side is None else resize_long_side(decoded.image, long_side)
    matrix = resize @ decoded.matrix
    moved = [transform_points(matrix, p).astype(np.float32) for p in polygons]
    full = matrix if stored is None else matrix @ stored
    return Sample(np.ascontiguousarray(image), moved, np.asarray(ignore, dtype=bool), name, full)
