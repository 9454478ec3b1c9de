"""The ICDAR 2015 (RRC Challenge 4) IoU protocol as the official script runs it: one pair of polygons at a time.

The slow, obviously correct counterpart of ``ocrdet.eval.iou_hmean.match_image``; the tests compare the two and
``ocrdet bench eval`` times them in one run.
"""

from __future__ import annotations

import numpy as np
import shapely

from ocrdet.eval.iou_hmean import ImageCounts


def _region(points: np.ndarray) -> shapely.Geometry:
    """What Polygon3/GPC clips with: the polygon, or the even-odd region of a self-intersecting ring."""
    poly = shapely.Polygon(points)
    return poly if poly.is_valid else shapely.make_valid(poly, method="linework")


def _area(points: np.ndarray) -> float:
    """Polygon3 ``area()``: |shoelace| of the ring as given."""
    x, y = np.asarray(points, dtype=np.float64).T
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


class _Poly:
    """A polygon's points, Polygon3 area and bounding box, computed once."""

    def __init__(self, points: np.ndarray) -> None:
        self.points = np.asarray(points, dtype=np.float64)
        self.area = _area(self.points)
        self.box = (*self.points.min(axis=0).tolist(), *self.points.max(axis=0).tolist())


def _intersection_area(a: _Poly, b: _Poly) -> float:
    """Area of region(a) & region(b); 0 without calling GEOS when the bounding boxes are apart."""
    if a.box[2] < b.box[0] or b.box[2] < a.box[0] or a.box[3] < b.box[1] or b.box[3] < a.box[1]:
        return 0.0
    return _region(a.points).intersection(_region(b.points)).area


def reference_match_image(gt_polys, gt_ignore, det_polys, iou_threshold=0.5, area_precision_threshold=0.5):
    """Transliteration of the RRC Challenge 4 ``evaluate_method`` for one image."""
    gt_polys = [_Poly(p) for p in gt_polys]
    det_polys = [_Poly(p) for p in det_polys]
    gt_dont_care = [g for g in range(len(gt_polys)) if gt_ignore[g]]
    det_dont_care = []
    for d, det in enumerate(det_polys):
        for g in gt_dont_care:
            intersected_area = _intersection_area(gt_polys[g], det)
            precision = 0 if det.area == 0 else intersected_area / det.area
            if precision > area_precision_threshold:
                det_dont_care.append(d)
                break
    iou = np.zeros((len(gt_polys), len(det_polys)))
    for g, gt in enumerate(gt_polys):
        for d, det in enumerate(det_polys):
            inter = _intersection_area(det, gt)
            union = det.area + gt.area - inter
            iou[g, d] = inter / union if union != 0 else 0.0
    gt_taken = [False] * len(gt_polys)
    det_taken = [False] * len(det_polys)
    matched = 0
    for g in range(len(gt_polys)):
        for d in range(len(det_polys)):
            free = not gt_taken[g] and not det_taken[d]
            if free and g not in gt_dont_care and d not in det_dont_care and iou[g, d] > iou_threshold:
                gt_taken[g] = det_taken[d] = True
                matched += 1
    return ImageCounts(len(gt_polys) - len(gt_dont_care), len(det_polys) - len(det_dont_care), matched)
