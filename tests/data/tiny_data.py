"""Helpers for a tiny hand-made data set whose files and annotations a test can break one at a time."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import simplejpeg
from PIL import Image

WIDTH, HEIGHT = 64, 48
SQUARE = [[10, 10], [40, 10], [40, 30], [10, 30]]
NAMES = ("a.jpg", "b.jpg", "c.jpg")


def jpeg(width: int = WIDTH, height: int = HEIGHT, seed: int = 0) -> bytes:
    """A small RGB JPEG of noise."""
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return simplejpeg.encode_jpeg(pixels, quality=90)


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def annotations(names: tuple[str, ...] = NAMES) -> dict[str, Any]:
    """One word (``w1``, a square) per image."""
    return {"images": {name: {"words": {"w1": {"points": SQUARE}}} for name in names}}


def write_json(root: Path, data: Any, split: str = "train") -> Path:
    """Write ``data`` (an object, or raw text) as ``jsons/<split>.json``."""
    path = root / "jsons" / f"{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def make_tiny(root: Path) -> Path:
    """ROOT with split ``train``: three 64x48 JPEGs a/b/c.jpg, each with one word ``w1``."""
    image_dir = root / "images" / "train"
    image_dir.mkdir(parents=True)
    for seed, name in enumerate(NAMES):
        (image_dir / name).write_bytes(jpeg(seed=seed))
    write_json(root, annotations())
    return root
