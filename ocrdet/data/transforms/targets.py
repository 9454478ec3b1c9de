"""DB training targets: the shrunk text map and the threshold (border) map, fast and exact.

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

Where the time goes: the polygon bookkeeping is done once for all polygons in NumPy; pyclipper offsets them through
one object; the border map, the only per-pixel work, is one compiled numba loop (``_border_kernel``) with no
temporaries, which visits for each edge only the pixels near enough to it to change the map.

The per-polygon, per-edge textbook version is ``targets_reference.reference_db_targets``; tests compare both.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import cv2
import numba
import numpy as np
import pyclipper
import shapely

from ocrdet.arrays import check_polygons, split_rows
from ocrdet.data.transforms.maps import TargetConfig

TARGETS_VERSION = 1
"""Bump when ``make_db_targets`` draws different maps from the same inputs: it enters the key of every cache
that stores maps (``ocrdet.data.sources.prepare.cache_key``), so caches drawn by the old code are not reused."""


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
    return check_polygons(polygons), flags.astype(bool)


def offset_polygons(polygons: Sequence[np.ndarray], distances: np.ndarray) -> list[np.ndarray | None]:
    """First path of pyclipper's round-join offset of each closed polygon by its distance, as int32 (M, 2); None
    where it vanishes. Coordinates are truncated to integers (as pyclipper does); a negative distance shrinks.

    One pyclipper object and one conversion each way serve all polygons: the per-call Python overhead is most
    of the cost of offsetting a word box.
    """
    if not len(polygons):
        return []
    points = np.concatenate(polygons).astype(np.int64).tolist()
    offset, found, start = pyclipper.PyclipperOffset(), [], 0
    for polygon, distance in zip(polygons, distances.tolist(), strict=True):
        offset.Clear()
        offset.AddPath(points[start : start + len(polygon)], pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
        start += len(polygon)
        paths = offset.Execute(distance)
        found.append(paths[0] if paths else [])
    sizes = [len(path) for path in found]
    coordinates = chain.from_iterable(chain.from_iterable(found))
    flat = np.fromiter(coordinates, dtype=np.int32, count=2 * sum(sizes)).reshape(-1, 2)
    pieces = split_rows(flat, np.cumsum(sizes)[:-1])
    return [piece if size else None for piece, size in zip(pieces, sizes, strict=True)]


def make_db_targets(
    polygons: Sequence[np.ndarray],
    ignore: np.ndarray | Sequence[bool],
    height: int,
    width: int,
    config: TargetConfig = TargetConfig(),
) -> dict[str, np.ndarray]:
    """DB targets of one image.

    polygons: float (N_i, 2) arrays of (x, y) points in pixels of the (height, width) canvas; ignore: bool (N,)
    don't-care flags. Returns (height, width) maps: uint8 ``prob`` (shrunk text = 1), uint8 ``prob_mask`` (0 on
    don't-care, too small and unshrinkable polygons, else 1), float32 ``thresh`` (border map scaled to
    [thresh_min, thresh_max]) and uint8 ``thresh_mask`` (1 inside the dilated polygons). The 0/1 maps travel
    as uint8 (a quarter of the bytes to collate, pin and copy); the loss turns them to float on the device.
    """
    polys, flags = check_target_inputs(polygons, ignore, height, width)
    prob = np.zeros((height, width), dtype=np.uint8)
    prob_mask = np.ones((height, width), dtype=np.uint8)
    thresh = np.full((height, width), config.thresh_min, dtype=np.float32)
    thresh_mask = np.zeros((height, width), dtype=np.uint8)
    if polys:
        _draw_targets(polys, flags, config, prob, prob_mask, thresh, thresh_mask)
    return {"prob": prob, "prob_mask": prob_mask, "thresh": thresh, "thresh_mask": thresh_mask}


def _draw_targets(
    polys: list[np.ndarray],
    ignore: np.ndarray,
    config: TargetConfig,
    prob: np.ndarray,
    prob_mask: np.ndarray,
    thresh: np.ndarray,
    thresh_mask: np.ndarray,
) -> None:
    """Paint all polygons into the four (H, W) canvases, in place; ``thresh`` starts at ``config.thresh_min``."""
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
    candidates = np.flatnonzero(~drop)
    inner = offset_polygons([polys[i] for i in candidates], -distance[candidates])
    shrinkable = np.array([i for i, path in zip(candidates, inner, strict=True) if path is not None], dtype=np.int64)
    shrunk = [path for path in inner if path is not None]
    outer = offset_polygons([polys[i] for i in shrinkable], distance[shrinkable])
    bordered = [i for i, path in zip(shrinkable, outer, strict=True) if path is not None]
    dilated = [path for path in outer if path is not None]
    unshrunk = np.ones(len(polys), dtype=bool)
    unshrunk[shrinkable] = False
    dropped = [polys[i].astype(np.int32) for i in np.flatnonzero(unshrunk)]
    fill_polygons(prob_mask, dropped, 0)
    fill_polygons(prob, shrunk, 1)
    fill_polygons(thresh_mask, dilated, 1)
    if bordered:
        scale = (config.thresh_max - config.thresh_min, config.thresh_min)
        _draw_borders(thresh, [polys[i] for i in bordered], dilated, distance[bordered], scale)


def fill_polygons(canvas: np.ndarray, polygons: list[np.ndarray], value: int) -> None:
    """Paint every int32 (M, 2) polygon with ``value``, one ``cv2.fillPoly`` call each.

    (One call with several polygons would leave their overlaps unpainted: it fills by the even-odd rule. One call
    per group of polygons whose boxes don't overlap was tried: finding the groups made it 3x slower than this.)
    """
    for polygon in polygons:
        cv2.fillPoly(canvas, [polygon], value)


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
    return split_rows(points[order], ends[:-1]), signed_area, sides


def polygon_boxes(polygons: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest (x, y) of each (M_i, 2) polygon, both (N, 2) of the polygons' dtype."""
    counts = np.array([len(p) for p in polygons])
    points, starts = np.concatenate(polygons), np.cumsum(counts) - counts
    return np.minimum.reduceat(points, starts), np.maximum.reduceat(points, starts)


def _draw_borders(
    thresh: np.ndarray,
    polygons: list[np.ndarray],
    dilated: list[np.ndarray],
    distance: np.ndarray,
    scale: tuple[float, float],
) -> None:
    """Max-combine each polygon's (1 - clip(dist / distance, 0, 1)) * a + b over its dilated box into ``thresh``.

    thresh: float32 (H, W); polygons: float64 (V_i, 2) inside it; dilated: int32 (M_i, 2) around them;
    distance: float64 (N,); scale: (a, b). Scaling before the max gives the same float32 values as after it.
    """
    height, width = thresh.shape
    lows, highs = polygon_boxes(dilated)
    boxes = np.hstack([np.maximum(lows, 0), np.minimum(highs, [width - 1, height - 1])])
    counts = np.array([len(p) for p in polygons])
    starts = np.cumsum(counts) - counts
    a, b = np.float32(scale[0]), np.float32(scale[1])
    _border_kernel(thresh, np.concatenate(polygons), starts, counts, boxes, distance, a, b)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _border_kernel(
    thresh: np.ndarray,
    points: np.ndarray,
    starts: np.ndarray,
    counts: np.ndarray,
    boxes: np.ndarray,
    distance: np.ndarray,
    a: np.float32,
    b: np.float32,
) -> None:  # pragma: no cover - compiled; tested through make_db_targets against the reference
    """The border map of every polygon, pixel by pixel (compiled: one pass per edge, no temporaries).

    points: the polygons' float64 vertices, concatenated (polygon i is ``counts[i]`` points from ``starts[i]``);
    boxes: int (N, 4) x0, y0, x1, y1 of the pixels to visit, inclusive. The arithmetic is the reference's, in
    float64 and in the same order, so that both take the same branch of DB's distance at every pixel.
    """
    for i in range(len(starts)):
        first, n = starts[i], counts[i]
        x0, y0, x1, y1 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
        height, width = y1 - y0 + 1, x1 - x0 + 1
        reach = distance[i] + 2.0
        nearest = np.full((height, width), np.inf)
        for k in range(n):
            ax, ay = points[first + k, 0], points[first + k, 1]
            following = first + (k + 1) % n
            bx, by = points[following, 0], points[following, 1]
            ex, ey = bx - ax, by - ay
            edge = ex * ex + ey * ey
            norm = np.sqrt(edge)
            ux, uy = ex / norm, ey / norm
            # Only pixels within ``reach`` of the segment can get a border value from this edge (DB's distance is
            # at least the distance to the segment): its box widened by ``reach``, and per row the columns within
            # ``reach`` of the line AB.
            row_lo, row_hi = max(y0, int(np.floor(min(ay, by) - reach))), min(y1, int(np.ceil(max(ay, by) + reach)))
            box_lo, box_hi = max(x0, int(np.floor(min(ax, bx) - reach))), min(x1, int(np.ceil(max(ax, bx) + reach)))
            for y in range(row_lo, row_hi + 1):
                dya, dyb = y - ay, y - by
                lo, hi = box_lo, box_hi
                if abs(uy) > 1e-9:
                    c0, c1 = ax + (ux * dya - reach) / uy, ax + (ux * dya + reach) / uy
                    lo, hi = max(lo, int(np.floor(min(c0, c1)))), min(hi, int(np.ceil(max(c0, c1))))
                elif abs(ux * dya) > reach:
                    continue
                line = nearest[y - y0]
                for x in range(lo, hi + 1):
                    dxa, dxb = x - ax, x - bx
                    to_start = dxa * dxa + dya * dya
                    to_end = dxb * dxb + dyb * dyb
                    across = ux * dya - uy * dxa
                    squared = min(to_start, to_end) if edge - to_start - to_end < 0 else across * across
                    line[x - x0] = min(line[x - x0], squared)
        for row in range(height):
            out, squared = thresh[y0 + row, x0 : x1 + 1], nearest[row]  # 1-D rows: numba vectorizes these loops
            for column in range(width):
                border = np.float32(1.0 - min(max(np.sqrt(squared[column]) / distance[i], 0.0), 1.0))
                out[column] = max(out[column], border * a + b)
