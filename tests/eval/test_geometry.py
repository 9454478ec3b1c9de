"""Convex pieces of polygons (numpy intersections) against the shapely even-odd regions they replace."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from ocrdet.eval.geometry import even_odd_regions, pieces_intersection_area, polygon_set

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
