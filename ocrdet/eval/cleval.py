"""CLEval for detection (character-level evaluation, Baek et al. 2020, clovaai/CLEval), vectorized per image.

Per image:

1. Every ground-truth polygon gets L pseudo character centres (PCC), spread evenly along the centre
   line of its quad. L is the transcription's length; without a transcription (and always for
   don't-care words) it is the pseudo count ``min(round(0.5 + max(r, 1/r)), 10)`` with ``r`` = mean of
   the two "horizontal" sides / mean of the two "vertical" sides (+1e-5 each). Reading is along
   p0 -> p1 when ``r >= vertical_aspect_ratio_threshold`` (0.5), else along p3 -> p0.
2. Don't-care polygons lose the parts covered by care ground truth.
3. Area precision ``AP[g, d] = area(g & d) / area(d)``; PCC inclusion: the centres of g inside d.
4. A detection is don't care when its AP with one don't-care word is ``>= c`` (``c`` =
   ``area_precision_threshold``, 0.3), or its APs summed over the don't-care words of which it holds
   a centre reach ``c``.
5. Matching among care polygons, where "linked" means ``AP >= c`` and at least one centre inside:
   one-to-one (g and d each linked to exactly one polygon of ALL polygons, don't care included, and
   to each other); one-to-many (a word linked to >= 2 care detections); many-to-one (a detection
   holding centres of >= 2 care words whose APs sum to ``>= c``). Centres of unmatched pairs are dropped.
6. TP = centres found by matched detections, each counted once. Recall = max(0, TP - split penalty) /
   GT characters; precision = max(0, TP - merge penalty) / (centres counted inside matched detections
   + ``min(round(0.5 + 1/(r + 1e-5)), 10)`` per unmatched care detection). A word matched to k
   detections costs ``(k - 1) * recall_granularity_penalty``, a detection matched to k words
   ``(k - 1) * precision_granularity_penalty``. 0 where a denominator is 0, also for an image
   without ground truth.

Averaging: the standard CLEval way sums characters and penalties over the data set (``totals``); the
receipt competition averages per-image recall, precision and H-mean (``image_mean``). ``CLEvalCounts``
carries both, so it can be summed over workers and DDP ranks.

Geometry follows ``iou_hmean``: ``|shoelace|`` areas, even-odd regions for self-intersecting
polygons; a centre on a detection's boundary is not inside. Polygons that are not 4-point quads use
their minimum-area rectangle, ordered clockwise from the corner with the smallest x + y, for the
aspect ratio and the centre line. Float coordinates are used as given (CLEval's quads truncate to int).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass

import cv2
import numpy as np
import shapely

from ocrdet.eval.iou_hmean import GRID, SLACK, box_overlap, candidate_pairs, check_polygons, polygon_set, polygonal

MAX_PSEUDO_CHARS = 10
ASPECT_EPS = 1e-5


@dataclass(frozen=True)
class CLEvalConfig:
    area_precision_threshold: float = 0.3
    recall_granularity_penalty: float = 1.0
    precision_granularity_penalty: float = 1.0
    vertical_aspect_ratio_threshold: float = 0.5


def _hmean(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


@dataclass(frozen=True)
class CLEvalCounts:
    """Mergeable CLEval state: character totals and penalties, plus sums of per-image scores."""

    char_gt: int = 0
    char_det: int = 0
    char_tp: int = 0
    split_penalty: float = 0.0
    merge_penalty: float = 0.0
    images: int = 0
    recall_sum: float = 0.0
    precision_sum: float = 0.0
    hmean_sum: float = 0.0

    def __add__(self, other: CLEvalCounts) -> CLEvalCounts:
        return CLEvalCounts(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[float, ...]:
        """The fields in order, e.g. for ``torch.tensor`` + all-reduce; ``CLEvalCounts(*t)`` rebuilds it."""
        return astuple(self)

    def totals(self) -> dict[str, float]:
        """Standard CLEval: scores of the summed characters and penalties."""
        recall = max(0.0, self.char_tp - self.split_penalty) / self.char_gt if self.char_gt else 0.0
        precision = max(0.0, self.char_tp - self.merge_penalty) / self.char_det if self.char_det else 0.0
        return {"precision": precision, "recall": recall, "hmean": _hmean(precision, recall)}

    def image_mean(self) -> dict[str, float]:
        """The receipt competition's way: means of the per-image recall, precision and H-mean."""
        n = self.images
        return {
            "precision": self.precision_sum / n if n else 0.0,
            "recall": self.recall_sum / n if n else 0.0,
            "hmean": self.hmean_sum / n if n else 0.0,
        }

    def metrics(self) -> dict[str, float]:
        """``totals`` as precision/recall/hmean, ``image_mean`` as mean_precision/..., and the counts."""
        out = dict(self.totals())
        out.update({f"mean_{k}": v for k, v in self.image_mean().items()})
        out.update(char_gt=self.char_gt, char_det=self.char_det, char_tp=self.char_tp, images=self.images)
        return out


