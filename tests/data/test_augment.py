from __future__ import annotations

import math

import albumentations as A
import cv2
import numpy as np
import pytest

from ocrdet.data.transforms.augment import (
    AugmentConfig,
    WarpParams,
    brightness_contrast,
    color_jitter,
    letterbox,
    random_warp,
    sample_warp,
    transform_polygons,
    warp,
    warp_matrix,
)
from ocrdet.data.transforms.augment_reference import reference_warp

QUAD = np.array([[100, 200], [400, 230], [380, 330], [90, 300]], dtype=np.float32)


def fill(shape: tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    """Bool mask of the pixels whose centres the polygon covers (sub-pixel fillPoly)."""
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.fillPoly(mask, [np.round((polygon - 0.5) * 16).astype(np.int32)], 1, shift=4)
    return mask > 0


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def image_with(polygon: np.ndarray, height: int = 900, width: int = 500) -> np.ndarray:
    return np.repeat(fill((height, width), polygon)[:, :, None] * np.uint8(255), 3, axis=2)


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(0, 256, (height // 16 + 2, width // 16 + 2, 3), dtype=np.uint8)
    return cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("seed", range(8))
def test_polygon_moves_with_the_image(seed: int) -> None:
    config = AugmentConfig(flip_prob=0.5, rotate_deg=30.0)
    out, polygons, kept = random_warp(image_with(QUAD), [QUAD], np.random.default_rng(seed), config)
    assert out.dtype == np.uint8 and out.shape == (640, 640, 3)
    assert kept.tolist() == [0] and polygons[0].dtype == np.float32
    assert iou(out[:, :, 0] > 127, fill((640, 640), polygons[0])) > 0.95


@pytest.mark.parametrize(
    "params",
    [
        WarpParams(zoom=0.8, angle_deg=7.0, flip=False, x0=13, y0=40),
        WarpParams(zoom=1.3, angle_deg=-9.5, flip=True, x0=100, y0=250),
        WarpParams(zoom=0.4, angle_deg=3.0, flip=True, x0=0, y0=0),
    ],
)
def test_fused_warp_equals_separate_steps(params: WarpParams) -> None:
    image = smooth_image(700, 450)
    fused, polygons, _ = warp(image, [QUAD], warp_matrix(params, 700, 450), 320)
    steps, points = reference_warp(image, QUAD, params, 320)
    diff = np.abs(fused.astype(int) - steps.astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.05
    np.testing.assert_allclose(polygons[0], points, atol=1e-3)


def test_sampled_warp_stays_in_the_configured_ranges() -> None:
    config = AugmentConfig(size=320, scale=(0.5, 2.0), rotate_deg=10.0, flip_prob=0.5)
    draws = [sample_warp(900, 500, [QUAD], np.random.default_rng(seed), config) for seed in range(200)]
    zooms = np.array([d.zoom for d in draws]) / (320 / 900)
    assert zooms.min() >= 0.5 and zooms.max() <= 2.0 and np.ptp(zooms) > 1.0
    assert all(abs(d.angle_deg) <= 10.0 for d in draws)
    assert 0.3 < np.mean([d.flip for d in draws]) < 0.7
    assert not any(sample_warp(900, 500, [QUAD], np.random.default_rng(s), AugmentConfig()).flip for s in range(50))


def test_window_avoids_cutting_text_and_holds_a_whole_polygon() -> None:
    """Rows of short words with gaps: every window should fall between words and contain one."""
    words = [
        np.array([[x, y], [x + 60, y], [x + 60, y + 20], [x, y + 20]], dtype=np.float32)
        for y in range(20, 1980, 80)
        for x in range(20, 980, 160)
    ]
    config = AugmentConfig(size=256, scale=(6.0, 6.0), rotate_deg=0.0)  # the image is 3x / 6x the window
    for seed in range(20):
        params = sample_warp(2000, 1000, words, np.random.default_rng(seed), config)
        moved = transform_polygons(words, warp_matrix(params, 2000, 1000))
        low = np.array([p.min(axis=0) for p in moved])
        high = np.array([p.max(axis=0) for p in moved])
        inside = ((low >= 0) & (high <= 256)).all(axis=1)
        outside = ((high <= 0) | (low >= 256)).any(axis=1)
        assert inside.any()
        assert (inside | outside).all(), "a window edge cuts through a word"


def test_polygons_outside_the_window_are_dropped_with_their_index() -> None:
    far = QUAD + [0, 2000]
    out, polygons, kept = warp(image_with(QUAD), [far, QUAD, far], np.array([[1.0, 0, 0], [0, 1.0, 0]]), 640)
    assert kept.tolist() == [1]
    np.testing.assert_allclose(polygons[0], QUAD)
    assert kept.dtype == np.int64 and warp(out, [], np.eye(2, 3), 64)[2].shape == (0,)


def test_random_warp_is_deterministic_under_a_seed() -> None:
    image = smooth_image(600, 400)
    first = random_warp(image, [QUAD], np.random.default_rng(5))
    again = random_warp(image, [QUAD], np.random.default_rng(5))
    other = random_warp(image, [QUAD], np.random.default_rng(6))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1][0], again[1][0])
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize(("height", "width", "size"), [(900, 500, 640), (300, 200, 640), (240, 800, 320)])
def test_letterbox_scales_pads_and_maps_back(height: int, width: int, size: int) -> None:
    polygon = np.array([[0.2, 0.2], [0.8, 0.25], [0.75, 0.8], [0.15, 0.7]], dtype=np.float32) * [width, height]
    out, polygons, scale = letterbox(image_with(polygon, height, width), [polygon], size)
    assert out.dtype == np.uint8 and out.shape == (size, size, 3)
    assert scale == pytest.approx(size / max(height, width))
    assert not out[math.ceil(height * scale) :].any() and not out[:, math.ceil(width * scale) :].any()
    np.testing.assert_allclose(polygons[0] / scale, polygon, rtol=1e-6, atol=1e-4)
    assert iou(out[:, :, 0] > 127, fill((size, size), polygons[0])) > 0.95


def test_brightness_contrast_equals_albumentations() -> None:
    image = smooth_image(64, 48)
    for alpha, beta in [(1.2, -0.1), (0.8, 0.15), (1.0, 0.0)]:
        reference = A.RandomBrightnessContrast(
            brightness_limit=(beta, beta), contrast_limit=(alpha - 1, alpha - 1), ensure_safe_range=False, p=1.0
        )
        np.testing.assert_array_equal(brightness_contrast(image, alpha, beta), reference(image=image)["image"])


def test_color_jitter_keeps_uint8_and_is_seeded() -> None:
    image = smooth_image(64, 48)
    out = color_jitter(image, np.random.default_rng(1))
    assert out.dtype == np.uint8 and out.shape == image.shape and not np.array_equal(out, image)
    np.testing.assert_array_equal(out, color_jitter(image, np.random.default_rng(1)))
    np.testing.assert_array_equal(
        color_jitter(image, np.random.default_rng(1), AugmentConfig(brightness=0.0, contrast=0.0)), image
    )


@pytest.mark.parametrize(
    "image", [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8), np.zeros((0, 8, 3), np.uint8)]
)
def test_bad_image_is_named(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="image"):
        random_warp(image, [], np.random.default_rng(0))
    with pytest.raises(ValueError, match="image"):
        letterbox(image, [], 64)


def test_bad_polygon_is_named() -> None:
    with pytest.raises(ValueError, match="polygon 1"):
        random_warp(smooth_image(64, 64), [QUAD, np.zeros((4, 3))], np.random.default_rng(0))


@pytest.mark.parametrize(
    "kwargs",
    [{"size": 0}, {"scale": (0.0, 1.0)}, {"scale": (2.0, 1.0)}, {"flip_prob": 1.5}, {"crop_tries": 0}, {"contrast": 1}],
)
def test_bad_config_is_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        AugmentConfig(**kwargs)
