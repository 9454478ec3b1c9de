from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocrdet.data.io.format import load_annotations
from ocrdet.data.transforms.maps import MAP_DTYPES
from ocrdet.data.transforms.targets import TargetConfig, make_db_targets
from ocrdet.data.transforms.targets_reference import reference_db_targets

KEYS = ("prob", "prob_mask", "thresh", "thresh_mask")
BUILDERS = pytest.mark.parametrize("build", [make_db_targets, reference_db_targets], ids=["fast", "reference"])


def word_boxes(rng: np.random.Generator, n: int, size: int) -> list[np.ndarray]:
    """n jittered, slightly rotated word-like quads over a size x size canvas, some crossing its border."""
    polygons = []
    for _ in range(n):
        half = np.array([rng.uniform(8, 60), rng.uniform(3, 15)])
        box = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
        angle = rng.uniform(-0.3, 0.3)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        center = rng.uniform(-20, size + 20, size=2)
        polygons.append((box @ rotation.T + center + rng.normal(0, 1.5, (4, 2))).astype(np.float32))
    return polygons


def odd_polygons(rng: np.random.Generator, size: int) -> list[np.ndarray]:
    """Star-shaped polygons with many vertices, repeated vertices, tiny and sliver polygons."""
    polygons = []
    for _ in range(6):
        k = int(rng.integers(5, 12))
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        radii = rng.uniform(5, 40, k)
        center = rng.uniform(0, size, 2)
        polygons.append(center + np.stack([np.cos(angles), np.sin(angles)], axis=1) * radii[:, None])
    square = np.array([[30, 30], [60, 30], [60, 60], [30, 60]], dtype=np.float64)
    polygons.append(np.repeat(square, 2, axis=0))  # every vertex twice
    polygons.append(np.array([[5, 5], [9, 5], [9, 8], [5, 8]]))  # smaller than min_text_size
    polygons.append(np.array([[100, 100], [140, 140], [140.5, 141], [100.2, 100.9]]))  # sliver
    polygons.append(np.array([[-30, -30], [-10, -25], [-20, -5]]))  # collapses onto the corner
    polygons.append(np.array([[size - 20, size - 20], [size + 40, size - 20], [size + 40, size + 40]]))  # corner
    return [p.astype(np.float32) for p in polygons]


def assert_targets_equal(polygons: list[np.ndarray], ignore: np.ndarray, height: int, width: int) -> None:
    fast = make_db_targets(polygons, ignore, height, width)
    slow = reference_db_targets(polygons, ignore, height, width)
    for key in KEYS:
        assert fast[key].dtype == MAP_DTYPES[key] and slow[key].dtype == np.float32
        assert fast[key].shape == (height, width)
        np.testing.assert_allclose(fast[key], slow[key], rtol=0, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("seed", range(6))
def test_fast_equals_reference_on_overlapping_words(seed: int) -> None:
    rng = np.random.default_rng(seed)
    polygons = word_boxes(rng, 100, 320) + odd_polygons(rng, 320)
    polygons = [p[::-1] if i % 2 else p for i, p in enumerate(polygons)]  # both orientations
    ignore = rng.random(len(polygons)) < 0.15
    assert_targets_equal(polygons, ignore, 320, 288)


@pytest.mark.parametrize("slope", [0.0, 1e-12, 1e-9, 3e-9, 1e-6, 1e-3, 0.05])
def test_fast_equals_reference_on_nearly_axis_aligned_edges(slope: float) -> None:
    """The border kernel works out per row which columns lie near an edge; near-horizontal and near-vertical
    edges are where that arithmetic is most delicate."""
    polygons = []
    for k, (length, height) in enumerate([(250.0, 12.0), (180.0, 30.0), (40.0, 90.0), (15.0, 220.0)]):
        x, y = 10.0 + 62.0 * k, 7.5 + 40.0 * k
        corners = np.array([[0.0, 0.0], [length, 0.0], [length, height], [0.0, height]])
        tilt = np.array([[1.0, -slope], [slope, 1.0]])  # horizontal edges rise by slope, vertical ones lean
        polygons.append(corners @ tilt.T + [x, y])  # float64: a float32 would round tiny slopes away
    polygons += [p[::-1] + 0.25 for p in polygons]
    assert_targets_equal(polygons, np.zeros(len(polygons), dtype=bool), 320, 300)


def star_polygon(center: tuple[float, float], spokes: list[tuple[float, float]]) -> np.ndarray:
    """Simple polygon from (angle, radius) spokes around a centre, in angle order."""
    angles, radii = np.array(sorted(spokes)).T
    return np.array(center) + np.stack([np.cos(angles), np.sin(angles)], axis=1) * radii[:, None]


coordinates = st.tuples(st.floats(-20, 90), st.floats(-20, 70))
stars = st.builds(
    star_polygon,
    coordinates,
    st.lists(st.tuples(st.floats(0, 2 * np.pi), st.floats(0.5, 40)), min_size=3, max_size=8, unique_by=lambda s: s[0]),
)
integer_boxes = st.builds(
    lambda x, y, w, h: np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64),
    st.integers(-10, 75),
    st.integers(-10, 55),
    st.integers(1, 40),
    st.integers(1, 30),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.one_of(stars, integer_boxes), st.booleans()), max_size=6), st.integers(0, 2**6 - 1))
