"""CLEval for detection (character-level evaluation, Baek et al. 2020), equal to PyPI ``cleval`` 0.1.1
(``CLEvalMetric`` / ``eval_functions.evaluation``) to the last bit of its figures.

``cleval_images`` scores many images in bulk: one geometry pass over all their polygons (``Boxes``), the
candidate pairs of each image (bounding boxes touching) as one list, and the rules below as operations on that
list grouped by polygon and image (``np.bincount``); an image's counts are bit for bit those it gets alone
(``cleval_image``). Additions whose order CLEval fixes keep it (the don't-care sums below, in float32).

Per image:

1. Every ground-truth polygon gets L pseudo character centres (PCC). L is the transcription's length;
   without a transcription (and always for don't-care words) it is the box's pseudo count (below).
2. Don't-care polygons lose the parts covered by care ground truth they overlap.
3. Area precision ``AP[g, d] = area(g & d) / area(d)``, stored as float32 (as CLEval's matrix);
   PCC inclusion: the centres of g inside d.
4. A detection is don't care when its AP with one don't-care word is ``>= c`` (``c`` =
   ``area_precision_threshold``, 0.3), or its APs summed (float32, in CLEval's set order) over the
   don't-care words of which it holds a centre reach ``c``.
5. Matching among care polygons, where "linked" means ``AP >= c`` and at least one centre inside:
   one-to-one (g and d each linked to exactly one polygon of ALL polygons, don't care included, and
   to each other); one-to-many (a word linked to >= 2 care detections); many-to-one (a detection
   holding centres of >= 2 care words whose APs sum to ``>= c``). Centres of unmatched pairs are dropped.
6. TP = centres found by matched detections, each counted once. Recall = max(0, TP - split penalty) /
   GT characters; precision = max(0, TP - merge penalty) / (centres counted inside matched detections
   + the false-positive count per unmatched care detection). A word matched to k detections costs
   ``(k - 1) * recall_granularity_penalty``, a detection matched to k words
   ``(k - 1) * precision_granularity_penalty``. 0 where a denominator is 0, also for an image without
   ground truth.

Box types, as CLEval has them:

- **4-point polygons (QUAD)**: geometry (areas, intersections, the inside test) on the points truncated
  toward zero (CLEval's ``int()``), areas ``|shoelace|``, self-intersecting rings as even-odd regions (as
  Polygon3/GPC). A centre is inside by Polygon3's ``isInside``: the crossing-number test, half-open (on an
  axis-aligned box, points on the left and top edges are in, on the right and bottom edges out), with the
  same floating-point expression. Centres, aspect ratio and counts use the points as given: ``r`` = mean
  of sides p0p1, p2p3 over mean of sides p1p2, p3p0 (+1e-5 each); pseudo count
  ``min(round(0.5 + max(r, 1/r)), 10)``; false-positive count ``min(round(0.5 + 1/(r + 1e-5)), 10)``;
  reading along p0 -> p1 when ``r >= vertical_aspect_ratio_threshold`` (0.5), else along p3 -> p0; centre
  k at ``p1 + unit / 2 + unit * k`` with CLEval's operation order.
- **Other polygons (POLY)**: geometry is shapely's ``buffer(0)`` of the points as given (float), areas of
  that region, and a centre is inside when strictly inside (``contains``). CLEval's aspect ratio for POLY
  is ``min(10, h / w) + 1e5``, so its pseudo count is always 10 and its false-positive count 1. Centres
  interpolate the first half of the points (top) and the reversed second half (bottom), with CLEval's
  ``int()`` truncation of the interpolated points. A triangle is first completed to 4 points with
  ``(x0, y2)``, as CLEval does.

PyPI ``cleval`` 0.1.1 itself crashes on POLY ground truth (a missing ``scale`` attribute, and
``pseudo_character_center`` called with an argument it does not take); the tests compare against it with
those two lines patched. It also cannot mix box types in one image (Polygon3 & shapely); here a QUAD and
a POLY intersect through shapely, each with its own region.

Averaging: the standard CLEval way sums characters and penalties over the data set (``totals``); the
receipt competition averages per-image recall, precision and H-mean (``image_mean``). ``CLEvalCounts``
carries both, so it can be summed over workers and DDP ranks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ocrdet.eval.geometry import (
    GRID,
    PackedViews,
    box_overlap,
    image_pairs,
    pack_images,
    packed_polygon_set,
    pieces_intersection_area,
    polygonal,
)

MAX_PSEUDO_CHARS = 10
ASPECT_EPS = 1e-5
POLY_PSEUDO_CHARS = 10
"""CLEval's POLY aspect ratio is ``min(10, h / w) + 1e5``: its pseudo count is always 10 ..."""
POLY_FALSE_POSITIVE_CHARS = 1
"""... and an unmatched POLY detection is charged ``round(0.5 + 1 / (1e-5 + ~1e5))`` = 1 character."""
AP_SLACK = 1e-6
"""Relative margin of the area-precision pruning bound: wider than float32 rounding of the stored AP."""


