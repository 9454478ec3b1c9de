"""ICDAR 2015 IoU H-mean: hand-computed rules, properties, and the bulk path against a per-pair reference loop."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocrdet.eval.iou_hmean import ImageCounts, IoUHmean, match_image, match_images
from ocrdet.eval.iou_hmean_reference import reference_match_image


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Clockwise (image coordinates) axis-aligned rectangle."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


# --- hand-computed rules ----------------------------------------------------------------------------------


def test_perfect_prediction_scores_one():
    gts = [rect(0, 0, 10, 5), rect(20, 0, 40, 8), rect(0, 20, 7, 30)]
    counts = match_image(gts, np.zeros(3, dtype=bool), gts)
    assert counts == ImageCounts(3, 3, 3)
    assert counts.metrics()["hmean"] == 1.0
    assert counts.image_metrics()["hmean"] == 1.0


def test_iou_must_be_strictly_above_threshold():
    gt = [rect(0, 0, 10, 10)]
    exactly_half = [rect(0, 0, 10, 5)]  # inter 50, union 100
    assert match_image(gt, np.array([False]), exactly_half).matched == 0
    assert match_image(gt, np.array([False]), [rect(0, 0, 10, 5.1)]).matched == 1


def test_greedy_matching_follows_input_order_not_best_iou():
    gts = [rect(0, 0, 10, 10), rect(1, 0, 11, 10)]
    both = rect(0.5, 0, 10.5, 10)  # IoU 95/105 with each GT
    first_only = rect(-3, 0, 7, 10)  # IoU 70/130 with GT 0, 60/140 with GT 1
    ignore = np.zeros(2, dtype=bool)
    assert match_image(gts, ignore, [both, first_only]).matched == 1  # GT 0 takes det 0; det 1 fails GT 1
    assert match_image(gts, ignore, [first_only, both]).matched == 2
    assert reference_match_image(gts, ignore, [both, first_only]).matched == 1


def test_detection_mostly_inside_one_dont_care_is_ignored():
    gts = [rect(0, 0, 10, 10), rect(20, 0, 30, 10)]
    ignore = np.array([True, False])
    inside_60 = rect(4, 0, 14, 10)  # 60 of its 100 inside the don't-care GT
    counts = match_image(gts, ignore, [inside_60])
    assert counts == ImageCounts(gt_care=1, det_care=0, matched=0)


def test_half_inside_dont_care_is_not_enough():
    counts = match_image([rect(0, 0, 10, 10)], np.array([True]), [rect(5, 0, 15, 10)])
    assert counts == ImageCounts(gt_care=0, det_care=1, matched=0)


def test_dont_care_rule_uses_one_polygon_not_their_sum():
    gts = [rect(0, 0, 10, 10), rect(10, 0, 20, 10)]
    det = rect(6, 0, 14, 10)  # 40% in each don't-care GT, 80% in both together
    assert match_image(gts, np.array([True, True]), [det]).det_care == 1


def test_dont_care_detection_does_not_count_even_when_it_matches_a_care_word():
    gts = [rect(0, 0, 10, 10), rect(0, 0, 10, 10)]
    counts = match_image(gts, np.array([False, True]), [rect(0, 0, 10, 10)])
    assert counts == ImageCounts(gt_care=1, det_care=0, matched=0)


def test_image_without_care_ground_truth():
    only_dont_care = match_image([rect(0, 0, 10, 10)], np.array([True]), [rect(50, 50, 60, 60)])
    assert only_dont_care.image_metrics()["recall"] == 1.0
    assert only_dont_care.image_metrics()["precision"] == 0.0
    empty = match_image([], np.zeros(0, dtype=bool), [])
    assert empty == ImageCounts()
    assert (empty.image_metrics()["precision"], empty.image_metrics()["recall"]) == (1.0, 1.0)
    assert empty.metrics()["hmean"] == 0.0  # data set: 0 where a denominator is 0


def test_zero_area_detection_counts_but_never_matches_nor_is_dont_care():
    flat = np.array([[0, 0], [5, 0], [10, 0]], dtype=np.float64)
    counts = match_image([rect(0, 0, 10, 10), rect(0, -1, 10, 1)], np.array([False, True]), [flat])
    assert counts == ImageCounts(gt_care=1, det_care=1, matched=0)


def test_bow_tie_uses_the_official_area_and_even_odd_intersection():
    """Shoelace area of the symmetric bow-tie is 0, its two lobes cover 2: IoU = 2 / (0 + 4 - 2) = 1."""
    bow_tie = np.array([[0, 0], [2, 2], [2, 0], [0, 2]], dtype=np.float64)
    counts = match_image([rect(0, 0, 2, 2)], np.array([False]), [bow_tie])
    assert counts == ImageCounts(1, 1, 1)
    assert reference_match_image([rect(0, 0, 2, 2)], np.array([False]), [bow_tie]) == counts


def test_orientation_and_polygons_with_many_points():
    gt = [np.array([[0, 0], [5, -1], [10, 0], [10, 10], [5, 11], [0, 10]], dtype=np.float64)]
    det = [gt[0][::-1] + 0.3]
    assert match_image(gt, np.array([False]), det).matched == 1


def test_counts_add_and_metric_protocol():
    metric = IoUHmean()
    metric.update([rect(0, 0, 10, 10)], np.array([False]), [rect(0, 0, 10, 10)])
    metric.update([rect(0, 0, 10, 10)], np.array([False]), [rect(30, 30, 40, 40), rect(0, 0, 10, 9)])
    assert metric.counts() == ImageCounts(1, 1, 1) + ImageCounts(1, 2, 1) == ImageCounts(2, 3, 2)
    result = metric.compute()
    assert (result["precision"], result["recall"]) == (2 / 3, 1.0)
    assert result["hmean"] == pytest.approx(0.8)
    metric.reset()
    assert metric.compute()["hmean"] == 0.0


@pytest.mark.parametrize(
    ("polys", "message"),
    [([np.zeros((2, 2))], "detection polygon 0"), ([rect(0, 0, 1, 1), np.full((4, 2), np.nan)], "polygon 1")],
)
def test_bad_polygons_are_named(polys, message):
    with pytest.raises(ValueError, match=message):
        match_image([rect(0, 0, 1, 1)], np.array([False]), polys)


def test_ignore_flags_must_match_polygons():
    with pytest.raises(ValueError, match="2 ignore flags"):
        match_image([rect(0, 0, 1, 1)], np.array([False, True]), [])


# --- properties ---------------------------------------------------------------------------------------------


@st.composite
def scenes(draw, rotated: bool):
    """Disjoint ground truth (one word per grid cell, some don't care) and detections near it."""
    n = draw(st.integers(0, 6))
    cells = draw(st.permutations(range(9)))[:n]
    gts, ignore, dets = [], [], []
    for cell in cells:
        x0, y0 = 40 * (cell % 3), 40 * (cell // 3)
        w, h = draw(st.integers(4, 30)), draw(st.integers(4, 30))
        gt = rect(x0, y0, x0 + w, y0 + h)
        if rotated:
            gt[:, 0] += draw(st.integers(0, 5)) * np.array([0, 1, 0, -1]) + 5
        gts.append(gt)
        ignore.append(draw(st.booleans()))
        for _ in range(draw(st.integers(0, 2))):
            dx, dy, dw, dh = (draw(st.integers(-6, 6)) for _ in range(4))
            dets.append(rect(x0 + dx, y0 + dy, x0 + dx + max(1, w + dw), y0 + dy + max(1, h + dh)))
    for _ in range(draw(st.integers(0, 3))):
        x, y = draw(st.integers(-10, 120)), draw(st.integers(-10, 120))
        dets.append(rect(x, y, x + draw(st.integers(1, 40)), y + draw(st.integers(1, 40))))
    return gts, np.array(ignore, dtype=bool), dets


@settings(max_examples=60, deadline=None)
@given(scene=scenes(rotated=True), data=st.data())
def test_invariant_to_polygon_order(scene, data):
    gts, ignore, dets = scene
    gt_order = data.draw(st.permutations(range(len(gts))))
    det_order = data.draw(st.permutations(range(len(dets))))
    shuffled = match_image([gts[i] for i in gt_order], ignore[list(gt_order)], [dets[i] for i in det_order])
    assert shuffled == match_image(gts, ignore, dets)


@settings(max_examples=60, deadline=None)
@given(scene=scenes(rotated=False), dx=st.integers(-5000, 5000), dy=st.integers(-5000, 5000))
def test_invariant_to_translation(scene, dx, dy):
    gts, ignore, dets = scene
    shift = np.array([dx, dy], dtype=np.float64)
    moved = match_image([g + shift for g in gts], ignore, [d + shift for d in dets])
    assert moved == match_image(gts, ignore, dets)
    assert moved == reference_match_image(gts, ignore, dets)


# --- the bulk path against the reference on real ground truth ---------------------------------------------


def test_bulk_path_equals_reference_on_icdar2015(icdar_images, icdar_detections):
    images = [(polys, ignore, dets) for (_, polys, ignore, _), dets in zip(icdar_images, icdar_detections, strict=True)]
    fast = match_images(images)
    reference = [reference_match_image(*image) for image in images]
    assert fast == reference
    total = sum(fast, ImageCounts())
    assert total.gt_care == 2077  # the data set's documented care-word count
    assert 0 < total.matched < total.gt_care  # the perturbation leaves a non-trivial score


def test_icdar2015_perfect_prediction(icdar_images):
    images = [(polys, ignore, polys) for _, polys, ignore, _ in icdar_images]
    total = sum(match_images(images), ImageCounts())
    assert total == ImageCounts(2077, 2077, 2077)