def test_fast_equals_reference_on_random_polygons(polygons: list[tuple[np.ndarray, bool]], ignore_bits: int) -> None:
    """Simple polygons of both orientations (DB's targets assume simple ones); clipping to the canvas may still
    make them degenerate."""
    polygons = [(p[::-1] if reverse else p).astype(np.float32) for p, reverse in polygons]
    ignore = np.array([(ignore_bits >> i) & 1 for i in range(len(polygons))], dtype=bool)
    assert_targets_equal(polygons, ignore, 50, 70)


def sroie_polygons(root: Path, count: int | None) -> list[tuple[list[np.ndarray], np.ndarray, int, int]]:
    """Polygons of SROIE training receipts scaled to a 640 px long side, with ignore flags and canvas size."""
    annotations = load_annotations(root / "sroie" / "jsons" / "train.json")
    out = []
    for image in list(annotations.images.values())[:count]:
        polygons, ignore = image.polygons()
        scale = 640 / max(image.img_w, image.img_h)
        height, width = round(image.img_h * scale), round(image.img_w * scale)
        out.append(([p * np.float32(scale) for p in polygons], ignore, height, width))
    return out


def test_fast_equals_reference_on_sroie(shared_data: Path) -> None:
    for polygons, ignore, height, width in sroie_polygons(shared_data, 8):
        assert_targets_equal(polygons, ignore, height, width)


@pytest.mark.slow
def test_fast_equals_reference_on_all_sroie(shared_data: Path) -> None:
    for polygons, ignore, height, width in sroie_polygons(shared_data, None):
        assert_targets_equal(polygons, ignore, height, width)


@BUILDERS
def test_rectangle_targets_follow_db(build) -> None:
    rect = np.array([[20, 10], [80, 10], [80, 40], [20, 40]], dtype=np.float32)
    out = build([rect], np.array([False]), 60, 100)
    distance = 60 * 30 * (1 - 0.4**2) / 180  # D = A (1 - r^2) / L = 8.4
    shrunk = np.zeros((60, 100), np.float32)
    cv2.rectangle(shrunk, (28, 18), (72, 32), 1.0, thickness=-1)  # pyclipper's integer shrink by D
    np.testing.assert_array_equal(out["prob"], shrunk)
    assert (out["prob_mask"] == 1).all()
    assert out["thresh"][10, 50] == pytest.approx(0.7)  # on the edge: 1 - 0 / D, scaled to thresh_max
    assert out["thresh"][14, 50] == pytest.approx(0.3 + 0.4 * (1 - 4 / distance))
    assert out["thresh"][25, 50] == pytest.approx(0.3)  # farther than D from every edge
    assert out["thresh_mask"][10 - 8, 50] == 1 and out["thresh_mask"][10 - 10, 50] == 0
    assert out["thresh"].min() == pytest.approx(0.3) and out["thresh"].max() <= 0.7 + 1e-6


@BUILDERS
def test_dont_care_and_too_small_polygons_only_clear_the_mask(build) -> None:
    big = np.array([[10, 10], [60, 10], [60, 40], [10, 40]], dtype=np.float32)
    small = np.array([[70, 10], [90, 10], [90, 15], [70, 15]], dtype=np.float32)
    out = build([big, small], np.array([True, False]), 50, 100)
    assert out["prob"].sum() == 0 and out["thresh_mask"].sum() == 0
    np.testing.assert_array_equal(out["thresh"], np.float32(0.3))
    assert out["prob_mask"][25, 35] == 0 and out["prob_mask"][12, 80] == 0 and out["prob_mask"][45, 80] == 1


@BUILDERS
def test_no_polygons_gives_empty_targets(build) -> None:
    out = build([], np.zeros(0, dtype=bool), 4, 5, TargetConfig(thresh_min=0.2))
    assert {k: float(v.mean()) for k, v in out.items()} == pytest.approx(
        {"prob": 0.0, "prob_mask": 1.0, "thresh": 0.2, "thresh_mask": 0.0}
    )


@BUILDERS
@pytest.mark.parametrize(
    ("polygons", "ignore", "size", "message"),
    [
        ([np.zeros((2, 2))], [False], (10, 10), "polygon 0"),
        ([np.zeros((4, 3))], [False], (10, 10), "polygon 0"),
        ([np.array([[0, 0], [1, np.nan], [2, 2]])], [False], (10, 10), "finite"),
        ([np.zeros((4, 2))], [False, True], (10, 10), "one flag per polygon"),
        ([], [], (0, 10), "positive"),
        ([], [], (10.5, 10), "integer"),
    ],
)
def test_bad_input_is_named(build, polygons, ignore, size, message) -> None:
    with pytest.raises(ValueError, match=message):
        build(polygons, np.array(ignore, dtype=bool), *size)


@pytest.mark.parametrize(
    "kwargs", [{"shrink_ratio": 1.0}, {"shrink_ratio": 0.0}, {"thresh_min": 0.8}, {"min_text_size": -1.0}]
)
def test_bad_config_is_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        TargetConfig(**kwargs)