@dataclass(frozen=True)
class CLEvalConfig:
    area_precision_threshold: float = 0.3
    recall_granularity_penalty: float = 1.0
    precision_granularity_penalty: float = 1.0
    vertical_aspect_ratio_threshold: float = 0.5


def _hmean(precision: float, recall: float) -> float:
    return 2 * recall * precision / (recall + precision) if precision + recall else 0.0


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
        return (
            self.char_gt,
            self.char_det,
            self.char_tp,
            self.split_penalty,
            self.merge_penalty,
            self.images,
            self.recall_sum,
            self.precision_sum,
            self.hmean_sum,
        )

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


# --- QUAD rules ------------------------------------------------------------------------------------------


def aspect_ratios(quads: np.ndarray) -> np.ndarray:
    """(n,) CLEval's QUAD aspect ratio of float64 (n, 4, 2) quads, with its operation order."""
    d = quads - np.roll(quads, -1, axis=1)
    side = np.sqrt(np.abs(d[..., 0]) * np.abs(d[..., 0]) + np.abs(d[..., 1]) * np.abs(d[..., 1]))
    return ((side[:, 0] + side[:, 2]) / 2 + ASPECT_EPS) / ((side[:, 1] + side[:, 3]) / 2 + ASPECT_EPS)


def pseudo_char_counts(quads: np.ndarray) -> np.ndarray:
    """(n,) int64 character count of quads estimated from the aspect ratio: ``min(round(0.5 + max(r, 1/r)), 10)``."""
    r = aspect_ratios(quads)
    return np.minimum(np.round(0.5 + np.maximum(r, 1 / r)), MAX_PSEUDO_CHARS).astype(np.int64)


def false_positive_char_counts(quads: np.ndarray) -> np.ndarray:
    """(n,) int64 characters charged to an unmatched quad: ``min(round(0.5 + 1/(1e-5 + r)), 10)``."""
    r = aspect_ratios(quads)
    return np.minimum(np.round(0.5 + 1 / (ASPECT_EPS + r)), MAX_PSEUDO_CHARS).astype(np.int64)


def quad_centres(quads: np.ndarray, counts: np.ndarray, vertical_threshold: float) -> np.ndarray:
    """Pseudo character centres of quads, float64 (sum(counts), 2), word after word, as CLEval computes them."""
    vertical = aspect_ratios(quads) < vertical_threshold
    lt, rt, rb, lb = (np.where(vertical[:, None], quads[:, (k + 3) % 4], quads[:, k]) for k in range(4))
    p1 = (lt + lb) / 2
    p2 = (rt + rb) / 2
    owner = np.repeat(np.arange(len(quads)), counts)
    k = concat_ranges(np.zeros(len(counts)), counts).astype(np.float64)[:, None]
    unit = (p2[owner] - p1[owner]) / counts[owner][:, None]
    return p1[owner] + unit / 2 + unit * k