def char_quads(polys: Sequence[np.ndarray]) -> np.ndarray:
    """float64 (n, 4, 2): 4-point polygons as given, others as their ordered minimum-area rectangle."""
    quads = np.empty((len(polys), 4, 2))
    for i, poly in enumerate(polys):
        if len(poly) == 4:
            quads[i] = poly
            continue
        box = cv2.boxPoints(cv2.minAreaRect(np.asarray(poly, dtype=np.float32))).astype(np.float64)
        if np.cross(box[1] - box[0], box[2] - box[1]) < 0:
            box = box[::-1]
        quads[i] = np.roll(box, -int(np.argmin(box.sum(axis=1))), axis=0)
    return quads


def aspect_ratios(quads: np.ndarray) -> np.ndarray:
    """(n,) mean length of sides p0p1, p2p3 over mean length of sides p1p2, p3p0, with CLEval's epsilon."""
    side = np.linalg.norm(quads - np.roll(quads, -1, axis=1), axis=2)
    return ((side[:, 0] + side[:, 2]) / 2 + ASPECT_EPS) / ((side[:, 1] + side[:, 3]) / 2 + ASPECT_EPS)


def pseudo_char_counts(quads: np.ndarray) -> np.ndarray:
    """(n,) int64 character count estimated from the aspect ratio: ``min(round(0.5 + max(r, 1/r)), 10)``."""
    r = aspect_ratios(quads)
    return np.minimum(np.round(0.5 + np.maximum(r, 1 / r)), MAX_PSEUDO_CHARS).astype(np.int64)


def false_positive_char_counts(quads: np.ndarray) -> np.ndarray:
    """(n,) int64 characters charged to an unmatched detection: ``min(round(0.5 + 1/(r + 1e-5)), 10)``."""
    r = aspect_ratios(quads)
    return np.minimum(np.round(0.5 + 1 / (ASPECT_EPS + r)), MAX_PSEUDO_CHARS).astype(np.int64)


def concat_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """int64 concatenation of ``arange(starts[j], starts[j] + lengths[j])`` over j."""
    lengths = np.asarray(lengths, dtype=np.int64)
    before = np.cumsum(lengths) - lengths
    return np.repeat(np.asarray(starts, dtype=np.int64) - before, lengths) + np.arange(lengths.sum())


def char_centres(quads: np.ndarray, counts: np.ndarray, vertical_threshold: float) -> np.ndarray:
    """Pseudo character centres of the words, float64 (sum(counts), 2), word after word."""
    vertical = aspect_ratios(quads) < vertical_threshold
    ordered = np.where(vertical[:, None, None], np.roll(quads, 1, axis=1), quads)
    start = (ordered[:, 0] + ordered[:, 3]) / 2
    end = (ordered[:, 1] + ordered[:, 2]) / 2
    owner = np.repeat(np.arange(len(quads)), counts)
    k = concat_ranges(np.zeros(len(counts)), counts)
    t = ((k + 0.5) / counts[owner])[:, None]
    return start[owner] + (end[owner] - start[owner]) * t


def char_counts(gt_quads: np.ndarray, ignore: np.ndarray, texts: Sequence[str | None] | None) -> np.ndarray:
    """(n,) int64 characters per word: the transcription's length, else (and for don't care) the pseudo count."""
    counts = pseudo_char_counts(gt_quads)
    if texts is None:
        return counts
    lengths = np.array([len(t) if t else 0 for t in texts], dtype=np.int64)
    return np.where(~ignore & (lengths > 0), lengths, counts)


def match_matrix(ap: np.ndarray, pcc: np.ndarray, care_gt: np.ndarray, care_det: np.ndarray, c: float) -> np.ndarray:
    """(n_gt, n_det) bool: one-to-one, one-to-many and many-to-one matches among care polygons.

    ``ap`` float64 area precision, ``pcc`` int64 centres of the word inside the detection, ``c`` the
    area-precision threshold. One-to-one counts links to all polygons, don't care included (as CLEval).
    """
    linked = (ap >= c) & (pcc > 0)
    one_to_one = linked & (linked.sum(axis=1) == 1)[:, None] & (linked.sum(axis=0) == 1)[None, :]
    linked_care = linked & care_det[None, :]
    one_to_many = linked_care & (linked_care.sum(axis=1) >= 2)[:, None]
    holds = (pcc > 0) & care_gt[:, None]
    many_to_one = holds & (((ap * holds).sum(axis=0) >= c) & (holds.sum(axis=0) >= 2))[None, :]
    return (one_to_one | one_to_many | many_to_one) & care_gt[:, None] & care_det[None, :]


