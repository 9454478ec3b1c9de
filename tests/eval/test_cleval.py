"""CLEval detection: hand-computed cases, properties, and the vectorized path against a per-pair reference loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from ocrdet.bench.eval_bench import perturb
from ocrdet.data.io.format import load_annotations
from ocrdet.eval.cleval import (
    CLEval,
    CLEvalConfig,
    CLEvalCounts,
    char_quads,
    cleval_image,
    false_positive_char_counts,
    pseudo_char_counts,
)


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


# --- the reference: clovaai/CLEval's loops (QUAD boxes), one pair and one centre at a time ---------------


def _region(points: np.ndarray) -> shapely.Geometry:
    """The even-odd region: the polygons of ``make_valid``, without the lines of edges that cancel out."""
    poly = shapely.Polygon(points)
    if poly.is_valid:
        return poly
    parts = shapely.get_parts(shapely.make_valid(poly, method="linework"))
    return shapely.MultiPolygon([p for part in parts for p in shapely.get_parts(part) if p.geom_type == "Polygon"])


def _shoelace(points: np.ndarray) -> float:
    x, y = points.T
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _aspect_ratio(q: np.ndarray) -> float:
    top, right = math.dist(q[0], q[1]), math.dist(q[1], q[2])
    bottom, left = math.dist(q[2], q[3]), math.dist(q[3], q[0])
    return ((top + bottom) / 2 + 1e-5) / ((right + left) / 2 + 1e-5)


def _centres(q: np.ndarray, length: int, vertical_threshold: float) -> list[tuple[float, float]]:
    if _aspect_ratio(q) >= vertical_threshold:
        left_top, right_top, right_bottom, left_bottom = q[0], q[1], q[2], q[3]
    else:
        left_top, right_top, right_bottom, left_bottom = q[3], q[0], q[1], q[2]
    p1 = (left_top + left_bottom) / 2
    p2 = (right_top + right_bottom) / 2
    unit = (p2 - p1) / length
    return [tuple(p1 + unit / 2 + unit * i) for i in range(length)]


def _apart(a: np.ndarray, b: np.ndarray) -> bool:
    return bool((a.max(0) < b.min(0)).any() or (b.max(0) < a.min(0)).any())


def reference_cleval_image(gt_polys, gt_ignore, det_polys, gt_texts=None, config=CLEvalConfig()):
    """CLEval ``evaluation`` + ``eval_det`` for 4-point boxes, transliterated with shapely."""
    c = config.area_precision_threshold
    gts = [np.asarray(p, dtype=np.float64) for p in gt_polys]
    dets = [np.asarray(p, dtype=np.float64) for p in det_polys]
    assert all(len(p) == 4 for p in gts + dets)
    n_gt, n_det = len(gts), len(dets)
    dc = {g for g in range(n_gt) if gt_ignore[g]}
    lengths = []
    for g, q in enumerate(gts):
        text = None if gt_texts is None else gt_texts[g]
        if g in dc or not text:
            ar = _aspect_ratio(q)
            lengths.append(min(round(0.5 + max(ar, 1 / ar)), 10))
        else:
            lengths.append(len(text))
    pccs = [_centres(q, n, config.vertical_aspect_ratio_threshold) for q, n in zip(gts, lengths, strict=True)]

    gt_regions = [_region(q) for q in gts]
    det_regions = [_region(q) for q in dets]
    for d_idx in dc:
        for idx in range(n_gt):
            if idx not in dc and not _apart(gts[idx], gts[d_idx]):
                if gt_regions[idx].intersection(gt_regions[d_idx]).area > 0:
                    gt_regions[d_idx] = gt_regions[d_idx].difference(gt_regions[idx])

    ap = np.zeros((n_gt, n_det))
    inside = [[[False] * lengths[g] for _ in range(n_det)] for g in range(n_gt)]
    for g in range(n_gt):
        for d in range(n_det):
            if _apart(gts[g], dets[d]):
                continue
            det_area = _shoelace(dets[d])
            if det_area > 0:
                ap[g, d] = gt_regions[g].intersection(det_regions[d]).area / det_area
            for k, (x, y) in enumerate(pccs[g]):
                inside[g][d][k] = det_regions[d].contains(shapely.Point(x, y))
    pcc_sum = np.array([[sum(inside[g][d]) for d in range(n_det)] for g in range(n_gt)], dtype=int).reshape(n_gt, n_det)

    det_dc = set()
    if dc:
        for d in range(n_det):
            ap_sum = 0.0
            for g in sorted(dc):
                if ap[g, d] >= c:
                    det_dc.add(d)
                    break
                if pcc_sum[g, d] > 0:
                    ap_sum += ap[g, d]
            if ap_sum >= c:
                det_dc.add(d)
    gt_valid = [g for g in range(n_gt) if g not in dc]
    det_valid = [d for d in range(n_det) if d not in det_dc]

    def linked(g, d):
        return ap[g, d] >= c and pcc_sum[g, d] > 0

    match = np.zeros((n_gt, n_det), dtype=bool)
    links_of_gt = [sum(linked(g, i) for i in range(n_det)) for g in range(n_gt)]  # over all, don't care too
    links_of_det = [sum(linked(i, d) for i in range(n_gt)) for d in range(n_det)]
    for g in gt_valid:
        for d in det_valid:
            if links_of_gt[g] == 1 and links_of_det[d] == 1 and linked(g, d):
                match[g, d] = True
    for g in gt_valid:
        partners = [d for d in det_valid if linked(g, d)]
        if len(partners) >= 2:
            match[g, partners] = True
    for d in det_valid:
        partners = [g for g in gt_valid if pcc_sum[g, d] > 0]
        if len(partners) >= 2 and sum(ap[g, d] for g in partners) >= c:
            match[partners, d] = True

    checked = [[False] * lengths[g] for g in range(n_gt)]
    tp = found_incidences = 0
    merge = split = 0.0
    for d in det_valid:
        partners = [g for g in range(n_gt) if match[g, d]]
        for g in partners:
            for k in range(lengths[g]):
                if inside[g][d][k]:
                    found_incidences += 1
                    if not checked[g][k]:
                        checked[g][k] = True
                        tp += 1
        merge += max(len(partners) - 1, 0) * config.precision_granularity_penalty
    for g in gt_valid:
        split += max(int(match[g].sum()) - 1, 0) * config.recall_granularity_penalty
    fp = 0
    for d in det_valid:
        if not match[:, d].any():
            fp += min(round(0.5 + 1 / (1e-5 + _aspect_ratio(dets[d]))), 10)
    char_gt = sum(lengths[g] for g in gt_valid)
    char_det = found_incidences + fp
    recall = max(0.0, tp - split) / char_gt if char_gt else 0.0
    precision = max(0.0, tp - merge) / char_det if char_det else 0.0
    hmean = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
    return CLEvalCounts(char_gt, char_det, tp, split, merge, 1, recall, precision, hmean)


def assert_same(fast: CLEvalCounts, ref: CLEvalCounts) -> None:
    assert (fast.char_gt, fast.char_det, fast.char_tp, fast.images) == (ref.char_gt, ref.char_det, ref.char_tp, 1)
    assert (fast.split_penalty, fast.merge_penalty) == (ref.split_penalty, ref.merge_penalty)
    assert fast.as_tuple()[6:] == pytest.approx(ref.as_tuple()[6:], abs=1e-12)


# --- hand-computed cases -------------------------------------------------------------------------------------


def test_perfect_prediction_scores_one():
    gts = [rect(0, 0, 40, 10), rect(0, 20, 100, 30), rect(110, 0, 120, 40)]
    texts = ["ABCD", "TOTAL 12.50", "XY"]
    counts = cleval_image(gts, np.zeros(3, dtype=bool), gts, texts)
    assert (counts.char_gt, counts.char_det, counts.char_tp) == (17, 17, 17)
    assert counts.totals() == {"precision": 1.0, "recall": 1.0, "hmean": 1.0}
    assert counts.image_mean() == {"precision": 1.0, "recall": 1.0, "hmean": 1.0}


@pytest.mark.parametrize(
    ("box", "chars"),
    [(rect(0, 0, 100, 20), 5), (rect(0, 0, 20, 100), 5), (rect(0, 0, 20, 20), 2), (rect(0, 0, 300, 10), 10)],
)
def test_pseudo_character_count_from_aspect_ratio(box, chars):
    """min(round(0.5 + max(r, 1/r)), 10): the 1e-5 in r = (100 + 1e-5) / (20 + 1e-5) makes 5.4999975 -> 5;
    a square gives round(1.5) = 2 (half to even)."""
    assert pseudo_char_counts(char_quads([box]))[0] == chars
    assert cleval_image([box], np.array([False]), [box]).char_gt == chars


def test_false_positive_characters_depend_on_orientation():
    assert false_positive_char_counts(char_quads([rect(0, 0, 30, 10), rect(0, 0, 10, 30)])).tolist() == [1, 3]
    counts = cleval_image([rect(0, 0, 20, 10)], np.array([False]), [rect(0, 0, 20, 10), rect(50, 50, 80, 60)], ["AB"])
    assert (counts.char_tp, counts.char_det) == (2, 3)
    assert counts.totals()["precision"] == pytest.approx(2 / 3)


def test_split_word_costs_recall():
    counts = cleval_image(
        [rect(0, 0, 80, 10)], np.array([False]), [rect(0, 0, 40, 10), rect(40, 0, 80, 10)], ["ABCDEFGH"]
    )
    assert (counts.char_tp, counts.char_det, counts.split_penalty, counts.merge_penalty) == (8, 8, 1.0, 0.0)
    assert counts.totals()["recall"] == 7 / 8 and counts.totals()["precision"] == 1.0


def test_merged_words_cost_precision():
    gts = [rect(0, 0, 40, 10), rect(45, 0, 85, 10)]
    counts = cleval_image(gts, np.zeros(2, dtype=bool), [rect(0, 0, 85, 10)], ["ABCD", "EFGH"])
    assert (counts.char_tp, counts.char_det, counts.split_penalty, counts.merge_penalty) == (8, 8, 0.0, 1.0)
    assert counts.totals()["recall"] == 1.0 and counts.totals()["precision"] == 7 / 8


def test_vertical_words_are_read_top_to_bottom():
    word = rect(0, 0, 10, 80)  # aspect ratio 1/8 < 0.5: centres at y = 10, 30, 50, 70
    counts = cleval_image([word], np.array([False]), [rect(0, 0, 10, 40), rect(0, 40, 10, 80)], ["ABCD"])
    assert (counts.char_tp, counts.split_penalty) == (4, 1.0)


def test_detections_on_dont_care_words_are_ignored_from_area_precision_0_3():
    gts = [rect(0, 0, 100, 20), rect(200, 0, 240, 10)]
    ignore = np.array([True, False])
    dets = [rect(60, 0, 160, 20), rect(200, 0, 240, 10)]  # the first: 40% inside the don't-care word
    counts = cleval_image(gts, ignore, dets, [None, "ABCD"])
    assert (counts.char_gt, counts.char_det, counts.char_tp) == (4, 4, 4)


def test_dont_care_area_under_care_words_does_not_count():
    gts = [rect(0, 0, 40, 10), rect(0, 0, 80, 10)]  # a care word inside a don't-care region
    counts = cleval_image(gts, np.array([False, True]), [rect(0, 0, 40, 10)], ["ABCD", None])
    assert counts.totals()["hmean"] == 1.0


def test_empty_image_scores_zero_and_counts_in_the_image_mean():
    empty = cleval_image([], np.zeros(0, dtype=bool), [])
    perfect = cleval_image([rect(0, 0, 40, 10)], np.array([False]), [rect(0, 0, 40, 10)], ["ABCD"])
    assert empty.totals() == {"precision": 0.0, "recall": 0.0, "hmean": 0.0}
    both = empty + perfect
    assert both.totals()["hmean"] == 1.0
    assert both.image_mean()["hmean"] == 0.5


def test_two_averagings_differ_by_hand():
    big = [rect(0, 0, 100, 10)]  # 10 characters, all found
    small = [rect(0, 0, 20, 10)]  # 2 characters, one found by a half-width detection
    metric = CLEval()
    metric.update(big, np.array([False]), big, ["ABCDEFGHIJ"])
    metric.update(small, np.array([False]), [rect(0, 0, 10, 10)], ["AB"])
    result = metric.compute()
    # totals: tp 11 of 12 GT chars; detected chars 10 + 1
    assert result["recall"] == pytest.approx(11 / 12) and result["precision"] == 1.0
    # per image: (1, 1) and (recall 0.5, precision 1): means 0.75, 1, and hmean (1 + 2/3) / 2
    assert result["mean_recall"] == 0.75 and result["mean_precision"] == 1.0
    assert result["mean_hmean"] == pytest.approx((1 + 2 / 3) / 2)
    metric.reset()
    assert metric.compute()["images"] == 0


def test_polygons_use_their_minimum_area_rectangle():
    hexagon = np.array([[0, 0], [50, -2], [100, 0], [100, 20], [50, 22], [0, 20]], dtype=np.float64)
    quad = char_quads([hexagon])[0]
    assert sorted(np.linalg.norm(quad - np.roll(quad, -1, axis=0), axis=1).round(3)) == [24, 24, 100, 100]
    np.testing.assert_allclose(quad, [[0, -2], [100, -2], [100, 22], [0, 22]], atol=1e-9)  # clockwise from min x + y
    assert cleval_image([hexagon], np.array([False]), [hexagon]).char_gt == pseudo_char_counts(char_quads([hexagon]))[0]


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="ignore flags"):
        cleval_image([rect(0, 0, 1, 1)], np.zeros(2, dtype=bool), [])
    with pytest.raises(ValueError, match="detection polygon 0"):
        cleval_image([], np.zeros(0, dtype=bool), [np.zeros((2, 2))])


def test_detection_doubling_back_is_its_polygonal_region():
    """Regression, the fuzz case that raised GEOSException: the detection's ring runs back over (0, 0)-(0.5, 0),
    so ``make_valid`` gave a triangle plus a line, and GEOS could not intersect that with the don't-care
    triangle, which is empty once the care triangle around it is removed. The region is now the triangle
    (0, 1), (1, 0), (0.5, 0), of area 0.25: all inside the care word (2 pseudo characters, centres on the
    region's corners (0, 1) and (1, 0), so not inside), nothing in the don't-care one. An unmatched care
    detection, charged 1 character."""
    gts = [np.array([[2.0, 0], [0, 2], [0, 0]]), np.array([[0.0, 1], [1, 0], [1, 1]])]
    det = np.array([[0.5, 0], [0, 1], [1, 0], [0, 0]])
    counts = cleval_image(gts, np.array([False, True]), [det])
    assert (counts.char_gt, counts.char_det, counts.char_tp) == (2, 1, 0)
    assert (counts.split_penalty, counts.merge_penalty) == (0.0, 0.0)
    assert counts.totals() == {"precision": 0.0, "recall": 0.0, "hmean": 0.0}


def test_doubled_back_quad_matches_by_its_triangle_as_in_the_reference():
    """The quad runs back over (0, 0)-(20, 0): its region is the triangle (20, 0), (0, 10), (40, 0), which
    holds the centre (15, 5) of "ABCD" (centres at x = 5, 15, 25, 35) and lies inside the word: a one-to-one
    match, 1 of 4 characters. The don't-care word under the care one used to crash GEOS here too."""
    gts = [rect(0, 0, 40, 10), rect(5, 2, 15, 8)]
    ignore = np.array([False, True])
    dets = [np.array([[20.0, 0], [0, 10], [40, 0], [0, 0]])]
    counts = cleval_image(gts, ignore, dets, ["ABCD", None])
    assert (counts.char_gt, counts.char_det, counts.char_tp) == (4, 1, 1)
    assert_same(counts, reference_cleval_image(gts, ignore, dets, ["ABCD", None]))


NEARLY_COINCIDENT_RINGS = [
    np.array([[2.0, 2], [1, 2], [0, 2], [2, 4], [-4.87394695e-77, 2], [2, 5]]),
    np.array([[0.0, 1], [0, 0], [0, 2], [1, 5.04271746e-54], [1, 0], [0, 0]]),
]


@pytest.mark.parametrize("ring", NEARLY_COINCIDENT_RINGS, ids=["make-valid-hole-outside-shell", "sliver-1e-54"])
def test_nearly_coincident_points_keep_the_region(ring):
    """Fuzz cases: ``make_valid`` made the first ring a shell with its "hole" outside, floating-point overlays
    of the second one's fan triangles an invalid polygon, and the next overlay raised a TopologyException.
    The region keeps the ring's whole |shoelace| area (3 and 1), so as a don't-care word its own polygon is
    ignored (AP 1), and as a care word it is matched."""
    assert cleval_image([ring], np.array([True]), [ring]) == CLEvalCounts(images=1)
    counts = cleval_image([ring], np.array([False]), [ring])
    assert (counts.char_gt, counts.char_det, counts.char_tp) == (2, 1, 1)


def test_line_left_of_a_dont_care_word_is_dropped():
    """Fuzz case: the don't-care sliver quad minus the care triangle snap-rounds to polygons plus a line, and
    GEOS could not intersect that with the empty region of the collapsed detection. Now the detection just
    matches nothing (AP 0): the triangle's 2 characters missed, 1 false-positive character charged."""
    collapsed = np.array([[6.26406753, 6.26406753], [6.26406753, 1], [6.26406753, 6.26406753], [0, 6.26406753]])
    triangle = np.array([[1.0, 1], [0, 1], [0, 0]])
    sliver = np.array([[0.0, 2], [0.5, 0], [1, -1.50314653e-269], [0, 0]])
    counts = cleval_image([collapsed, triangle, sliver], np.array([True, False, True]), [collapsed])
    assert (counts.char_gt, counts.char_det, counts.char_tp) == (2, 1, 0)


# --- properties ------------------------------------------------------------------------------------------------


@st.composite
def scenes(draw):
    """Integer rectangles: words (some don't care, some with text) and detections, anywhere."""
    n = draw(st.integers(0, 5))
    gts, ignore, texts, dets = [], [], [], []
    for _ in range(n):
        x, y, w, h = (
            draw(st.integers(0, 100)),
            draw(st.integers(0, 100)),
            draw(st.integers(4, 60)),
            draw(st.integers(4, 30)),
        )
        gts.append(rect(x, y, x + w, y + h))
        ignore.append(draw(st.booleans()))
        texts.append(draw(st.one_of(st.none(), st.text("abc ", min_size=1, max_size=8))))
        for _ in range(draw(st.integers(0, 2))):
            dx, dy, dw, dh = (draw(st.integers(-8, 8)) for _ in range(4))
            dets.append(rect(x + dx, y + dy, x + dx + max(1, w + dw), y + dy + max(1, h + dh)))
    for _ in range(draw(st.integers(0, 2))):
        x, y = draw(st.integers(0, 120)), draw(st.integers(0, 120))
        dets.append(rect(x, y, x + draw(st.integers(1, 40)), y + draw(st.integers(1, 40))))
    return gts, np.array(ignore, dtype=bool), texts, dets


@settings(max_examples=50, deadline=None)
@given(scene=scenes(), data=st.data(), dx=st.integers(-3000, 3000), dy=st.integers(-3000, 3000))
def test_invariant_to_order_and_translation_and_equal_to_reference(scene, data, dx, dy):
    gts, ignore, texts, dets = scene
    base = cleval_image(gts, ignore, dets, texts)
    assert_same(base, reference_cleval_image(gts, ignore, dets, texts))
    go = list(data.draw(st.permutations(range(len(gts)))))
    do = list(data.draw(st.permutations(range(len(dets)))))
    shuffled = cleval_image([gts[i] for i in go], ignore[go], [dets[i] for i in do], [texts[i] for i in go])
    assert shuffled == base
    shift = np.array([dx, dy], dtype=np.float64)
    assert cleval_image([g + shift for g in gts], ignore, [d + shift for d in dets], texts) == base


# --- the vectorized path against the reference on real ground truth ------------------------------------------


@pytest.mark.parametrize("count", [150, pytest.param(500, marks=pytest.mark.slow)])
def test_fast_path_equals_reference_on_icdar2015(icdar_images, icdar_detections, count):
    for (_, polys, ignore, texts), dets in list(zip(icdar_images, icdar_detections, strict=True))[:count]:
        assert_same(cleval_image(polys, ignore, dets, texts), reference_cleval_image(polys, ignore, dets, texts))


@pytest.mark.parametrize("count", [5, pytest.param(30, marks=pytest.mark.slow)])
def test_fast_path_equals_reference_on_sroie_receipts(shared_data, count):
    path = shared_data / "sroie" / "jsons" / "val.json"
    if not path.exists():
        pytest.skip(f"{path} not present")
    rng = np.random.default_rng(7)
    for image in list(load_annotations(path).images.values())[:count]:
        polys, ignore = image.polygons()
        texts = [w.transcription for w in image.words.values()]
        dets = perturb(polys, rng)
        assert_same(cleval_image(polys, ignore, dets, texts), reference_cleval_image(polys, ignore, dets, texts))
        assert_same(cleval_image(polys, ignore, dets), reference_cleval_image(polys, ignore, dets))