def inside_quads(quads: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Polygon3's ``isInside`` (crossing-number test, half-open) of points (x[i], y[i]) in quads (n, 4, 2)."""
    inside = np.zeros(len(x), dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(4):
            vi, vj = quads[:, i], quads[:, i - 1]
            crosses = ((vi[:, 1] <= y) & (y < vj[:, 1])) | ((vj[:, 1] <= y) & (y < vi[:, 1]))
            edge_x = (vj[:, 0] - vi[:, 0]) * (y - vi[:, 1]) / (vj[:, 1] - vi[:, 1]) + vi[:, 0]
            inside ^= crosses & (x < edge_x)
    return inside


# --- POLY rules ------------------------------------------------------------------------------------------


def poly_points(poly: np.ndarray) -> np.ndarray:
    """CLEval's POLY points: a triangle gets a fourth point ``(x0, y2)``."""
    if len(poly) == 3:
        return np.vstack([poly, [poly[0, 0], poly[2, 1]]])
    return poly


def poly_centres(poly: np.ndarray, length: int) -> list[tuple[float, float]]:
    """CLEval's POLY ``pseudo_character_center``: top half of the points against the reversed bottom half."""
    xs, ys = poly[:, 0].tolist(), poly[:, 1].tolist()
    half = len(poly) // 2
    top_x, top_y, bottom_x, bottom_y = xs[:half], ys[:half], xs[half:][::-1], ys[half:][::-1]
    new_top_x, new_top_y, new_bottom_x, new_bottom_y = [], [], [], []
    for s in range(half - 1):
        for line, start, end in (
            (new_top_x, top_x[s], top_x[s + 1]),
            (new_top_y, top_y[s], top_y[s + 1]),
            (new_bottom_x, bottom_x[s], bottom_x[s + 1]),
            (new_bottom_y, bottom_y[s], bottom_y[s + 1]),
        ):
            step = (end - start) / length
            line.append(start)
            line += [int(start + step * k) for k in range(1, length)]
    new_top_x.append(top_x[-1])
    new_top_y.append(top_y[-1])
    new_bottom_x.append(bottom_x[-1])
    new_bottom_y.append(bottom_y[-1])
    section = (len(new_top_x) - 1) / length
    out = []
    for c in range(length):
        a, b = int(c * section), int((c + 1) * section)
        out.append(
            (
                (new_top_x[a] + new_top_x[b] + new_bottom_x[a] + new_bottom_x[b]) / 4,
                (new_top_y[a] + new_top_y[b] + new_bottom_y[a] + new_bottom_y[b]) / 4,
            )
        )
    return out


# --- both ------------------------------------------------------------------------------------------------


def concat_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """int64 concatenation of ``arange(starts[j], starts[j] + lengths[j])`` over j."""
    lengths = np.asarray(lengths, dtype=np.int64)
    before = np.cumsum(lengths) - lengths
    return np.repeat(np.asarray(starts, dtype=np.int64) - before, lengths) + np.arange(lengths.sum())


class Boxes:
    """Polygons (of one side, over any number of images) under CLEval's box types: ``quad`` (n,) bool, ``quads``
    (n, 4, 2) float64 points as given (zeros for POLY), ``cut`` the truncated ones, ``pieces`` (n,) bool (a quad
    whose truncated ring has convex pieces, ``geometry.convex_pieces``: intersected in numpy), ``area`` (n,),
    ``bounds`` (n, 4) covering both the given points and the region, and ``geoms_at`` the valid polygonal regions
    (shapely, built on first use)."""

    def __init__(self, coords: np.ndarray, sizes: np.ndarray) -> None:
        """Polygons packed: float64 ``coords`` (sum(sizes), 2) cut into ``sizes`` (n,) points."""
        n = len(sizes)
        self.quad = quad = sizes == 4
        if (sizes == 3).any():
            polys = [poly_points(p) for p in PackedViews(coords, sizes)]
            coords, sizes = np.concatenate(polys), np.fromiter(map(len, polys), np.int64, n)
        self.polys = PackedViews(coords, sizes)
        self.quads = np.zeros((n, 4, 2))
        self.area = np.zeros(n)
        self.bounds = np.zeros((n, 4))
        if n:
            self.quads[quad] = coords[np.repeat(quad, sizes)].reshape(-1, 4, 2)
            starts = self.polys.starts
            x, y = coords[:, 0], coords[:, 1]
            self.bounds = np.stack(
                [
                    np.minimum.reduceat(x, starts),
                    np.minimum.reduceat(y, starts),
                    np.maximum.reduceat(x, starts),
                    np.maximum.reduceat(y, starts),
                ],
                axis=1,
            )
        self.cut = np.trunc(self.quads)
        self._geoms = np.full(n, None, dtype=object)
        qi = np.flatnonzero(quad)
        self.quad_index = np.full(n, -1, dtype=np.int64)
        self.quad_index[qi] = np.arange(len(qi))
        cut = self.cut[qi]
        self.quad_set = qs = packed_polygon_set(cut, cut.reshape(-1, 2), np.full(len(qi), 4, dtype=np.int64))
        self.pieces = np.zeros(n, dtype=bool)
        if len(qi):
            self.area[qi] = qs.area
            self.pieces[qi] = qs.piece_count > 0
            self.bounds[qi, :2] = np.minimum(self.bounds[qi, :2], qs.bounds[:, :2])
            self.bounds[qi, 2:] = np.maximum(self.bounds[qi, 2:], qs.bounds[:, 2:])
        pi = np.flatnonzero(~quad)
        if len(pi):
            import shapely

            rings = shapely.linearrings(
                coords[np.repeat(~quad, sizes)], indices=np.repeat(np.arange(len(pi)), sizes[pi])
            )
            regions = polygonal(shapely.buffer(shapely.polygons(rings), 0))
            self._geoms[pi], self.area[pi] = regions, shapely.area(regions)
            self.bounds[pi] += [-1, -1, 1, 1]  # the interpolated centres are truncated with int(): up to 1 px out

    def geoms_at(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        missing = np.unique(idx[np.equal(self._geoms[idx], None)])
        if len(missing):
            self._geoms[missing] = self.quad_set.geoms_at(self.quad_index[missing])
        return self._geoms[idx]


def char_centres(gt: Boxes, counts: np.ndarray, vertical_threshold: float) -> np.ndarray:
    """float64 (sum(counts), 2) centres, word after word."""
    centres = np.empty((int(counts.sum()), 2))
    starts = np.cumsum(counts) - counts
    qi = np.flatnonzero(gt.quad)
    if len(qi):
        rows = concat_ranges(starts[qi], counts[qi])
        centres[rows] = quad_centres(gt.quads[qi], counts[qi], vertical_threshold)
    for i in np.flatnonzero(~gt.quad & (counts > 0)).tolist():
        centres[starts[i] : starts[i] + counts[i]] = poly_centres(gt.polys[i], int(counts[i]))
    return centres


def inside(det: Boxes, dets: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(m,) bool: point (x[i], y[i]) inside detection dets[i] by its box type's rule."""
    out = np.zeros(len(dets), dtype=bool)
    q = det.quad[dets]
    out[q] = inside_quads(det.cut[dets[q]], x[q], y[q])
    if not q.all():
        import shapely

        out[~q] = shapely.contains_xy(det.geoms_at(dets[~q]), x[~q], y[~q])
    return out


def set_order(indices: np.ndarray) -> list[int]:
    """The order in which CLEval iterates a Python ``set`` of these indices."""
    return list(set(indices.tolist()))


def set_ranks(ignore: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(n,) int64: each don't-care word's position in CLEval's iteration of its image's set of don't-care
    indices (``set_order`` of the image's own indices); images are ``starts[k]:starts[k + 1]``."""
    rank = np.zeros(len(ignore), dtype=np.int64)
    dc = np.flatnonzero(ignore)
    cuts = np.searchsorted(dc, starts).tolist()
    for k, (a, b) in enumerate(zip(cuts[:-1], cuts[1:], strict=True)):
        if b > a:
            order = np.array(set_order(dc[a:b] - starts[k]), dtype=np.int64) + starts[k]
            rank[order] = np.arange(b - a)
    return rank


def matched_pairs(
    pg: np.ndarray,
    pd: np.ndarray,
    ap: np.ndarray,
    pcc: np.ndarray,
    care_gt: np.ndarray,
    care_det: np.ndarray,
    c: float,
) -> np.ndarray:
    """(pairs,) bool: one-to-one, one-to-many and many-to-one matches among care polygons, for candidate pairs
    (``pg``, ``pd``) sorted by ground truth (every other pair has AP 0 and no centre: never linked).

    ``ap`` float32 area precision, ``pcc`` int64 centres of the word inside the detection, ``c`` the
    area-precision threshold. One-to-one counts links to all polygons, don't care included (as CLEval).
    """
    n_gt, n_det = len(care_gt), len(care_det)
    linked = (ap >= np.float32(c)) & (pcc > 0)
    one_to_one = (
        linked
        & (np.bincount(pg[linked], minlength=n_gt) == 1)[pg]
        & (np.bincount(pd[linked], minlength=n_det) == 1)[pd]
    )
    linked_care = linked & care_det[pd]
    one_to_many = linked_care & (np.bincount(pg[linked_care], minlength=n_gt) >= 2)[pg]
    holds = (pcc > 0) & care_gt[pg]
    # numba's float64 sum of the float32 values, in ground-truth order (bincount adds in input order)
    ap_sum = np.bincount(pd[holds], weights=ap[holds].astype(np.float64), minlength=n_det)
    many_to_one = holds & ((ap_sum >= c) & (np.bincount(pd[holds], minlength=n_det) >= 2))[pd]
    return (one_to_one | one_to_many | many_to_one) & care_gt[pg] & care_det[pd]


def dont_care_detections(
    pg: np.ndarray,
    pd: np.ndarray,
    ap: np.ndarray,
    pcc: np.ndarray,
    ignore: np.ndarray,
    gt_starts: np.ndarray,
    det_image: np.ndarray,
    c: float,
) -> np.ndarray:
    """(n_det,) bool: CLEval's ``get_det_dc_indices`` - one don't-care AP ``>= c``, or the float32 sum of the
    don't-care APs of words whose centres it holds, added in CLEval's set order, ``>= c``."""
    threshold = np.float32(c)
    out = np.zeros(len(det_image), dtype=bool)
    on_dc = ignore[pg]
    out[pd[on_dc & (ap >= threshold)]] = True
    if threshold <= 0:  # AP 0 (and the empty sum) reach it: every detection of an image with a don't-care word
        with_dc = np.diff(np.searchsorted(np.flatnonzero(ignore), gt_starts)) > 0
        out |= with_dc[det_image]
    held = np.flatnonzero(on_dc & (pcc > 0))
    if len(held):
        rank = set_ranks(ignore, gt_starts)
        held = held[np.lexsort((rank[pg[held]], pd[held]))]
        dets = pd[held]
        first = np.flatnonzero(np.r_[True, dets[1:] != dets[:-1]])
        step = np.arange(len(dets)) - np.repeat(first, np.diff(np.r_[first, len(dets)]))
        acc = np.zeros(len(out), dtype=np.float32)
        for k in range(int(step.max()) + 1):  # float32 additions, one don't-care word after the other
            at = held[step == k]
            acc[pd[at]] = acc[pd[at]] + ap[at]
        out[pd[held]] |= acc[pd[held]] >= threshold
    return out


def cleval_images(
    images: Sequence[tuple[Sequence[np.ndarray], np.ndarray, Sequence[str | None] | None, Sequence[np.ndarray]]],
    config: CLEvalConfig = CLEvalConfig(),
) -> list[CLEvalCounts]:
    """CLEval detection counts per image (module docstring) for (gt polygons, ignore flags, transcriptions or None,
    detections) per image, polygons (N, 2): the geometry of all images in bulk, as one set of candidate pairs."""
    ignores = [np.empty(0, dtype=bool)]
    lengths: list[int] = []
    for k, (gts, gt_ignore, texts, _) in enumerate(images):
        gt_ignore = np.asarray(gt_ignore, dtype=bool).reshape(-1)
        if len(gt_ignore) != len(gts) or (texts is not None and len(texts) != len(gts)):
            raise ValueError(f"image {k}: {len(gts)} ground-truth polygons but {len(gt_ignore)} ignore flags / texts")
        ignores.append(gt_ignore)
        lengths += [0] * len(gts) if texts is None else [len(t) if t else 0 for t in texts]
    gt_coords, gt_sizes, gt_per_image = pack_images([image[0] for image in images], "ground-truth")
    det_coords, det_sizes, det_per_image = pack_images([image[3] for image in images], "detection")
    n_img = len(images)
    ignore = np.concatenate(ignores)
    gt_starts = np.concatenate(([0], np.cumsum(gt_per_image)))
    det_starts = np.concatenate(([0], np.cumsum(det_per_image)))
    gt_image = np.repeat(np.arange(n_img), gt_per_image)
    det_image = np.repeat(np.arange(n_img), det_per_image)
    c = config.area_precision_threshold
    gt, det = Boxes(gt_coords, gt_sizes), Boxes(det_coords, det_sizes)
    # characters per word: the transcription's length, else (and for don't care) the pseudo count
    counts = np.where(gt.quad, pseudo_char_counts(gt.quads), POLY_PSEUDO_CHARS)
    counts = np.where(~ignore & (np.array(lengths, dtype=np.int64) > 0), lengths, counts).astype(np.int64)
    centres = char_centres(gt, counts, config.vertical_aspect_ratio_threshold)
    pg, pd = image_pairs(gt.bounds, gt_starts, det.bounds, det_starts)

    # (pair, centre) incidences: every centre of the pair's word, tested against the pair's detection.
    inc_pair = np.repeat(np.arange(len(pg)), counts[pg])
    inc_char = concat_ranges((np.cumsum(counts) - counts)[pg], counts[pg])
    found_in = inside(det, pd[inc_pair], centres[inc_char, 0], centres[inc_char, 1])
    pcc = np.bincount(inc_pair[found_in], minlength=len(pg))

    # Area precision matters where the pair shares a centre, or for a don't-care word where the box
    # overlap (an upper bound of the intersection) could reach the threshold; elsewhere it stays 0.
    det_area = det.area[pd]
    bound = box_overlap(gt.bounds[pg], det.bounds[pd]) >= c * det_area * (1 - AP_SLACK)
    todo = np.flatnonzero((det_area > 0) & ((pcc > 0) | (ignore[pg] & bound)))
    ap = np.zeros(len(pg), dtype=np.float32)
    ap[todo] = (
        _intersection_areas(gt, det, _without_care_parts(gt, ignore, gt_starts), pg[todo], pd[todo]) / (det_area[todo])
    )

    det_ignore = dont_care_detections(pg, pd, ap, pcc, ignore, gt_starts, det_image, c)
    match = matched_pairs(pg, pd, ap, pcc, ~ignore, ~det_ignore, c)

    found = match[inc_pair] & found_in
    tp = np.bincount(np.repeat(gt_image, counts)[np.unique(inc_char[found])], minlength=n_img)
    dets_per_gt = np.bincount(pg[match], minlength=len(ignore))
    gts_per_det = np.bincount(pd[match], minlength=len(det_image))
    split = config.recall_granularity_penalty * np.bincount(
        gt_image, weights=np.maximum(dets_per_gt - 1, 0), minlength=n_img
    )
    merge = config.precision_granularity_penalty * np.bincount(
        det_image, weights=np.maximum(gts_per_det - 1, 0), minlength=n_img
    )
    unmatched = ~det_ignore & (gts_per_det == 0)
    fp = np.where(det.quad, false_positive_char_counts(det.quads), POLY_FALSE_POSITIVE_CHARS)
    char_det = np.bincount(gt_image[pg[inc_pair[found]]], minlength=n_img) + np.bincount(
        np.repeat(det_image[unmatched], fp[unmatched]), minlength=n_img
    )
    char_gt = np.bincount(np.repeat(gt_image[~ignore], counts[~ignore]), minlength=n_img)
    out = []
    figures = (char_gt.tolist(), char_det.tolist(), tp.tolist(), split.tolist(), merge.tolist())
    for g, d, t, s, m in zip(*figures, strict=True):
        recall = max(0.0, t - s) / g if g else 0.0
        precision = max(0.0, t - m) / d if d else 0.0
        out.append(CLEvalCounts(g, d, t, s, m, 1, recall, precision, _hmean(precision, recall)))
    return out


def cleval_image(
    gt_polys: Sequence[np.ndarray],
    gt_ignore: np.ndarray,
    det_polys: Sequence[np.ndarray],
    gt_texts: Sequence[str | None] | None = None,
    config: CLEvalConfig = CLEvalConfig(),
) -> CLEvalCounts:
    """CLEval detection counts of one image (``cleval_images``); polygons (N, 2), ignore (n_gt,) bool."""
    return cleval_images([(gt_polys, gt_ignore, gt_texts, det_polys)], config)[0]


def _intersection_areas(gt: Boxes, det: Boxes, reduced: np.ndarray, g: np.ndarray, d: np.ndarray) -> np.ndarray:
    """(m,) area of ``det[d[j]]`` & ``gt[g[j]]`` (or the don't-care word's ``reduced`` region where it has one):
    quads with convex pieces in numpy, the rest with GEOS."""
    inter = np.empty(len(g))
    plain = np.equal(reduced[g], None)
    fast = plain & gt.pieces[g] & det.pieces[d]
    inter[fast] = pieces_intersection_area(det.quad_set, det.quad_index[d[fast]], gt.quad_set, gt.quad_index[g[fast]])
    slow = np.flatnonzero(~fast)
    if len(slow):
        import shapely

        regions = reduced[g[slow]]
        own = np.flatnonzero(plain[slow])
        regions[own] = gt.geoms_at(g[slow[own]])
        inter[slow] = shapely.area(shapely.intersection(regions, det.geoms_at(d[slow])))
    return inter


def _without_care_parts(gt: Boxes, ignore: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(n,) object: for each don't-care word that overlaps care ground truth of its image, its region without
    those care words (snap-rounded to ``GRID`` and polygonal, since the area-precision overlays take it as input);
    None for every other word (its own region stands). Images are ``starts[k]:starts[k + 1]``."""
    out = np.full(len(ignore), None, dtype=object)
    dc, care = np.flatnonzero(ignore), np.flatnonzero(~ignore)
    gi, ci = image_pairs(gt.bounds[dc], np.searchsorted(dc, starts), gt.bounds[care], np.searchsorted(care, starts))
    if len(gi) == 0:
        return out
    import shapely

    overlapping = shapely.area(shapely.intersection(gt.geoms_at(care[ci]), gt.geoms_at(dc[gi]))) > 0
    gi, ci = gi[overlapping], ci[overlapping]
    if len(gi) == 0:
        return out
    covered, first, sizes = np.unique(gi, return_index=True, return_counts=True)
    # the care words over each covered don't-care word, one row each (None pads; union_all skips it)
    table = np.full((len(covered), int(sizes.max())), None, dtype=object)
    table[np.repeat(np.arange(len(covered)), sizes), np.arange(len(gi)) - np.repeat(first, sizes)] = gt.geoms_at(
        care[ci]
    )
    covers = polygonal(shapely.union_all(table, grid_size=GRID, axis=1))
    out[dc[covered]] = polygonal(shapely.difference(gt.geoms_at(dc[covered]), covers, grid_size=GRID))
    return out


class CLEval:
    """CLEval as a metric (``ocrdet.eval.metrics.METRICS["cleval"]``): ``update`` per image or ``update_images``,
    ``compute`` once, ``reset``."""

    name = "cleval"
    Counts = CLEvalCounts

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
        return self.update_images([(gt_polys, gt_ignore, gt_texts, det_polys)])[0]

    def update_images(self, images):
        """(gt polygons, ignore flags, transcriptions or None, detections) per image -> their counts."""
        counts = cleval_images(images, self.config)
        self.per_image += counts
        return counts

    @staticmethod
    def image_figures(counts: CLEvalCounts) -> dict[str, float]:
        """One image's precision / recall / hmean and character counts."""
        out = counts.totals()
        out.update(char_gt=counts.char_gt, char_det=counts.char_det, char_tp=counts.char_tp)
        return out

    def counts(self) -> CLEvalCounts:
        return sum(self.per_image, CLEvalCounts())

    def compute(self) -> dict[str, float]:
        return self.counts().metrics()

    def reset(self) -> None:
        self.per_image = []
