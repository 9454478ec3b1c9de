"""Images as the browser gets them: upright (EXIF applied), JPEG, with polygons mapped into the same frame."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import simplejpeg

from ocrdet.data.io.decode import DecodedImage, decode_image, transform_points

VIEW_LONG_SIDE = 1280
"""JPEGs are decoded DCT-scaled to no less than this long side for display."""


@dataclass(frozen=True)
class ImageView:
    jpeg: bytes
    """The upright image, JPEG-encoded."""
    width: int
    height: int
    matrix: np.ndarray
    """3x3 float64: stored-frame points -> points in this view."""

    def points(self, polygons: Sequence[np.ndarray]) -> list[list[list[float]]]:
        """Stored-frame (N, 2) polygons -> nested lists of view coordinates (rounded to 0.1 px) for JSON."""
        return [np.round(transform_points(self.matrix, np.asarray(p)), 1).tolist() for p in polygons]

    def meta(self) -> dict[str, int]:
        return {"width": self.width, "height": self.height}


def view_of(decoded: DecodedImage) -> ImageView:
    """The view of an image decoded in memory (e.g. an upload)."""
    height, width = decoded.image.shape[:2]
    return ImageView(simplejpeg.encode_jpeg(decoded.image, quality=90), width, height, decoded.matrix)


@functools.lru_cache(maxsize=64)
def load_view(path: Path) -> ImageView:
    """The view of an image file, cached (a page asks for the image and for its polygons). Raises
    ``ImageDecodeError`` naming the file."""
    return view_of(decode_image(path, min_long_side=VIEW_LONG_SIDE))
