"""ICDAR 2015 IoU H-mean (Robust Reading Challenge 4, task 4.1), for polygons, with bulk geometry.

The rules of the official RRC script (``script.py`` + ``rrc_evaluation_funcs.py``, Polygon3 geometry):

1. A detection is *don't care* when more than ``area_precision_threshold`` (0.5, strict ``>``) of its own
   area lies inside ONE don't-care ground-truth polygon. A detection of zero area is never don't care.
   This is decided before matching; don't-care polygons on both sides are then left out of everything.
2. Matching is one-to-one and greedy in input order: ground truth outer, detections inner; a pair is
   matched when both are still free and IoU is strictly greater than ``iou_threshold`` (0.5). It is the
   first such detection in order, not the one with the best IoU.
3. ``IoU = inter / (area_det + area_gt - inter)``, and 0 when that union is 0 (the script catches the
   division error).
4. Geometry is that of Polygon3: an area is ``|shoelace|`` of the points as given; an intersection is
   of the even-odd regions (GPC clipping). For a simple polygon both are the usual geometry. For a
   self-intersecting one (bow-tie) the lobes cancel in the area but not in the intersection, so its
   IoU can be anything, even above 1 or negative - exactly what the official script computes. Shapely
   builds the even-odd region as the symmetric difference of the polygon's fan triangles
   (``even_odd_regions``). Invalid polygons are therefore kept, never dropped (MhLiao/DB's shapely port
   drops them; the RRC script does not).
5. Per image: no care ground truth -> recall 1, precision 0 if any care detection else 1. Data set:
   sums of matched / care GT / care detections over images; 0 where a denominator is 0.

Ties: a ratio within ``geometry.TIE`` (1e-9, relative) of a threshold is decided again in exact rational
arithmetic on the coordinates as given (``geometry.exact_intersection_area``, when one polygon of the pair is
convex and the other simple: every non-bow-tie quad of the competition), so exactly 1/2 is never "> 0.5". The
official script decides such a tie with Polygon3's float noise, which lands on either side (0.5000000000000004
in ``tests/eval/test_iou_hmean.py::test_exact_half_is_never_above_half``): the one point where it and ocrdet
may differ. Ratios away from ties equal the script's (tested against ``iou_hmean_reference`` on Polygon3).

Deliberate differences, none of which changes a result for clockwise integer quads (the only input the
official script accepts): polygons may have any number (>= 3) of points and float coordinates (the
script truncates with ``int()``), and either orientation (the script rejects a whole submission with
one counter-clockwise quad; orientation changes no area here).

With overlapping ground truth, greedy order can change the number of matches (one detection with
IoU > 0.5 to two GT); with disjoint ground truth at most one GT can pass the threshold per detection
and the result is independent of order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ocrdet.eval.geometry import (
    SLACK,
    PackedViews,
    PolygonSet,
    box_overlap,
    exact_area,
    exact_intersection_area,
    image_pairs,
    pack_images,
    packed_polygon_set,
    pieces_intersection_area,
    ratio_above,
)

IOU_THRESHOLD = 0.5
AREA_PRECISION_THRESHOLD = 0.5


@dataclass(frozen=True)
class ImageCounts:
    """Mergeable match counts: sum them over images, workers and DDP ranks, then call ``metrics``."""

    gt_care: int = 0
    det_care: int = 0
    matched: int = 0

    def __add__(self, other: ImageCounts) -> ImageCounts:
        return ImageCounts(self.gt_care + other.gt_care, self.det_care + other.det_care, self.matched + other.matched)

    def metrics(self) -> dict[str, float]:
        """Data-set figures from summed counts (0 where a denominator is 0), plus the counts."""
        recall = self.matched / self.gt_care if self.gt_care else 0.0
        precision = self.matched / self.det_care if self.det_care else 0.0
        return _with_counts(self, precision, recall)

    def image_metrics(self) -> dict[str, float]:
        """One image's figures by the script's per-image rule (no care GT: recall 1, precision 0 or 1)."""
        if self.gt_care == 0:
            recall, precision = 1.0, (0.0 if self.det_care else 1.0)
        else:
            recall = self.matched / self.gt_care
            precision = self.matched / self.det_care if self.det_care else 0.0
        return _with_counts(self, precision, recall)


def _with_counts(counts: ImageCounts, precision: float, recall: float) -> dict[str, float]:
    hmean = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "hmean": hmean,
        "gt_care": counts.gt_care,
        "det_care": counts.det_care,
        "matched": counts.matched,
    }


@dataclass(frozen=True)
class ImageBatch:
    """Polygons of many images flattened: global indices, the image of every polygon, and the pairs
    (sorted by image, gt, det) whose bounding boxes touch, with the area of that bounding-box overlap."""

    gt: PolygonSet
    det: PolygonSet
    gt_ignore: np.ndarray
    gt_image: np.ndarray
    det_image: np.ndarray
    pair_gt: np.ndarray
    pair_det: np.ndarray
    box_overlap: np.ndarray
    n_images: int


def flatten_images(images: Sequence[tuple[Sequence[np.ndarray], np.ndarray, Sequence[np.ndarray]]]) -> ImageBatch:
    """Check and flatten (gt polygons, gt ignore flags, det polygons) per image into one ``ImageBatch``."""
    ignores = [np.empty(0, dtype=bool)]
    for k, (gts, ignore, _) in enumerate(images):
        ignore = np.asarray(ignore, dtype=bool).reshape(-1)
        if len(ignore) != len(gts):
            raise ValueError(f"image {k}: {len(gts)} ground-truth polygons but {len(ignore)} ignore flags")
        ignores.append(ignore)
    gt_coords, gt_point_counts, gt_sizes = pack_images([image[0] for image in images], "ground-truth")
    det_coords, det_point_counts, det_sizes = pack_images([image[2] for image in images], "detection")
    gt = packed_polygon_set(PackedViews(gt_coords, gt_point_counts), gt_coords, gt_point_counts)
    det = packed_polygon_set(PackedViews(det_coords, det_point_counts), det_coords, det_point_counts)
    gt_starts = np.concatenate(([0], np.cumsum(gt_sizes)))
    det_starts = np.concatenate(([0], np.cumsum(det_sizes)))
    pair_gt, pair_det = image_pairs(gt.bounds, gt_starts, det.bounds, det_starts)
    return ImageBatch(
        gt=gt,
        det=det,
        gt_ignore=np.concatenate(ignores),
        gt_image=np.repeat(np.arange(len(images)), gt_sizes),
        det_image=np.repeat(np.arange(len(images)), det_sizes),
        pair_gt=pair_gt,
        pair_det=pair_det,
        box_overlap=box_overlap(gt.bounds[pair_gt], det.bounds[pair_det]),
        n_images=len(images),
    )


def _intersection_area(batch: ImageBatch, pairs: np.ndarray) -> np.ndarray:
    """Area of det & gt (even-odd regions) for the selected pair positions, float64: pairs of polygons with
    convex pieces (convex ones, quads) in numpy (``pieces_intersection_area``), the rest with GEOS."""
    d, g = batch.pair_det[pairs], batch.pair_gt[pairs]
    fast = (batch.det.piece_count[d] > 0) & (batch.gt.piece_count[g] > 0)
    out = np.empty(len(pairs))
    out[fast] = pieces_intersection_area(batch.det, d[fast], batch.gt, g[fast])
    rest = ~fast
    if rest.any():
        import shapely

        out[rest] = shapely.area(shapely.intersection(batch.det.geoms_at(d[rest]), batch.gt.geoms_at(g[rest])))
    return out


def det_dont_care(batch: ImageBatch, area_precision_threshold: float = AREA_PRECISION_THRESHOLD) -> np.ndarray:
    """(n_det,) bool: more than ``area_precision_threshold`` of the detection's area inside one don't-care GT.

    Pairs are pruned first with ``inter <= bounding-box overlap``; only the rest go to GEOS.
    """
    g, d = batch.pair_gt, batch.pair_det
    det_area = batch.det.area[d]
    pos = np.flatnonzero(
        batch.gt_ignore[g] & (det_area > 0) & (batch.box_overlap >= area_precision_threshold * det_area * (1 - SLACK))
    )
    inter = _intersection_area(batch, pos)

    def exact(near: np.ndarray) -> list[bool | None]:
        out: list[bool | None] = []
        for k in pos[near].tolist():
            det_points, gt_points = batch.det.points[d[k]], batch.gt.points[g[k]]
            exact_inter = exact_intersection_area(det_points, gt_points)
            limit = Fraction(area_precision_threshold) * exact_area(det_points)
            out.append(None if exact_inter is None else exact_inter > limit)
        return out

    above = ratio_above(inter, det_area[pos], area_precision_threshold, exact)
    dont_care = np.zeros(len(batch.det.area), dtype=bool)
    dont_care[d[pos[above]]] = True
    return dont_care


def pair_passes(batch: ImageBatch, pos: np.ndarray, iou_threshold: float) -> np.ndarray:
    """(len(pos),) bool: IoU of the pairs at positions ``pos`` strictly above ``iou_threshold``. Pairs that
    provably cannot pass are decided without a GEOS call; IoUs within ``TIE`` of the threshold are decided in
    exact rational arithmetic (``geometry.exact_intersection_area``).

    For valid polygons ``inter <= min(box overlap, area_det, area_gt)``; for invalid ones only the box
    overlap bounds the region. IoU grows with ``inter`` while the union is positive, hence the bound.
    """
    g, d = batch.pair_gt[pos], batch.pair_det[pos]
    a_d, a_g, box = batch.det.area[d], batch.gt.area[g], batch.box_overlap[pos]
    both_valid = batch.det.valid[d] & batch.gt.valid[g]
    upper = np.where(both_valid, np.minimum(box, np.minimum(a_d, a_g)), box)
    rest = a_d + a_g - upper
    hopeless = (rest > 0) & (upper <= iou_threshold * rest * (1 - SLACK))
    passes = np.zeros(len(pos), dtype=bool)
    todo = np.flatnonzero(~hopeless)
    inter = _intersection_area(batch, pos[todo])
    union = a_d[todo] + a_g[todo] - inter
    positive = union > 0  # a zero union is IoU 0 (the script catches the division error); never above

    def exact(near: np.ndarray) -> list[bool | None]:
        out: list[bool | None] = []
        for k in todo[positive][near].tolist():
            det_points, gt_points = batch.det.points[d[k]], batch.gt.points[g[k]]
            exact_inter = exact_intersection_area(det_points, gt_points)
            if exact_inter is None:
                out.append(None)
                continue
            exact_union = exact_area(det_points) + exact_area(gt_points) - exact_inter
            out.append(exact_union > 0 and exact_inter > Fraction(iou_threshold) * exact_union)
        return out

    passes[todo[positive]] = ratio_above(inter[positive], union[positive], iou_threshold, exact)
    return passes


def greedy_match(
    batch: ImageBatch, iou_threshold: float, area_precision_threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rules 1-2 over a batch: (n_det,) bool don't-care detections, then the (M,) int64 global gt and det
    indices of the matched pairs, in matching order."""
    dont_care = det_dont_care(batch, area_precision_threshold)
    pos = np.flatnonzero(~batch.gt_ignore[batch.pair_gt] & ~dont_care[batch.pair_det])
    passing = pos[pair_passes(batch, pos, iou_threshold)]
    g, d = batch.pair_gt[passing], batch.pair_det[passing]
    # A pair whose ground truth and detection pass with nothing else is matched whatever the order; the rest
    # (a polygon passing with several) go through the greedy loop, in pair order.
    matched = (np.bincount(g, minlength=len(batch.gt.area)) == 1)[g] & (
        np.bincount(d, minlength=len(batch.det.area)) == 1
    )[d]
    gt_taken: set[int] = set()
    det_taken: set[int] = set()
    for k, gk, dk in zip(np.flatnonzero(~matched).tolist(), g[~matched].tolist(), d[~matched].tolist(), strict=True):
        if gk not in gt_taken and dk not in det_taken:
            gt_taken.add(gk)
            det_taken.add(dk)
            matched[k] = True
    return dont_care, g[matched], d[matched]


