"""DBNet post-processing on drawn maps: shrunk boxes come back at their full size."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import shapely

from ocrdet.model.postprocess import PostprocessConfig, find_candidates, polygon_score, postprocess

CONFIG = PostprocessConfig()


def shrink_distance(w: float, h: float, ratio: float) -> float:
    """d such that unclipping the w x h rectangle shrunk by d (distance area * ratio / perimeter) restores it.

    From 2d(w + h - 4d) = ratio (w - 2d)(h - 2d): the smaller root of
    (8 + 4 ratio) d^2 - 2 (1 + ratio)(w + h) d + ratio w h = 0.
    """
    a, b, c = 8 + 4 * ratio, -2 * (1 + ratio) * (w + h), ratio * w * h
    return (-b - math.sqrt(b * b - 4 * a * c)) / (2 * a)


def draw_text_boxes(boxes: list[tuple[tuple[float, float], tuple[float, float], float]], size=(480, 640), value=0.9):
    """Map (H, W) float32 with each box ((cx, cy), (w, h), angle) drawn shrunk as DB's target would be."""
    prob = np.zeros(size, dtype=np.float32)
    for centre, (w, h), angle in boxes:
        d = shrink_distance(w, h, CONFIG.unclip_ratio)
        kernel = cv2.boxPoints((centre, (w - 2 * d, h - 2 * d), angle))
        cv2.fillPoly(prob, [np.round(kernel).astype(np.int32)], value)
    return prob


BOXES = [
    ((100.0, 50.0), (120.0, 24.0), 0.0),
    ((400.0, 60.0), (200.0, 30.0), 0.0),
    ((150.0, 200.0), (160.0, 28.0), 12.0),
    ((450.0, 300.0), (90.0, 36.0), -25.0),
    ((300.0, 420.0), (60.0, 60.0), 0.0),
    ((320.0, 360.0), (600.0, 20.0), 1.0),  # a receipt line: shrunk to ~588 x 8 px, lost with DB's tolerance
]


def test_drawn_boxes_are_recovered_within_two_pixels():
    polys, scores = postprocess(draw_text_boxes(BOXES), CONFIG)
    assert len(polys) == len(BOXES)
    assert scores.dtype == np.float32 and np.all((scores > 0.85) & (scores <= 0.9 + 1e-6))
    for (centre, (w, h), angle), poly in zip(BOXES, sorted(polys, key=lambda p: _nearest(p, BOXES)), strict=True):
        assert poly.dtype == np.float32 and poly.ndim == 2 and poly.shape[1] == 2
        (cx, cy), size, _ = cv2.minAreaRect(poly)
        assert math.dist((cx, cy), centre) < 1.5
        assert np.abs(np.sort(size) - np.sort((w, h))).max() < 2.5
        truth = shapely.Polygon(cv2.boxPoints((centre, (w, h), angle)))
        got = shapely.Polygon(poly)
        assert truth.intersection(got).area / truth.union(got).area > 0.9  # round joins cut the corners


def _nearest(poly: np.ndarray, boxes) -> int:
    centre = poly.mean(axis=0)
    return int(np.argmin([math.dist(centre, c) for c, _, _ in boxes]))


def test_empty_and_faint_maps_give_nothing():
    for prob in (np.zeros((64, 64), np.float32), np.full((64, 64), CONFIG.thresh, np.float32)):
        polys, scores = postprocess(prob, CONFIG)
        assert polys == [] and scores.shape == (0,) and scores.dtype == np.float32


def test_box_thresh_keeps_score_at_or_above():
    prob = draw_text_boxes(BOXES[:1], value=0.5)
    assert postprocess(prob, PostprocessConfig(box_thresh=0.6))[0] == []
    polys, scores = postprocess(prob, PostprocessConfig(box_thresh=0.5))
    assert len(polys) == 1 and scores[0] == pytest.approx(0.5)


def test_scale_maps_back_to_original_pixels_and_clips():
    prob = draw_text_boxes(BOXES[:2])
    ref, _ = postprocess(prob, CONFIG)
    scaled, _ = postprocess(prob, CONFIG, scale=(0.5, 0.25))
    for a, b in zip(ref, scaled, strict=True):
        np.testing.assert_allclose(b, a / np.array([0.5, 0.25], np.float32), rtol=1e-6)
    edge = np.zeros((100, 100), np.float32)
    edge[40:60, 90:] = 0.9  # touches the right border: unclipping would leave the map
    (poly,), _ = postprocess(edge, CONFIG)
    assert poly[:, 0].max() == 100.0 and poly.min() >= 0


def test_min_size_and_max_candidates():
    thin = np.zeros((100, 200), np.float32)
    thin[50:52, 20:180] = 0.9  # 2 px high shrunk region: short side 1 px in contour points
    assert postprocess(thin, CONFIG)[0] == []
    assert len(postprocess(thin, PostprocessConfig(min_size=0.5))[0]) == 1
    prob = draw_text_boxes(BOXES)
    assert len(postprocess(prob, PostprocessConfig(max_candidates=2))[0]) == 2


def test_float16_maps_give_the_same_polygons():
    prob = draw_text_boxes(BOXES, value=0.875)  # exactly representable in float16
    a, sa = postprocess(prob, CONFIG)
    b, sb = postprocess(prob.astype(np.float16), CONFIG)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True)) and np.array_equal(sa, sb)


def test_crop_score_equals_full_map_mask_mean():
    """Reference: mean over a full-size mask of the polygon (no crop)."""
    rng = np.random.default_rng(0)
    prob = cv2.GaussianBlur(draw_text_boxes(BOXES) + rng.uniform(0, 0.2, (480, 640)).astype(np.float32), (7, 7), 2)
    candidates = find_candidates(prob, CONFIG.thresh, CONFIG.max_candidates)
    assert len(candidates.polygons) >= len(BOXES)
    for poly, score in zip(candidates.polygons, candidates.scores, strict=True):
        mask = np.zeros(prob.shape, np.uint8)
        cv2.fillPoly(mask, [poly], 1)
        assert score == pytest.approx(prob[mask.astype(bool)].mean(), rel=1e-5)
        assert polygon_score(prob, poly) == pytest.approx(score)


def test_one_map_only():
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        postprocess(np.zeros((2, 8, 8), np.float32), CONFIG)
