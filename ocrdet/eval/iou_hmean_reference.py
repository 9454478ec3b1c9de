"""The ICDAR 2015 (RRC Challenge 4, task 4.1) IoU protocol as the official script runs it, on Polygon3: one pair
of polygons at a time. Re-implemented from the protocol, not copied; the oracle of ``ocrdet.eval.iou_hmean``.

Needs the dev extra ``polygon3`` (its licence keeps it out of the runtime dependencies). Polygons are taken as
given (the script first truncates its integer CSV with ``int()``; integer input is the same).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ocrdet.eval.iou_hmean import AREA_PRECISION_THRESHOLD, IOU_THRESHOLD, ImageCounts


def _intersection(a, b) -> float:
    """The script's ``get_intersection``: area of the GPC intersection, 0 when it is empty."""
    inter = a & b
    return 0.0 if len(inter) == 0 else inter.area()


def reference_match_image(
    gt_polys: Sequence[np.ndarray],
    gt_ignore: np.ndarray,
    det_polys: Sequence[np.ndarray],
    iou_threshold: float = IOU_THRESHOLD,
    area_precision_threshold: float = AREA_PRECISION_THRESHOLD,
) -> ImageCounts:
    """Counts of one image: don't-care detections first, then the greedy one-to-one matching in input order."""
    import Polygon

    gts = [Polygon.Polygon(np.asarray(p, dtype=np.float64).tolist()) for p in gt_polys]
    dets = [Polygon.Polygon(np.asarray(p, dtype=np.float64).tolist()) for p in det_polys]
    gt_dont_care = [g for g in range(len(gts)) if gt_ignore[g]]
    det_dont_care = []
    for d, det in enumerate(dets):
        for g in gt_dont_care:
            area = det.area()
            precision = 0 if area == 0 else _intersection(gts[g], det) / area
            if precision > area_precision_threshold:
                det_dont_care.append(d)
                break
    iou = np.zeros((len(gts), len(dets)))
    for g, gt in enumerate(gts):
        for d, det in enumerate(dets):
            inter = _intersection(det, gt)
            try:
                iou[g, d] = inter / (det.area() + gt.area() - inter)
            except ZeroDivisionError:
                iou[g, d] = 0.0
    gt_taken = [False] * len(gts)
    det_taken = [False] * len(dets)
    matched = 0
    for g in range(len(gts)):
        for d in range(len(dets)):
            if gt_taken[g] or det_taken[d] or g in gt_dont_care or d in det_dont_care:
                continue
            if iou[g, d] > iou_threshold:
                gt_taken[g] = det_taken[d] = True
                matched += 1
    return ImageCounts(len(gts) - len(gt_dont_care), len(dets) - len(det_dont_care), matched)


def reference_ratios(gt_polys, det_polys, gt_ignore) -> list[float]:
    """Every ratio the protocol compares with a threshold (don't-care area precisions and IoUs), for tests that
    must stay away from exact ties."""
    import Polygon

    gts = [Polygon.Polygon(np.asarray(p, dtype=np.float64).tolist()) for p in gt_polys]
    dets = [Polygon.Polygon(np.asarray(p, dtype=np.float64).tolist()) for p in det_polys]
    out = []
    for det in dets:
        for g, gt in enumerate(gts):
            inter = _intersection(gt, det)
            union = det.area() + gt.area() - inter
            if union:
                out.append(inter / union)
            if gt_ignore[g] and det.area():
                out.append(inter / det.area())
    return out


def _read_inputs(gt_path: str, pred_path: str):
    """(gt polygons, ignore flags, detections) per GT image, read the plain way (stdlib json and csv)."""
    import csv
    import json
    import sys

    with open(gt_path, encoding="utf-8-sig") as f:
        images = json.load(f)["images"]
    csv.field_size_limit(sys.maxsize)
    with open(pred_path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))[1:]
    dets = {
        name: [np.array(c.split(), dtype=np.float64).reshape(-1, 2) for c in cell.split("|") if c.strip()]
        for name, cell in rows
    }
    out = []
    for name, image in images.items():
        words = list(image.get("words", {}).values())
        polys = [np.array(w["points"], dtype=np.float64) for w in words]
        out.append((polys, [bool(w.get("illegibility", False)) for w in words], dets.get(name, [])))
    return out


def main(argv: list[str] | None = None) -> dict[str, float]:
    """``python -m ocrdet.eval.iou_hmean_reference GT.json PRED.csv``: the official algorithm as a whole process
    (the baseline of ``ocrdet bench eval``); prints the data-set figures as JSON."""
    import json
    import sys

    gt_path, pred_path = (argv if argv is not None else sys.argv[1:])[:2]
    total = sum((reference_match_image(*image) for image in _read_inputs(gt_path, pred_path)), ImageCounts())
    figures = total.metrics()
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
