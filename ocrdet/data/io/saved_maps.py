"""Probability maps saved by ``ocrdet predict --save-maps`` for ``ocrdet evaluate --sweep``.

One ``.npz`` with ``data`` (all maps flattened, float16), ``shapes`` (n, 2) int64 H, W, ``scales`` (n, 2) float32
sx, sy (map size / original size) and ``names`` (n,) str, the image file names of the ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class SavedMaps:
    """Probability maps of a run: ``maps`` float16 (H_i, W_i), ``scales`` float32 (n, 2), ``names``."""

    names: list[str]
    maps: list[np.ndarray]
    scales: np.ndarray


def save_maps(
    path: str | Path, names: Sequence[str], maps: Sequence[np.ndarray], scales: Sequence[tuple[float, float]]
) -> None:
    """Write maps (each (H, W) in [0, 1]) as float16 with their scales and image names, atomically."""
    if not len(names) == len(maps) == len(scales):
        raise ValueError(f"{len(names)} names, {len(maps)} maps and {len(scales)} scales")
    for name, m in zip(names, maps, strict=True):
        if np.ndim(m) != 2:
            raise ValueError(f"map of {name!r}: expected shape (H, W), got {np.shape(m)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(
        tmp,
        data=np.concatenate([np.asarray(m, dtype=np.float16).ravel() for m in maps])
        if maps
        else np.empty(0, np.float16),
        shapes=np.array([np.shape(m) for m in maps], dtype=np.int64).reshape(-1, 2),
        scales=np.asarray(scales, dtype=np.float32).reshape(-1, 2),
        names=np.array(names, dtype=str),
    )
    tmp.replace(path)


def load_maps(path: str | Path) -> SavedMaps:
    """Read what ``save_maps`` wrote; a clear error for a missing or malformed file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            data, shapes, scales, names = npz["data"], npz["shapes"], npz["scales"], npz["names"]
    except FileNotFoundError:
        raise ValueError(f"{path}: saved maps not found") from None
    except (KeyError, ValueError, OSError) as exc:
        raise ValueError(f"{path}: not a saved-maps .npz (data, shapes, scales, names): {exc}") from None
    sizes = shapes.prod(axis=1)
    if sizes.sum() != data.size or not len(shapes) == len(scales) == len(names):
        raise ValueError(f"{path}: saved maps are inconsistent ({len(names)} names, {len(shapes)} shapes)")
    ends = np.cumsum(sizes)[:-1]
    maps = [chunk.reshape(shape) for chunk, shape in zip(np.split(data, ends), shapes, strict=True)]
    return SavedMaps([str(n) for n in names], maps, scales)
