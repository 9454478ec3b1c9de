"""Convex pieces of polygons (numpy intersections) against the shapely even-odd regions they replace."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from ocrdet.eval.geometry import (
    candidate_pairs,
    convex_intersection_area,
    even_odd_regions,
    image_pairs,
    pack_images,
    pieces_intersection_area,
    polygon_set,
)

CONCAVE = np.array([[0.0, 0.0], [6.0, 0.0], [2.0, 2.0], [0.0, 6.0]])
BOW_TIE = np.array([[0.0, 0.0], [6.0, 6.0], [6.0, 0.0], [0.0, 6.0]])
REPEATED = np.array([[28.0, 161.0], [516.0, 159.0], [515.0, 164.0], [28.0, 161.0]])
DOUBLED_BACK = np.array([[48.0, 173.0], [424.0, 173.0], [422.0, 173.0], [45.0, 176.0]])


def _regions(polys: list[np.ndarray]) -> np.ndarray:
    rings = shapely.polygons(polys)
    invalid = ~shapely.is_valid(rings)
    rings[invalid] = even_odd_regions(rings[invalid])
    return rings


@pytest.mark.parametrize(
    ("poly", "pieces"), [(CONCAVE, 2), (BOW_TIE, 2), (REPEATED, 1), (DOUBLED_BACK, 1), (CONCAVE[::-1], 2)]
)
def test_quads_get_convex_pieces(poly: np.ndarray, pieces: int) -> None:
    """Concave and bow-tie quads split in two, degenerate ones are their one triangle of area."""
    assert polygon_set([poly]).piece_count.tolist() == [pieces]


def test_pieces_intersect_like_the_even_odd_regions() -> None:
    """Random small integer quads (many concave, bow-tie, collinear, repeated points): every pair's intersection
    area from the pieces equals shapely's on the even-odd regions."""
    rng = np.random.default_rng(0)
    polys = [rng.integers(0, 7, (4, 2)).astype(np.float64) for _ in range(300)]
    polys += [CONCAVE, BOW_TIE, REPEATED, DOUBLED_BACK]
    pset = polygon_set(polys)
    has = np.flatnonzero(pset.piece_count > 0)
    assert len(has) > 250
    a, b = np.meshgrid(has, has, indexing="ij")
    a, b = a.ravel(), b.ravel()
    regions = _regions(polys)
    expected = shapely.area(shapely.intersection(regions[a], regions[b]))
    np.testing.assert_allclose(pieces_intersection_area(pset, a, pset, b), expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(pset.valid, shapely.is_valid(shapely.polygons(polys)))


def test_a_pairs_intersection_area_does_not_depend_on_the_other_pairs_of_the_call() -> None:
    """Clipped polygons are padded to the widest of the call; the padding must change no bit of an area (numpy's
    pairwise sum would regroup the terms once the width reaches 8: two squares turned against each other make an
    octagon)."""
    rng = np.random.default_rng(0)
    square = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])
    turned = np.array([[5.0, -2.0], [12.0, 5.0], [5.0, 12.0], [-2.0, 5.0]])
    a = square + rng.normal(0, 1.5, (200, 4, 2))  # jittered squares: still convex
    b = square + rng.uniform(-3, 3, (200, 1, 2)) + rng.normal(0, 1.5, (200, 4, 2))
    alone = np.concatenate([convex_intersection_area(a[i : i + 1], b[i : i + 1]) for i in range(len(a))])
    with_octagon = convex_intersection_area(np.concatenate([a, square[None]]), np.concatenate([b, turned[None]]))
    assert with_octagon[:-1].tobytes() == alone.tobytes()
    assert with_octagon[-1] == pytest.approx(shapely.Polygon(square).intersection(shapely.Polygon(turned)).area)


def test_image_pairs_are_the_candidate_pairs_of_each_image() -> None:
    rng = np.random.default_rng(4)
    sizes_a, sizes_b = [3, 0, 5, 2], [4, 2, 0, 6]
    a_bounds = np.concatenate([lo := rng.uniform(0, 20, (10, 2)), lo + 5], axis=1)
    b_bounds = np.concatenate([lo := rng.uniform(0, 20, (12, 2)), lo + 5], axis=1)
    a_starts, b_starts = np.cumsum([0, *sizes_a]), np.cumsum([0, *sizes_b])
    pairs = set(zip(*(p.tolist() for p in image_pairs(a_bounds, a_starts, b_bounds, b_starts)), strict=True))
    expected = set()
    for k in range(4):
        gi, di = candidate_pairs(a_bounds[a_starts[k] : a_starts[k + 1]], b_bounds[b_starts[k] : b_starts[k + 1]])
        expected |= {(g + a_starts[k], d + b_starts[k]) for g, d in zip(gi.tolist(), di.tolist(), strict=True)}
    assert pairs == expected and len(pairs) > 0


def test_pack_images_checks_like_check_polygons() -> None:
    square = [[0, 0], [1, 0], [1, 1], [0, 1]]
    coords, sizes, per_image = pack_images([[np.array(square, dtype=np.float32)], [], [square, square[:3]]], "gt")
    assert coords.dtype == np.float64 and sizes.tolist() == [4, 4, 3] and per_image.tolist() == [1, 0, 2]
    with pytest.raises(ValueError, match=r"image 1: gt polygon 0: expected an \(N >= 3, 2\) array"):
        pack_images([[square], [square[:2]]], "gt")
    with pytest.raises(ValueError, match="image 0: gt polygon 1: coordinates must be finite"):
        pack_images([[square, [[0, 0], [1, np.nan], [1, 1]]]], "gt")
    with pytest.raises(ValueError, match=r"image 0: gt polygon 0: expected"):
        pack_images([[np.zeros(6)]], "gt")
