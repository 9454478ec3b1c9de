"""Bulk polygon geometry shared by the metrics: Polygon3-like areas and even-odd regions as valid shapely
geometry, candidate pairs by bounding box, and the checks of polygon arrays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely

POLYGONAL_TYPES = (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON)
GRID = 2.0**-20
"""Pixels: the snap-rounding grid of overlays whose results go into further overlays. Floating-point overlays
can return invalid geometry on near-degenerate input (a sliver 1e-54 wide), which the next overlay fails on;
snap-rounding always returns valid geometry, at an area error of about ``GRID`` times the perimeter."""


@dataclass(frozen=True)
class PolygonSet:
    """Many polygons as shapely arrays: ``geoms`` (n,) object, ``area`` (n,) float64 |shoelace|,
    ``bounds`` (n, 4) float64 xmin, ymin, xmax, ymax, ``valid`` (n,) bool (False: self-intersecting
    or collapsed ring, whose geometry is its even-odd region and whose ``area`` is not that region's)."""

    geoms: np.ndarray
    area: np.ndarray
    bounds: np.ndarray
    valid: np.ndarray


def check_polygons(polys: Sequence[np.ndarray], what: str) -> list[np.ndarray]:
    """Polygons as float64 (N_i, 2) arrays; a clear ValueError naming the polygon for anything else."""
    out = [np.asarray(poly, dtype=np.float64) for poly in polys]
    for i, arr in enumerate(out):
        if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 3:
            raise ValueError(f"{what} polygon {i}: expected an (N >= 3, 2) array of points, got shape {arr.shape}")
    if out and not np.isfinite(np.concatenate(out)).all():
        i = next(i for i, arr in enumerate(out) if not np.isfinite(arr).all())
        raise ValueError(f"{what} polygon {i}: coordinates must be finite, got {out[i].tolist()}")
    return out


def even_odd_regions(rings: np.ndarray) -> np.ndarray:
    """The even-odd regions of polygons ``rings`` (self-intersecting, collapsed) as valid (Multi)Polygons.

    Each region is the symmetric difference of its ring's fan triangles (p0, p_i, p_i+1): a point's
    winding parity is the parity of the triangles holding it. The overlays see only valid triangles (the
    degenerate ones, of no area, are left out) and snap-round to ``GRID``, so every step stays valid.
    ``make_valid(method="linework")`` builds the same region but fails, or returns invalid geometry that
    later overlays fail on, where points nearly coincide (0 and -5e-77, say).
    """
    points, owner = shapely.get_coordinates(shapely.get_exterior_ring(rings), return_index=True)
    first = np.searchsorted(owner, owner)
    seg = np.flatnonzero(owner[:-1] == owner[1:])
    triangles = shapely.polygons(np.stack([points[first[seg]], points[seg], points[seg + 1]], axis=1))
    keep = shapely.is_valid(triangles)
    column = seg - first[seg]
    table = np.full((len(rings), int(column.max(initial=0)) + 1), shapely.Polygon(), dtype=object)
    table[owner[seg][keep], column[keep]] = triangles[keep]
    regions = table[:, 0]
    for triangle in table[:, 1:].T:  # pairwise: shapely deprecates symmetric_difference_all
        regions = polygonal(shapely.symmetric_difference(regions, triangle, grid_size=GRID))
    return regions


def polygonal(geoms: np.ndarray) -> np.ndarray:
    """``geoms`` with every non-polygonal geometry replaced by the MultiPolygon of its polygons.

    GEOS can leave lines of collapsed edges next to polygons (``make_valid(method="linework")`` on a ring
    that doubles back, a snap-rounded overlay of a sliver). Lines have no area, so they are no part of a
    region, and a later overlay fails on such mixed collections ("Unable to determine overlay result
    geometry dimension", e.g. against an empty polygon).
    """
    out = geoms.copy()
    mixed = np.flatnonzero(~np.isin(shapely.get_type_id(geoms), POLYGONAL_TYPES))
    if len(mixed) == 0:
        return out
    parts, owner = shapely.get_parts(geoms[mixed], return_index=True)
    parts, sub = shapely.get_parts(parts, return_index=True)
    keep = shapely.get_type_id(parts) == shapely.GeometryType.POLYGON
    regions = np.full(len(mixed), shapely.MultiPolygon(), dtype=object)
    if keep.any():
        shapely.multipolygons(parts[keep], indices=owner[sub][keep], out=regions)
    out[mixed] = regions
    return out


def polygon_set(polys: Sequence[np.ndarray]) -> PolygonSet:
    """Build shapely geometries, shoelace areas and bounds of float64 (N_i, 2) polygons in bulk.

    Invalid rings (self-intersecting, collapsed) become their even-odd region, as GPC sees them
    (``even_odd_regions``): every geometry is valid and polygonal, as GEOS overlays need.
    """
    n = len(polys)
    if n == 0:
        return PolygonSet(np.empty(0, dtype=object), np.empty(0), np.empty((0, 4)), np.empty(0, dtype=bool))
    sizes = np.fromiter((len(p) for p in polys), dtype=np.int64, count=n)
    coords = np.concatenate(polys)
    owner = np.repeat(np.arange(n), sizes)
    geoms = shapely.polygons(shapely.linearrings(coords, indices=owner))
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        geoms[invalid] = even_odd_regions(geoms[invalid])
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    following = np.arange(1, len(coords) + 1)
    following[starts + sizes - 1] = starts
    x, y = coords[:, 0], coords[:, 1]
    cross = x * y[following] - y * x[following]
    area = 0.5 * np.abs(np.add.reduceat(cross, starts))
    bounds = np.stack(
        [
            np.minimum.reduceat(x, starts),
            np.minimum.reduceat(y, starts),
            np.maximum.reduceat(x, starts),
            np.maximum.reduceat(y, starts),
        ],
        axis=1,
    )
    return PolygonSet(geoms, area, bounds, ~invalid)


def candidate_pairs(gt_bounds: np.ndarray, det_bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gt index, det index) int64 arrays of pairs whose bounding boxes touch, sorted by gt then det."""
    if len(gt_bounds) == 0 or len(det_bounds) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    g, d = gt_bounds[:, None, :], det_bounds[None, :, :]
    touch = (d[..., 0] <= g[..., 2]) & (g[..., 0] <= d[..., 2]) & (d[..., 1] <= g[..., 3]) & (g[..., 1] <= d[..., 3])
    gi, di = np.nonzero(touch)
    return gi.astype(np.int64), di.astype(np.int64)


def box_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n,) float64 overlap area of bounding boxes (n, 4) ``a`` and ``b``, row by row: an upper bound of
    the intersection area of the polygons inside them."""
    lo = np.maximum(a[:, :2], b[:, :2])
    hi = np.minimum(a[:, 2:], b[:, 2:])
    return np.prod(np.clip(hi - lo, 0.0, None), axis=1)


SLACK = 1e-9
"""Relative margin of pruning bounds, so that rounding never prunes a pair that passes a threshold."""
