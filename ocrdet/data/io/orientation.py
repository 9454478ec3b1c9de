"""EXIF orientation: from the stored pixel frame to the upright (canonical) frame.

Annotation points live in the stored frame (the raw JPEG pixel grid, before EXIF is applied).
Points are continuous coordinates: pixel (col, row) covers [col, col + 1] x [row, row + 1], so a
horizontal flip of a ``width``-wide image maps x to ``width - x``.
"""

from __future__ import annotations

import numpy as np

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