def match_images(
    images: Sequence[tuple[Sequence[np.ndarray], np.ndarray, Sequence[np.ndarray]]],
    iou_threshold: float = IOU_THRESHOLD,
    area_precision_threshold: float = AREA_PRECISION_THRESHOLD,
) -> list[ImageCounts]:
    """``match_image`` for many images at once, with bulk geometry over all their candidate pairs.

    ``images``: (gt polygons, gt ignore flags, det polygons) per image, polygons as (N, 2) arrays.
    """
    batch = flatten_images(images)
    n = batch.n_images
    dont_care, matched_gt, _ = greedy_match(batch, iou_threshold, area_precision_threshold)
    matched = np.bincount(batch.gt_image[matched_gt], minlength=n)
    gt_care = np.bincount(batch.gt_image[~batch.gt_ignore], minlength=n)
    det_care = np.bincount(batch.det_image[~dont_care], minlength=n)
    return [ImageCounts(int(g), int(d), int(m)) for g, d, m in zip(gt_care, det_care, matched, strict=True)]


def match_image(
    gt_polys: Sequence[np.ndarray],
    gt_ignore: np.ndarray,
    det_polys: Sequence[np.ndarray],
    iou_threshold: float = IOU_THRESHOLD,
    area_precision_threshold: float = AREA_PRECISION_THRESHOLD,
) -> ImageCounts:
    """Counts of one image by the ICDAR 2015 rules (module docstring); polygons (N, 2), ignore (n_gt,) bool."""
    return match_images([(gt_polys, gt_ignore, det_polys)], iou_threshold, area_precision_threshold)[0]


