"""DB training targets: the shrunk text map and the threshold (border) map, vectorized.

Semantics are those of MhLiao/DB's ``MakeSegDetectionData`` followed by ``MakeBorderMap`` in training mode:

1. points are clipped to the canvas; polygons with |area| < 1, don't-care ones and those whose bounding box is
   thinner than ``min_text_size`` are painted 0 into ``prob_mask`` and take no further part;
2. each other polygon is shrunk by D = A (1 - r^2) / L with pyclipper (round joins, integer coordinates); one that
   vanishes is treated as don't-care, otherwise the first resulting path is painted 1 into ``prob``;
3. the same polygon dilated by D is painted 1 into ``thresh_mask`` and, inside its bounding box, the border value
   1 - clip(dist / D, 0, 1) is max-combined into the threshold canvas, ``dist`` being DB's point-to-edge distance
   (below), minimised over the polygon's edges.

DB's distance to an edge AB from pixel P is the perpendicular distance to the line AB when the angle APB is obtuse
(P inside the circle on AB as diameter) and min(|PA|, |PB|) otherwise; this is not the Euclidean distance to the
segment near the ends of an edge, and it is kept as is. DB's law-of-cosines formula turns NaN, and so drops the
pixel from the border map, on a zero-length edge's vertex and at some pixels exactly on an edge; here, as in the
reference, those pixels get their true value (repeated consecutive vertices are merged first).

The per-polygon, per-edge textbook version is ``ocrdet.bench.reference.reference_db_targets``; tests compare both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import pyclipper
import shapely


@dataclass(frozen=True)
class TargetConfig:
    """Settings of the DB targets (the DB paper's defaults).

    shrink_ratio: r in the offset distance D = A (1 - r^2) / L, in (0, 1).
    thresh_min, thresh_max: range the border map is scaled to, 0 <= thresh_min < thresh_max <= 1.
    min_text_size: polygons whose bounding box is thinner than this many pixels are don't-care.
    """

    shrink_ratio: float = 0.4
    thresh_min: float = 0.3
    thresh_max: float = 0.7
    min_text_size: float = 8.0

    def __post_init__(self) -> None:
        if not 0.0 < self.shrink_ratio < 1.0:
            raise ValueError(f"shrink_ratio must lie in (0, 1), got {self.shrink_ratio}")
        if not 0.0 <= self.thresh_min < self.thresh_max <= 1.0:
            raise ValueError(
                f"need 0 <= thresh_min < thresh_max <= 1, got thresh_min={self.thresh_min}, "
                f"thresh_max={self.thresh_max}"
            )
        if not self.min_text_size >= 0.0:
            raise ValueError(f"min_text_size must be >= 0, got {self.min_text_size}")


def check_target_inputs(
    polygons: Sequence[np.ndarray], ignore: np.ndarray | Sequence[bool], height: int, width: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Validate the inputs of a target builder.

    Returns the polygons as float64 (N_i, 2) arrays (copies) and ``ignore`` as a bool (len(polygons),) array.
    Raises ValueError naming the offending polygon or argument.
    """
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    flags = np.asarray(ignore)
    if flags.ndim != 1 or len(flags) != len(polygons):
        raise ValueError(f"ignore must be a flat array with one flag per polygon ({len(polygons)}), got {flags.shape}")
    out = []
    for i, polygon in enumerate(polygons):
        points = np.array(polygon, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] < 3:
            raise ValueError(f"polygon {i}: expected an (N, 2) array with N >= 3 points, got shape {points.shape}")
        if not np.isfinite(points).all():
            raise ValueError(f"polygon {i}: coordinates must be finite, got {points.tolist()}")
        out.append(points)
    return out, flags.astype(bool)


def offset_polygon(polygon: np.ndarray, distance: float) -> np.ndarray | None:
    """First path of pyclipper's round-join offset of a closed polygon, as int32 (M, 2); None if it vanishes.

    Coordinates are truncated to integers by pyclipper; a negative ``distance`` shrinks.
    """
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(polygon, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    paths = offset.Execute(distance)
    if not paths:
        return None
    return np.array(paths[0], dtype=np.int32).reshape(-1, 2)


def make_db_targets(
    polygons: Sequence[np.ndarray],
    ignore: np.ndarray | Sequence[bool],
    height: int,
    width: int,
    config: TargetConfig = TargetConfig(),
) -> dict[str, np.ndarray]:
    """DB targets of one image.

    polygons: float (N_i, 2) arrays of (x, y) points in pixels of the (height, width) canvas; ignore: bool (N,)
    don't-care flags. Returns float32 (height, width) maps ``prob`` (shrunk text = 1), ``prob_mask`` (0 on
    don't-care, too small and unshrinkable polygons, else 1), ``thresh`` (border map in [thresh_min, thresh_max])
    and ``thresh_mask`` (1 inside the dilated polygons).
    """
    polys, flags = check_target_inputs(polygons, ignore, height, width)
    prob = np.zeros((height, width), dtype=np.float32)
    prob_mask = np.ones((height, width), dtype=np.float32)
    border = np.zeros((height, width), dtype=np.float32)
    thresh_mask = np.zeros((height, width), dtype=np.float32)
    if polys:
        _draw_targets(polys, flags, config, prob, prob_mask, border, thresh_mask)
    thresh = border * np.float32(config.thresh_max - config.thresh_min) + np.float32(config.thresh_min)
    return {"prob": prob, "prob_mask": prob_mask, "thresh": thresh, "thresh_mask": thresh_mask}


def _draw_targets(
    polys: list[np.ndarray],
    ignore: np.ndarray,
    config: TargetConfig,
    prob: np.ndarray,
    prob_mask: np.ndarray,
    border: np.ndarray,
    thresh_mask: np.ndarray,
) -> None:
    """Paint all polygons into the four float32 (H, W) canvases, in place."""
    polys, signed_area, sides = _canonical_polygons(polys, *prob.shape)
    drop = ignore | (np.abs(signed_area) < 1.0) | (sides < config.min_text_size)
    area, length = np.zeros(len(polys)), np.ones(len(polys))
    kept = np.flatnonzero(~drop)
    if len(kept):
        counts = [len(polys[i]) for i in kept]
        points = np.concatenate([polys[i] for i in kept])
        shapes = shapely.polygons(shapely.linearrings(points, indices=np.repeat(np.arange(len(kept)), counts)))
        area[kept], length[kept] = shapely.area(shapes), shapely.length(shapes)
    distance = area * (1.0 - config.shrink_ratio**2) / length
    for i, polygon in enumerate(polys):
        shrunk = None if drop[i] else offset_polygon(polygon, -distance[i])
        if shrunk is None:
            cv2.fillPoly(prob_mask, [polygon.astype(np.int32)], 0.0)
            continue
        cv2.fillPoly(prob, [shrunk], 1.0)
        dilated = offset_polygon(polygon, distance[i])
        if dilated is not None:
            cv2.fillPoly(thresh_mask, [dilated], 1.0)
            _draw_border(border, polygon, dilated, distance[i])


def _canonical_polygons(
    polys: list[np.ndarray], height: int, width: int
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Polygons as DB prepares them, all at once on the concatenated points.

    Points are clipped to the canvas, repeated consecutive vertices merged, and polygons with a positive DB signed
    area (sum of (x' - x)(y' + y) / 2) reversed. Returns the float64 (M_i, 2) polygons, their signed areas before
    reversal and the shorter sides of their bounding boxes, both float64 (N,).
    """
    counts = np.array([len(p) for p in polys])
    ends = np.cumsum(counts)
    starts = ends - counts
    points = np.clip(np.concatenate(polys), 0.0, [width - 1, height - 1])
    sides = np.min(np.maximum.reduceat(points, starts) - np.minimum.reduceat(points, starts), axis=1)
    previous = np.arange(len(points)) - 1
    previous[starts] = ends - 1
    distinct = (points != points[previous]).any(axis=1)
    distinct[starts] |= np.add.reduceat(distinct, starts) == 0
    points = points[distinct]
    counts = np.add.reduceat(distinct, starts)
    ends = np.cumsum(counts)
    starts = ends - counts
    following = np.arange(len(points)) + 1
    following[ends - 1] = starts
    x, y = points[:, 0], points[:, 1]
    signed_area = np.add.reduceat((x[following] - x) * (y[following] + y), starts) / 2.0
    first, last = np.repeat(starts, counts), np.repeat(ends - 1, counts)
    order = np.where(np.repeat(signed_area > 0, counts), first + last - np.arange(len(points)), np.arange(len(points)))
    return np.split(points[order], ends[:-1]), signed_area, sides


def _draw_border(canvas: np.ndarray, polygon: np.ndarray, dilated: np.ndarray, distance: float) -> None:
    """Max-combine 1 - clip(dist / distance, 0, 1) over the dilated polygon's box into float32 (H, W) ``canvas``.

    polygon: float64 (V, 2) inside the canvas; dilated: int32 (M, 2), around it. All V edges are handled at once,
    broadcast over the pixels of the box clipped to the canvas as float64 arrays of shape (V, h, w).
    """
    x0, y0 = np.maximum(dilated.min(axis=0), 0)
    x1, y1 = np.minimum(dilated.max(axis=0), [canvas.shape[1] - 1, canvas.shape[0] - 1])
    closed = np.concatenate([polygon, polygon[:1]])[:, :, None, None]
    dx = np.arange(x0, x1 + 1, dtype=np.float64) - closed[:, 0]
    dy = np.arange(y0, y1 + 1, dtype=np.float64)[:, None] - closed[:, 1]
    squared = dx * dx + dy * dy
    to_start, to_end = squared[:-1], squared[1:]
    ex, ey = closed[1:, 0] - closed[:-1, 0], closed[1:, 1] - closed[:-1, 1]
    edge = ex * ex + ey * ey
    # DB's test on the sign of cos(APB), with the reference's operands and order, so both take the same branch.
    far = edge - to_start - to_end < 0
    norm = np.sqrt(edge)
    nearest = (ex / norm) * dy[:-1] - (ey / norm) * dx[:-1]
    np.multiply(nearest, nearest, out=nearest)
    np.minimum(to_start, to_end, out=nearest, where=far)
    value = 1.0 - np.clip(np.sqrt(nearest.min(axis=0)) / distance, 0.0, 1.0)
    region = canvas[y0 : y1 + 1, x0 : x1 + 1]
    np.maximum(region, value, out=region, casting="unsafe")
