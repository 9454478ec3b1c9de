"""Textbook DB targets: one polygon and one edge at a time, step by step as MhLiao/DB computes them.

The slow, obviously correct counterpart of ``targets.make_db_targets`` (same signature and output),
used by the tests to check the fast path and by ``ocrdet bench data`` as the reference pipeline. It deviates from
MhLiao/DB only where DB's distance turns NaN and so silently leaves a pixel out of the border map: repeated
consecutive vertices are merged first (a zero-length edge is NaN at its vertex), and sin^2 is kept >= 0 (rounding
makes it slightly negative, so the distance NaN, at some pixels lying exactly on an edge).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import pyclipper
from shapely.geometry import Polygon

from ocrdet.data.transforms.targets import TargetConfig, check_target_inputs


def reference_db_targets(
    polygons: Sequence[np.ndarray],
    ignore: np.ndarray | Sequence[bool],
    height: int,
    width: int,
    config: TargetConfig = TargetConfig(),
) -> dict[str, np.ndarray]:
    """DB targets of one image; see ``targets.make_db_targets`` for inputs and the float32 outputs."""
    polys, flags = check_target_inputs(polygons, ignore, height, width)
    ignore_tags = flags.tolist()
    for i, polygon in enumerate(polys):
        polygon[:, 0] = np.clip(polygon[:, 0], 0, width - 1)
        polygon[:, 1] = np.clip(polygon[:, 1], 0, height - 1)
        polygon = _merge_repeated_vertices(polygon)
        area = _signed_area(polygon)
        if abs(area) < 1:
            ignore_tags[i] = True
        if area > 0:
            polygon = polygon[::-1]
        polys[i] = polygon

    prob = np.zeros((height, width), dtype=np.float32)
    prob_mask = np.ones((height, width), dtype=np.float32)
    for i, polygon in enumerate(polys):
        box_h = polygon[:, 1].max() - polygon[:, 1].min()
        box_w = polygon[:, 0].max() - polygon[:, 0].min()
        if ignore_tags[i] or min(box_h, box_w) < config.min_text_size:
            cv2.fillPoly(prob_mask, [polygon.astype(np.int32)], 0.0)
            ignore_tags[i] = True
            continue
        shrunk = _offset(polygon, -_offset_distance(polygon, config.shrink_ratio))
        if not shrunk:
            cv2.fillPoly(prob_mask, [polygon.astype(np.int32)], 0.0)
            ignore_tags[i] = True
            continue
        cv2.fillPoly(prob, [np.array(shrunk[0]).reshape(-1, 2).astype(np.int32)], 1.0)

    canvas = np.zeros((height, width), dtype=np.float32)
    thresh_mask = np.zeros((height, width), dtype=np.float32)
    for i, polygon in enumerate(polys):
        if not ignore_tags[i]:
            _draw_border_map(polygon, canvas, thresh_mask, config.shrink_ratio)
    thresh = canvas * np.float32(config.thresh_max - config.thresh_min) + np.float32(config.thresh_min)
    return {"prob": prob, "prob_mask": prob_mask, "thresh": thresh, "thresh_mask": thresh_mask}


def _merge_repeated_vertices(polygon: np.ndarray) -> np.ndarray:
    kept = [p for k, p in enumerate(polygon) if not np.array_equal(p, polygon[k - 1])]
    return np.array(kept if kept else polygon[:1]).reshape(-1, 2)


def _signed_area(polygon: np.ndarray) -> float:
    total = 0.0
    for i in range(len(polygon)):
        j = (i + 1) % len(polygon)
        total += (polygon[j, 0] - polygon[i, 0]) * (polygon[j, 1] + polygon[i, 1])
    return total / 2.0


def _offset_distance(polygon: np.ndarray, shrink_ratio: float) -> float:
    shape = Polygon(polygon)
    return shape.area * (1 - np.power(shrink_ratio, 2)) / shape.length


def _offset(polygon: np.ndarray, distance: float) -> list:
    padding = pyclipper.PyclipperOffset()
    padding.AddPath([tuple(p) for p in polygon], pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    return padding.Execute(distance)


def _draw_border_map(polygon: np.ndarray, canvas: np.ndarray, mask: np.ndarray, shrink_ratio: float) -> None:
    distance = _offset_distance(polygon, shrink_ratio)
    padded = _offset(polygon, distance)
    if not padded:
        return
    padded_polygon = np.array(padded[0])
    cv2.fillPoly(mask, [padded_polygon.astype(np.int32)], 1.0)

    xmin, xmax = padded_polygon[:, 0].min(), padded_polygon[:, 0].max()
    ymin, ymax = padded_polygon[:, 1].min(), padded_polygon[:, 1].max()
    box_w, box_h = xmax - xmin + 1, ymax - ymin + 1
    # Absolute pixel coordinates (DB shifts the polygon to the box instead): the same numbers, without rounding
    # tiny coordinates away.
    xs = np.broadcast_to(np.linspace(xmin, xmax, num=box_w).reshape(1, box_w), (box_h, box_w))
    ys = np.broadcast_to(np.linspace(ymin, ymax, num=box_h).reshape(box_h, 1), (box_h, box_w))

    distance_map = np.zeros((len(polygon), box_h, box_w), dtype=np.float32)
    for i in range(len(polygon)):
        j = (i + 1) % len(polygon)
        distance_map[i] = np.clip(_edge_distance(xs, ys, polygon[i], polygon[j]) / distance, 0, 1)
    distance_map = distance_map.min(axis=0)

    x0, x1 = min(max(0, xmin), canvas.shape[1] - 1), min(max(0, xmax), canvas.shape[1] - 1)
    y0, y1 = min(max(0, ymin), canvas.shape[0] - 1), min(max(0, ymax), canvas.shape[0] - 1)
    canvas[y0 : y1 + 1, x0 : x1 + 1] = np.fmax(
        1 - distance_map[y0 - ymin : y1 - ymax + box_h, x0 - xmin : x1 - xmax + box_w],
        canvas[y0 : y1 + 1, x0 : x1 + 1],
    )


def _edge_distance(xs: np.ndarray, ys: np.ndarray, point_1: np.ndarray, point_2: np.ndarray) -> np.ndarray:
    """DB's distance from each pixel (xs, ys) to the edge point_1-point_2, via the law of cosines."""
    square_distance_1 = np.square(xs - point_1[0]) + np.square(ys - point_1[1])
    square_distance_2 = np.square(xs - point_2[0]) + np.square(ys - point_2[1])
    square_distance = np.square(point_1[0] - point_2[0]) + np.square(point_1[1] - point_2[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        cosin = (square_distance - square_distance_1 - square_distance_2) / (
            2 * np.sqrt(square_distance_1 * square_distance_2)
        )
        square_sin = np.maximum(np.nan_to_num(1 - np.square(cosin)), 0)
        result = np.sqrt(square_distance_1 * square_distance_2 * square_sin / square_distance)
    result[cosin < 0] = np.sqrt(np.fmin(square_distance_1, square_distance_2))[cosin < 0]
    return result