def cleval_image(
    gt_polys: Sequence[np.ndarray],
    gt_ignore: np.ndarray,
    det_polys: Sequence[np.ndarray],
    gt_texts: Sequence[str | None] | None = None,
    config: CLEvalConfig = CLEvalConfig(),
) -> CLEvalCounts:
    """CLEval detection counts of one image (module docstring); polygons (N, 2), ignore (n_gt,) bool."""
    gts = check_polygons(gt_polys, "ground-truth")
    dets = check_polygons(det_polys, "detection")
    ignore = np.asarray(gt_ignore, dtype=bool).reshape(-1)
    if len(ignore) != len(gts) or (gt_texts is not None and len(gt_texts) != len(gts)):
        raise ValueError(f"{len(gts)} ground-truth polygons but {len(ignore)} ignore flags / texts")
    c = config.area_precision_threshold
    n_gt, n_det = len(gts), len(dets)
    gt_quads = char_quads(gts)
    counts = char_counts(gt_quads, ignore, gt_texts)
    centres = char_centres(gt_quads, counts, config.vertical_aspect_ratio_threshold)
    gt, det = polygon_set(gts), polygon_set(dets)
    pg, pd = candidate_pairs(gt.bounds, det.bounds)

    # (pair, centre) incidences: every centre of the pair's word, tested against the pair's detection.
    inc_pair = np.repeat(np.arange(len(pg)), counts[pg])
    inc_char = concat_ranges((np.cumsum(counts) - counts)[pg], counts[pg])
    inside = shapely.contains_xy(det.geoms[pd[inc_pair]], centres[inc_char, 0], centres[inc_char, 1])
    pair_pcc = np.bincount(inc_pair[inside], minlength=len(pg))
    pcc = np.zeros((n_gt, n_det), dtype=np.int64)
    pcc[pg, pd] = pair_pcc

    # Area precision matters where the pair shares a centre, or for a don't-care word where the box
    # overlap (an upper bound of the intersection) could reach the threshold; elsewhere it stays 0.
    det_area = det.area[pd]
    bound = box_overlap(gt.bounds[pg], det.bounds[pd]) >= c * det_area * (1 - SLACK)
    todo = np.flatnonzero((det_area > 0) & ((pair_pcc > 0) | (ignore[pg] & bound)))
    gt_geoms = _without_care_parts(gt.geoms, gt.bounds, ignore)
    ap = np.zeros((n_gt, n_det))
    ap[pg[todo], pd[todo]] = (
        shapely.area(shapely.intersection(gt_geoms[pg[todo]], det.geoms[pd[todo]])) / det_area[todo]
    )

    det_ignore = (ap[ignore] >= c).any(axis=0) | ((ap[ignore] * (pcc[ignore] > 0)).sum(axis=0) >= c)
    match = match_matrix(ap, pcc, ~ignore, ~det_ignore, c)

    found = match[pg[inc_pair], pd[inc_pair]] & inside
    tp = len(np.unique(inc_char[found]))
    gts_per_det = match.sum(axis=0)
    split = config.recall_granularity_penalty * float(np.maximum(match.sum(axis=1) - 1, 0).sum())
    merge = config.precision_granularity_penalty * float(np.maximum(gts_per_det - 1, 0).sum())
    unmatched = np.flatnonzero(~det_ignore & (gts_per_det == 0))
    char_det = int(found.sum()) + int(false_positive_char_counts(char_quads([dets[i] for i in unmatched])).sum())
    char_gt = int(counts[~ignore].sum())
    recall = max(0.0, tp - split) / char_gt if char_gt else 0.0
    precision = max(0.0, tp - merge) / char_det if char_det else 0.0
    return CLEvalCounts(char_gt, char_det, tp, split, merge, 1, recall, precision, _hmean(precision, recall))


def _without_care_parts(geoms: np.ndarray, bounds: np.ndarray, ignore: np.ndarray) -> np.ndarray:
    """Copy of ``geoms`` where each don't-care region has lost its overlap with care ground truth; snap-rounded
    to ``GRID`` and polygonal, since the area-precision overlays take it as input."""
    out = geoms.copy()
    dc, care = np.flatnonzero(ignore), np.flatnonzero(~ignore)
    gi, ci = candidate_pairs(bounds[dc], bounds[care])
    if len(gi) == 0:
        return out
    overlapping = shapely.area(shapely.intersection(geoms[care[ci]], geoms[dc[gi]])) > 0
    covered = np.unique(gi[overlapping])
    if len(covered) == 0:
        return out
    covers = [shapely.union_all(geoms[care[ci[overlapping & (gi == g)]]], grid_size=GRID) for g in covered]
    out[dc[covered]] = polygonal(
        shapely.difference(geoms[dc[covered]], polygonal(np.array(covers, dtype=object)), grid_size=GRID)
    )
    return out


class CLEval:
    """The metric protocol over ``cleval_image``: ``update`` per image, ``compute`` once, ``reset``."""

    def __init__(self, config: CLEvalConfig = CLEvalConfig()) -> None:
        self.config = config
        self.per_image: list[CLEvalCounts] = []

    def update(
        self,
        gt_polys: Sequence[np.ndarray],
        gt_ignore: np.ndarray,
        det_polys: Sequence[np.ndarray],
        gt_texts: Sequence[str | None] | None = None,
    ) -> CLEvalCounts:
        counts = cleval_image(gt_polys, gt_ignore, det_polys, gt_texts, self.config)
        self.per_image.append(counts)
        return counts

    def counts(self) -> CLEvalCounts:
        return sum(self.per_image, CLEvalCounts())

    def compute(self) -> dict[str, float]:
        return self.counts().metrics()

    def reset(self) -> None:
        self.per_image = []
