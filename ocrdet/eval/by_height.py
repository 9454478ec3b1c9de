"""H-mean by text height: where a detector's errors are (``ocrdet evaluate GT PRED --by-height 4 6 8 12 16``).

Recall of a bucket: matched / don't-care-free ground-truth lines whose height lies in it. Precision of a bucket:
matched / counted detections whose own height lies in it (a false positive has no ground-truth height). A height is
the short side of the polygon's minimum-area rectangle, in pixels of the image resized to ``long_side`` (the
model's input size, e.g. 512) or of the stored image when ``long_side`` is None. The matches are the IoU
metric's own pairs (``match_states``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ocrdet.data.io.format import AnnotationError, Annotations, load_annotations
from ocrdet.data.io.predictions import Predictions
from ocrdet.eval.evaluate import GroundTruth, align_predictions, ground_truth, match_states
from ocrdet.eval.files import read_annotation_polygons, read_detections


@dataclass(frozen=True)
class HeightBucket:
    low: float
    high: float
    """Heights h with low <= h < high (``inf`` for the last bucket)."""
    gt: int
    gt_matched: int
    det: int
    det_matched: int

    @property
    def recall(self) -> float:
        return self.gt_matched / self.gt if self.gt else 1.0

    @property
    def precision(self) -> float:
        return self.det_matched / self.det if self.det else 1.0

    @property
    def hmean(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def heights(polygons: Sequence[np.ndarray]) -> np.ndarray:
    """Short side of each polygon's minimum-area rectangle, float64 (N,)."""
    return np.array([min(cv2.minAreaRect(np.asarray(p, np.float32))[1]) for p in polygons], dtype=np.float64)


def by_height(
    annotations: Annotations, predictions: Predictions, edges: Sequence[float], long_side: int | None = None
) -> list[HeightBucket]:
    """Counts per height bucket: [0, e0), [e0, e1), ..., [e_last, inf)."""
    return _by_height(ground_truth(annotations), annotations, predictions, edges, long_side, "predictions")


def _by_height(
    gts: dict[str, GroundTruth],
    annotations: Annotations,
    predictions: Predictions,
    edges: Sequence[float],
    long_side: int | None,
    source: str,
) -> list[HeightBucket]:
    bounds = np.array([0.0, *sorted(edges), np.inf])
    dets = align_predictions(gts, predictions, source)
    counts = np.zeros((len(bounds) - 1, 4), dtype=np.int64)  # gt, gt matched, det, det matched
    for (name, (polys, ignore, _)), det in zip(gts.items(), dets, strict=True):
        factor = 1.0
        if long_side is not None:
            image = annotations.images[name]
            if image.img_w is None or image.img_h is None:
                raise AnnotationError(f"{name}: no img_w/img_h in the ground truth, needed to measure at a size")
            factor = long_side / max(image.img_w, image.img_h)
        gt_states, det_states = match_states(polys, ignore, det)
        for polygons, states, column in ((polys, gt_states, 0), (det, det_states, 2)):
            if not len(polygons):
                continue
            bucket = np.searchsorted(bounds, heights(polygons) * factor, side="right") - 1
            counted = np.array([s != "ignore" for s in states])
            matched = np.array([s == "matched" for s in states])
            np.add.at(counts[:, column], bucket[counted], 1)
            np.add.at(counts[:, column + 1], bucket[matched], 1)
    spans = zip(bounds[:-1], bounds[1:], counts, strict=True)
    return [HeightBucket(float(lo), float(hi), *map(int, c)) for lo, hi, c in spans]


def evaluate_by_height(
    gt_path: str | Path, pred_path: str | Path, edges: Sequence[float], long_side: int | None = None
) -> list[HeightBucket]:
    """``by_height`` of a ground-truth JSON and a predictions file, read as ``evaluate`` reads them."""
    gts = read_annotation_polygons(gt_path)
    return _by_height(gts, load_annotations(gt_path), read_detections(pred_path), edges, long_side, str(pred_path))


def format_by_height(buckets: Sequence[HeightBucket]) -> str:
    """One row per bucket: height range, ground-truth lines, recall, detections, precision, H-mean."""
    lines = [f"{'height px':<12}{'gt':>6}{'recall':>9}{'det':>6}{'precision':>11}{'hmean':>8}"]
    for b in buckets:
        span = f"{b.low:g}-{b.high:g}" if np.isfinite(b.high) else f">={b.low:g}"
        lines.append(f"{span:<12}{b.gt:>6}{b.recall:>9.3f}{b.det:>6}{b.precision:>11.3f}{b.hmean:>8.3f}")
    return "\n".join(lines)
