"""DBNet post-processing, polygon mode (MhLiao/DB ``SegDetectorRepresenter.polygons_from_bitmap``).

probability map -> ``prob > thresh`` -> outer contours -> ``approxPolyDP`` polygons -> score (mean
probability inside the polygon) -> unclip by ``area * unclip_ratio / perimeter`` -> polygons in the
original image's pixels.

Differences from DB, on purpose: the approxPolyDP tolerance is capped by the region's thickness (see
``APPROX_MAX_THICKNESS``); only outer contours (``RETR_EXTERNAL``; DB's ``RETR_LIST`` also turns the
holes of ring-shaped regions into boxes); ``min_size`` is checked on the shrunk polygon's minimum-area
rectangle before unclipping (DB's box-mode rule; its polygon mode checks ``min_size + 2`` after); the
unclip ratio is the configured one (DB's polygon mode hard-codes 2.0); coordinates stay float instead
of being rounded.

The stages are separate so that a threshold sweep can reuse them: ``find_candidates`` depends on
``thresh`` only, ``expand_candidates`` on ``unclip_ratio`` and ``min_size``, and ``box_thresh`` is a
filter on the scores (a candidate is kept when ``score >= box_thresh``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import cv2
import numpy as np
import pyclipper

from ocrdet.arrays import split_rows
from ocrdet.settings import check_settings

APPROX_EPSILON = 0.01
"""approxPolyDP tolerance as a fraction of the contour's perimeter (DB's value) ..."""
APPROX_MAX_THICKNESS = 0.25
"""... but at most this fraction of the region's thickness (2 * area / perimeter). Without the cap, every
region longer than ~50x its height collapses to 2 points and is dropped (a 600 x 10 px shrunk receipt
line vanishes). A fixed small fraction instead (PaddleOCR's 0.002) keeps pixel staircases: ~30 points
per box instead of ~4, and post-processing twice as slow."""


def approx_epsilon(contour: np.ndarray) -> float:
    """approxPolyDP tolerance (pixels) of an int32 (K, 1, 2) contour."""
    perimeter = cv2.arcLength(contour, True)
    thickness = 2 * cv2.contourArea(contour) / perimeter if perimeter else 0.0
    return min(APPROX_EPSILON * perimeter, APPROX_MAX_THICKNESS * thickness)


@dataclass(frozen=True)
class PostprocessConfig:
    thresh: float = 0.3
    """Binarization threshold of the probability map (``prob > thresh``)."""
    box_thresh: float = 0.6
    """Minimum mean probability inside a polygon."""
    max_candidates: int = 1000
    """At most this many contours are examined per map."""
    unclip_ratio: float = 1.5
    """Expansion distance = area * unclip_ratio / perimeter (map pixels)."""
    min_size: float = 3.0
    """Minimum short side, in map pixels, of the shrunk polygon's minimum-area rectangle."""

    def __post_init__(self) -> None:
        check_settings(self, "postprocess", POSTPROCESS_LIMITS)


POSTPROCESS_LIMITS = {
    "thresh": (0.0, 1.0),
    "box_thresh": (0.0, 1.0),
    "max_candidates": (1, 100_000),
    "unclip_ratio": (0.0, 20.0),
    "min_size": (0.0, 10_000.0),
}


@dataclass(frozen=True)
class Candidates:
    """Shrunk text regions of one map: int32 (K_i, 2) polygons in map pixels and their float32 scores."""

    polygons: list[np.ndarray]
    scores: np.ndarray


def _as_map(prob: np.ndarray) -> np.ndarray:
    prob = np.asarray(prob)
    if prob.ndim != 2:
        raise ValueError(f"expected one probability map of shape (H, W), got shape {prob.shape}")
    return np.ascontiguousarray(prob, dtype=np.float32)


def polygon_score(prob: np.ndarray, polygon: np.ndarray) -> float:
    """Mean of ``prob`` float32 (H, W) inside the int32 (K, 2) ``polygon`` (which lies inside the map),
    computed on the polygon's bounding-box crop."""
    x, y, w, h = cv2.boundingRect(polygon)
    mask = np.zeros((h, w), dtype=np.uint8)
    cv2.fillPoly(mask, [polygon], 1, offset=(-x, -y))
    return cv2.mean(prob[y : y + h, x : x + w], mask)[0]


def find_candidates(prob: np.ndarray, thresh: float, max_candidates: int, min_score: float = 0.0) -> Candidates:
    """Contours of ``prob > thresh`` simplified to polygons of >= 4 points, scored; ``score < min_score`` dropped."""
    prob = _as_map(prob)
    bitmap = (prob > thresh).astype(np.uint8)
    contours, _ = cv2.findContours(bitmap, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons, scores = [], []
    for contour in contours[:max_candidates]:
        approx = cv2.approxPolyDP(contour, approx_epsilon(contour), True).reshape(-1, 2)
        if len(approx) < 4:
            continue
        score = np.float32(polygon_score(prob, approx))
        if score < min_score:
            continue
        polygons.append(approx)
        scores.append(score)
    return Candidates(polygons, np.asarray(scores, dtype=np.float32))


def unclip(polygon: np.ndarray, unclip_ratio: float) -> list[list[int]] | None:
    """Expand an int32 (K, 2) polygon by ``area * unclip_ratio / perimeter`` (pyclipper, round joins).

    Returns the points of the one resulting polygon, or None when the offset gives none or several.
    """
    contour = polygon.reshape(-1, 1, 2)
    distance = cv2.contourArea(contour) * unclip_ratio / cv2.arcLength(contour, True)
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(polygon.tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    expanded = offset.Execute(distance)
    return expanded[0] if len(expanded) == 1 else None


def expand_candidates(
    candidates: Candidates,
    map_shape: tuple[int, int],
    unclip_ratio: float,
    min_size: float,
    scale: tuple[float, float] = (1.0, 1.0),
) -> tuple[list[np.ndarray], np.ndarray]:
    """Drop small candidates, unclip the rest and map them to original pixels (map coords / ``scale``).

    ``map_shape`` (H, W) of the probability map; ``scale`` (sx, sy) = map size / original size.
    Returns float32 (N_i, 2) polygons clipped to the original image and their float32 scores.
    """
    polygons, keep = [], []
    for i, polygon in enumerate(candidates.polygons):
        if min(cv2.minAreaRect(polygon)[1]) < min_size:
            continue
        expanded = unclip(polygon, unclip_ratio)
        if expanded is not None:
            polygons.append(expanded)
            keep.append(i)
    if not polygons:
        return [], np.empty(0, dtype=np.float32)
    points = np.array(list(chain.from_iterable(polygons)), dtype=np.float32) / np.asarray(scale, dtype=np.float32)
    limit = np.asarray(map_shape[::-1], dtype=np.float32) / np.asarray(scale, dtype=np.float32)
    points = np.minimum(np.maximum(points, 0), limit)
    ends = np.cumsum([len(p) for p in polygons])[:-1]
    return split_rows(points, ends), candidates.scores[keep]


def postprocess(
    prob: np.ndarray, config: PostprocessConfig, scale: tuple[float, float] = (1.0, 1.0)
) -> tuple[list[np.ndarray], np.ndarray]:
    """Text polygons of one probability map.

    ``prob``: float32 or float16 (H, W) in [0, 1]; ``scale`` (sx, sy) = map size / original image size.
    Returns float32 (N_i, 2) polygons in original image pixels and their float32 (n,) scores.
    """
    prob = _as_map(prob)
    candidates = find_candidates(prob, config.thresh, config.max_candidates, min_score=config.box_thresh)
    return expand_candidates(candidates, prob.shape, config.unclip_ratio, config.min_size, scale)