@dataclass(frozen=True)
class ImageMatch:
    """Which polygons of one image matched (for drawing): ``gt`` and ``det`` (M,) int64 indices of the
    matched pairs, and ``det_dont_care`` (n_det,) bool; don't-care ground truth is the caller's ignore flags."""

    gt: np.ndarray
    det: np.ndarray
    det_dont_care: np.ndarray


def match_pairs(
    gt_polys: Sequence[np.ndarray],
    gt_ignore: np.ndarray,
    det_polys: Sequence[np.ndarray],
    iou_threshold: float = IOU_THRESHOLD,
    area_precision_threshold: float = AREA_PRECISION_THRESHOLD,
) -> ImageMatch:
    """The pairs behind ``match_image``'s counts: ``len(gt) == matched``, same rules and order."""
    batch = flatten_images([(gt_polys, gt_ignore, det_polys)])
    dont_care, gt, det = greedy_match(batch, iou_threshold, area_precision_threshold)
    return ImageMatch(gt, det, dont_care)


class IoUHmean:
    """The ICDAR 2015 IoU H-mean as a metric (``ocrdet.eval.metrics.METRICS["hmean"]``): ``update`` per image or
    ``update_images`` in bulk (one batch of geometry), ``compute`` once, ``reset``."""

    name = "hmean"
    Counts = ImageCounts

    def __init__(self) -> None:
        self.per_image: list[ImageCounts] = []

    def update(
        self,
        gt_polys: Sequence[np.ndarray],
        gt_ignore: np.ndarray,
        det_polys: Sequence[np.ndarray],
        gt_texts: Sequence[str | None] | None = None,
    ) -> ImageCounts:
        return self.update_images([(gt_polys, gt_ignore, gt_texts, det_polys)])[0]

    def update_images(self, images: Sequence[tuple[Sequence[np.ndarray], np.ndarray, object, Sequence[np.ndarray]]]):
        """(gt polygons, ignore flags, transcriptions (unused), detections) per image -> their counts."""
        counts = match_images([(gts, ignore, dets) for gts, ignore, _, dets in images])
        self.per_image += counts
        return counts

    @staticmethod
    def image_figures(counts: ImageCounts) -> dict[str, float]:
        """One image's figures by the script's per-image rule."""
        return counts.image_metrics()

    def counts(self) -> ImageCounts:
        return sum(self.per_image, ImageCounts())

    def compute(self) -> dict[str, float]:
        return self.counts().metrics()

    def reset(self) -> None:
        self.per_image = []
