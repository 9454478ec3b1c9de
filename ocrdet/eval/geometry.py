"""Bulk polygon geometry shared by the metrics: Polygon3-like areas, convex pieces of polygons (intersected in
numpy), even-odd regions as valid shapely geometry for the rest, candidate pairs by bounding box.

shapely is imported only where a polygon has no convex pieces (``ocrdet evaluate`` on quads never loads it)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction

import numpy as np

POLYGONAL_TYPES = (3, 6)
"""shapely's type ids of Polygon and MultiPolygon (``shapely.GeometryType``)."""
GRID = 2.0**-20
"""Pixels: the snap-rounding grid of overlays whose results go into further overlays. Floating-point overlays
can return invalid geometry on near-degenerate input (a sliver 1e-54 wide), which the next overlay fails on;
snap-rounding always returns valid geometry, at an area error of about ``GRID`` times the perimeter."""


MAX_CONVEX_POINTS = 64
"""Convex polygons with at most this many points are intersected in numpy (``convex_intersection_area``)."""


class PolygonSet:
    """Many polygons in bulk: ``area`` (n,) float64 |shoelace|, ``bounds`` (n, 4) float64 xmin, ymin, xmax, ymax,
    ``points`` the float64 (N_i, 2) polygons as given, ``convex`` (n,) bool (simple and convex, up to
    ``MAX_CONVEX_POINTS`` points) with ``padded`` (n, K, 2) their points, the last one repeated up to K.
    ``pieces`` (P, K, 2) convex pieces padded the same way, interior-disjoint, whose union is the even-odd region
    of their polygon: the polygon itself when convex, two triangles for a concave or bow-tie quad; polygon ``i``
    owns ``pieces[piece_start[i] : piece_start[i] + piece_count[i]]`` (count 0: no pieces, use ``geoms``).
    ``geoms`` (shapely, built on first use) and ``valid`` (False: self-intersecting or collapsed ring, whose
    geometry is its even-odd region and whose ``area`` is not that region's)."""

    def __init__(
        self, points: Sequence[np.ndarray], coords: np.ndarray, sizes: np.ndarray, area: np.ndarray, bounds: np.ndarray
    ) -> None:
        self.points = points
        self.area = area
        self.bounds = bounds
        self.padded, self.convex = convex_padded(coords, sizes)
        self.pieces, self.piece_start, self.piece_count, simple, known = convex_pieces(self.padded, self.convex, sizes)
        self._geoms = np.full(len(points), None, dtype=object)
        self._valid: np.ndarray | None = simple if known.all() else None
        self._simple, self._known = simple, known

    def _polygons(self, idx: np.ndarray) -> np.ndarray:
        import shapely

        sizes = [len(self.points[i]) for i in idx.tolist()]
        if not sizes:
            return np.empty(0, dtype=object)
        rings = shapely.linearrings(
            np.concatenate([self.points[i] for i in idx.tolist()]), indices=np.repeat(np.arange(len(idx)), sizes)
        )
        return shapely.polygons(rings)

    @property
    def valid(self) -> np.ndarray:
        if self._valid is None:
            import shapely

            valid = self._simple.copy()
            rest = np.flatnonzero(~self._known)
            valid[rest] = shapely.is_valid(self._polygons(rest))
            self._valid = valid
        return self._valid

    def geoms_at(self, idx: np.ndarray) -> np.ndarray:
        """The shapely regions of polygons ``idx`` (built once, on first use)."""
        missing = np.unique(idx[np.equal(self._geoms[idx], None)])
        if len(missing):
            geoms = self._polygons(missing)
            invalid = ~self.valid[missing]
            if invalid.any():
                geoms[invalid] = even_odd_regions(geoms[invalid])
            self._geoms[missing] = geoms
        return self._geoms[idx]

    @property
    def geoms(self) -> np.ndarray:
        return self.geoms_at(np.arange(len(self.points)))


def even_odd_regions(rings: np.ndarray) -> np.ndarray:
    """The even-odd regions of polygons ``rings`` (self-intersecting, collapsed) as valid (Multi)Polygons.

    Each region is the symmetric difference of its ring's fan triangles (p0, p_i, p_i+1): a point's
    winding parity is the parity of the triangles holding it. The overlays see only valid triangles (the
    degenerate ones, of no area, are left out) and snap-round to ``GRID``, so every step stays valid.
    ``make_valid(method="linework")`` builds the same region but fails, or returns invalid geometry that
    later overlays fail on, where points nearly coincide (0 and -5e-77, say). A bow-tie quad (one proper
    crossing) is its two triangles directly, without overlays.
    """
    regions = np.empty(len(rings), dtype=object)
    bow_ties = _bow_tie_regions(rings)
    done = np.not_equal(bow_ties, None)
    regions[done] = bow_ties[done]
    if not done.all():
        regions[~done] = _fan_regions(rings[~done])
    return regions


def _bow_tie_regions(rings: np.ndarray) -> np.ndarray:
    """The two triangles of 4-point rings whose opposite edges cross once, properly (None for other rings):
    their even-odd region, without overlays."""
    import shapely

    out = np.full(len(rings), None, dtype=object)
    coords, owner = shapely.get_coordinates(shapely.get_exterior_ring(rings), return_index=True)
    sizes = np.bincount(owner, minlength=len(rings))
    quads = np.flatnonzero(sizes == 5)
    if len(quads) == 0:
        return out
    p = coords.reshape(-1, 2)[np.concatenate([np.flatnonzero(owner == i)[:4] for i in quads.tolist()])].reshape(
        -1, 4, 2
    )

    def orient(a, b, c):
        return np.sign((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))

    for first, second in (((0, 1), (2, 3)), ((1, 2), (3, 0))):
        a, b, c, d = p[:, first[0]], p[:, first[1]], p[:, second[0]], p[:, second[1]]
        proper = (orient(a, b, c) * orient(a, b, d) < 0) & (orient(c, d, a) * orient(c, d, b) < 0)
        for k in np.flatnonzero(proper & np.equal(out[quads], None)).tolist():
            (ax, ay), (bx, by), (cx, cy), (dx, dy) = a[k], b[k], c[k], d[k]
            t = ((cx - ax) * (dy - cy) - (cy - ay) * (dx - cx)) / ((bx - ax) * (dy - cy) - (by - ay) * (dx - cx))
            x = (ax + t * (bx - ax), ay + t * (by - ay))
            # edges a-b and c-d cross at x: the lobes are (a, x, d) and (x, b, c)
            lobes = [shapely.Polygon([a[k], x, d[k]]), shapely.Polygon([x, b[k], c[k]])]
            region = shapely.MultiPolygon([q for q in lobes if q.is_valid and q.area > 0])
            out[quads[k]] = region if region.is_valid else None
    return out


def _fan_regions(rings: np.ndarray) -> np.ndarray:
    """``even_odd_regions`` for any ring: the symmetric difference of its fan triangles."""
    import shapely

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
    import shapely

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
    """Shoelace areas, bounds and convexity of float64 (N_i, 2) polygons in bulk; their shapely geometries on
    first use, invalid rings (self-intersecting, collapsed) as their even-odd region, as GPC sees them
    (``even_odd_regions``): every geometry is valid and polygonal, as GEOS overlays need.
    """
    if len(polys) == 0:
        return packed_polygon_set([], np.empty((0, 2)), np.empty(0, dtype=np.int64))
    return packed_polygon_set(polys, np.concatenate(polys), np.fromiter(map(len, polys), np.int64, len(polys)))


def packed_polygon_set(points: Sequence[np.ndarray], coords: np.ndarray, sizes: np.ndarray) -> PolygonSet:
    """``polygon_set`` of polygons given packed: float64 ``coords`` (sum(sizes), 2) cut into ``sizes`` (n,) points;
    ``points`` the same polygons one by one (any sequence of (N_i, 2) arrays: ``PackedViews``, a (n, K, 2) array)."""
    if len(sizes) == 0:
        return PolygonSet([], coords, sizes, np.empty(0), np.empty((0, 4)))
    starts = np.cumsum(sizes) - sizes
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
    return PolygonSet(points, coords, sizes, area, bounds)


class PackedViews(Sequence):
    """The polygons of packed float64 ``coords`` (sum(sizes), 2), one by one: item i is a view of its rows."""

    def __init__(self, coords: np.ndarray, sizes: np.ndarray) -> None:
        self.coords = coords
        self.sizes = sizes
        self.starts = np.cumsum(sizes) - sizes

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, i):
        start = int(self.starts[i])
        return self.coords[start : start + int(self.sizes[i])]


def pack_images(groups: Sequence[Sequence[np.ndarray]], what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The polygons of many images packed: float64 (P, 2) coordinates, (n,) int64 points per polygon, (images,)
    int64 polygons per image. Polygons are checked as ``check_polygons`` does, with its errors prefixed by
    ``image k: ``; a well-formed input is packed in one ``np.concatenate``, without a copy per polygon."""
    per_image = np.fromiter(map(len, groups), np.int64, len(groups))
    flat = [p for group in groups for p in group]
    try:
        sizes = np.fromiter(map(len, flat), np.int64, len(flat))
        coords = np.concatenate(flat, dtype=np.float64) if flat else np.empty((0, 2))
        if coords.ndim == 2 and coords.shape[1] == 2 and (sizes >= 3).all() and np.isfinite(coords).all():
            return coords, sizes, per_image
    except (TypeError, ValueError):
        pass
    from ocrdet.arrays import check_polygons

    flat = [p for k, group in enumerate(groups) for p in check_polygons(group, f"image {k}: {what}")]
    sizes = np.fromiter(map(len, flat), np.int64, len(flat))
    return (np.concatenate(flat) if flat else np.empty((0, 2))), sizes, per_image


def convex_padded(coords: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, K, 2) points padded by repeating the last one, and (n,) bool: convex and simple (every turn the
    same way, no repeated consecutive point, no doubling back, one turn around), for polygons of up to
    ``MAX_CONVEX_POINTS``; the polygons are ``coords`` (sum(sizes), 2) cut into ``sizes`` (n,) points."""
    n = len(sizes)
    k = int(min(sizes.max(initial=3), MAX_CONVEX_POINTS))
    j = np.arange(k)[None, :]
    if n and (sizes == k).all():  # one size (all quads, say): no padding
        small = np.arange(n)
        padded = block = coords.reshape(n, k, 2)
        edge = np.roll(block, -1, axis=1) - block
        edge_next = np.roll(edge, -1, axis=1)
        real = np.ones((n, k), dtype=bool)
    else:
        padded = np.zeros((n, k, 2))
        small = np.flatnonzero(sizes <= k)
        if len(small) == 0:
            return padded, np.zeros(n, dtype=bool)
        if len(small) < n:
            coords = coords[np.repeat(sizes <= k, sizes)]
        row = np.repeat(np.arange(len(small)), sizes[small])
        col = np.arange(len(coords)) - np.repeat(np.cumsum(sizes[small]) - sizes[small], sizes[small])
        block = np.empty((len(small), k, 2))
        block[row, col] = coords
        size = sizes[small][:, None]
        block = np.take_along_axis(block, np.minimum(j, size - 1)[..., None], axis=1)
        padded[small] = block
        nxt = np.where(j + 1 < size, j + 1, 0)
        edge = np.take_along_axis(block, nxt[..., None], axis=1) - block
        edge_next = np.take_along_axis(edge, nxt[..., None], axis=1)
        real = j < size
    cross = edge[..., 0] * edge_next[..., 1] - edge[..., 1] * edge_next[..., 0]
    dot = (edge * edge_next).sum(axis=2)
    zero_edge = ((edge == 0).all(axis=2) & real).any(axis=1) | ((cross == 0) & (dot <= 0) & real).any(axis=1)
    positive = ((cross > 0) & real).any(axis=1)
    negative = ((cross < 0) & real).any(axis=1)
    turning = np.where(real, np.arctan2(cross, dot), 0.0).sum(axis=1)
    convex = np.zeros(n, dtype=bool)
    convex[small] = ~zero_edge & (positive != negative) & (np.abs(np.abs(turning) - 2 * np.pi) < 1e-6)
    return padded, convex


def _cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(m,) z of (a - o) x (b - o) for (m, 2) points: > 0 when o, a, b turn left."""
    return (a[:, 0] - o[:, 0]) * (b[:, 1] - o[:, 1]) - (a[:, 1] - o[:, 1]) * (b[:, 0] - o[:, 0])


def convex_pieces(
    padded: np.ndarray, convex: np.ndarray, sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Interior-disjoint convex pieces whose union is each polygon's even-odd region, where that is cheap:
    a convex polygon is one piece; a concave quad is split at its reflex corner, a bow-tie quad (one proper
    crossing of opposite edges a-b, c-d at x) into its lobes (a, x, d) and (x, b, c), a quad one of whose fan
    triangles has no area is the other one (the even-odd region is the symmetric difference of the fan
    triangles). Other polygons get none.

    Returns (P, K, 2) pieces padded like ``padded``, (n,) int64 first piece, (n,) int64 piece count, (n,) bool
    simple (a valid ring) and (n,) bool known (whether ``simple`` is decided: for convex, concave and bow-tie
    polygons; the degenerate quads are left to GEOS, which accepts a repeated point). Corner turns are signs of float
    cross products: exact for integer coordinates below 2**26.
    """
    quads = np.flatnonzero(~convex & (sizes == 4))
    count = convex.astype(np.int64)
    simple = convex.copy()
    known = convex.copy()
    k = padded.shape[1]
    if len(quads):
        p = padded[quads, :4]
        turn = np.stack([_cross(p[:, i - 1], p[:, i], p[:, (i + 1) % 4]) for i in range(4)], axis=1)
        left = (turn > 0).sum(axis=1)

        def proper(a: int, b: int, c: int, d: int) -> np.ndarray:
            pa, pb, pc, pd = p[:, a], p[:, b], p[:, c], p[:, d]
            return (np.sign(_cross(pa, pb, pc)) * np.sign(_cross(pa, pb, pd)) < 0) & (
                np.sign(_cross(pc, pd, pa)) * np.sign(_cross(pc, pd, pb)) < 0
            )

        cross_01_23, cross_12_30 = proper(0, 1, 2, 3), proper(1, 2, 3, 0)
        no_zero = (turn != 0).all(axis=1)
        concave = no_zero & ~cross_01_23 & ~cross_12_30 & ((left == 1) | (left == 3))
        bow_tie = cross_01_23 ^ cross_12_30
        # reflex corner r: the one turning against the other three; pieces (r, r+1, r+2) and (r, r+2, r+3)
        minority = np.where(left[:, None] == 1, turn > 0, turn < 0)
        r = np.argmax(minority, axis=1)
        corners = (r[:, None] + np.array([0, 1, 2, 0, 2, 3])[None, :]) % 4
        split = np.take_along_axis(p, corners[..., None], axis=1).reshape(-1, 2, 3, 2)
        # bow-tie: a-b crosses c-d, with (a, b, c, d) = (0, 1, 2, 3) or (1, 2, 3, 0)
        shift = np.where(cross_01_23, 0, 1)
        a, b, c, d = (np.take_along_axis(p, ((shift + j) % 4)[:, None, None], axis=1)[:, 0] for j in range(4))
        with np.errstate(divide="ignore", invalid="ignore"):  # the formula of ``_bow_tie_regions``
            t = ((c[:, 0] - a[:, 0]) * (d[:, 1] - c[:, 1]) - (c[:, 1] - a[:, 1]) * (d[:, 0] - c[:, 0])) / (
                (b[:, 0] - a[:, 0]) * (d[:, 1] - c[:, 1]) - (b[:, 1] - a[:, 1]) * (d[:, 0] - c[:, 0])
            )
            x = a + t[:, None] * (b - a)
        lobes = np.stack([np.stack([a, x, d], axis=1), np.stack([x, b, c], axis=1)], axis=1)
        pieces = np.where(bow_tie[:, None, None, None], lobes, split)
        # a quad with a zero-area fan triangle (a repeated point, three points on a line) is its other one
        fans = [((0, 1, 2), (0, 2, 3)), ((1, 2, 3), (1, 3, 0))]
        rest = ~concave & ~bow_tie
        one = np.zeros(len(quads), dtype=bool)
        for first, second in fans:
            for flat, other in ((first, second), (second, first)):
                hit = rest & ~one & (_cross(p[:, flat[0]], p[:, flat[1]], p[:, flat[2]]) == 0)
                pieces[hit, 0] = p[hit][:, list(other)]
                one |= hit
        per_quad = np.where(concave | bow_tie, 2, np.where(one, 1, 0))
        used = np.arange(2)[None, :] < per_quad[:, None]
        tri = pieces[used]
        extra = np.concatenate([tri, np.repeat(tri[:, 2:], k - 3, axis=1)], axis=1) if k > 3 else tri
        count[quads] = per_quad
        simple[quads[concave]] = True
        known[quads[concave | bow_tie]] = True
    start = np.cumsum(count) - count
    pieces_out = np.empty((int(count.sum()), k, 2))
    pieces_out[start[convex]] = padded[convex]
    if len(quads):
        pieces_out[(start[quads][:, None] + np.arange(2)[None, :])[used]] = extra
    return pieces_out, start, count, simple, known


def pieces_intersection_area(a: PolygonSet, ia: np.ndarray, b: PolygonSet, ib: np.ndarray) -> np.ndarray:
    """(m,) area of the even-odd regions of ``a[ia[j]] & b[ib[j]]`` for polygons that both have convex pieces:
    the sum over their pieces' pairs (the pieces are interior-disjoint)."""
    ca, cb = a.piece_count[ia], b.piece_count[ib]
    per_pair = ca * cb
    pair = np.repeat(np.arange(len(ia)), per_pair)
    within = np.arange(len(pair)) - np.repeat(np.cumsum(per_pair) - per_pair, per_pair)
    pa = a.piece_start[ia][pair] + within // cb[pair]
    pb = b.piece_start[ib][pair] + within % cb[pair]
    if (per_pair == 1).all():
        return convex_intersection_area(a.pieces[pa], b.pieces[pb])
    return np.bincount(pair, weights=convex_intersection_area(a.pieces[pa], b.pieces[pb]), minlength=len(ia))


def convex_intersection_area(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(m,) area of a[i] & b[i] for convex polygons (m, K, 2) padded as ``convex_padded`` does: Sutherland-Hodgman
    clipping of a by b's edges, vectorized over the pairs."""
    m = len(a)
    if m == 0:
        return np.empty(0)
    signed = (b[..., 0] * np.roll(b[..., 1], -1, axis=1) - b[..., 1] * np.roll(b[..., 0], -1, axis=1)).sum(axis=1)
    orient = np.where(signed < 0, -1.0, 1.0)[:, None]
    poly = a
    k = b.shape[1]
    for e in range(k):
        c, d = b[:, e], b[:, (e + 1) % k]
        dx, dy = (d - c)[:, None, 0], (d - c)[:, None, 1]
        side_q = orient * (dx * (poly[..., 1] - c[:, None, 1]) - dy * (poly[..., 0] - c[:, None, 0]))
        p, side_p = np.roll(poly, 1, axis=1), np.roll(side_q, 1, axis=1)  # each point's predecessor
        keep_q = side_q >= 0
        cut = (side_p < 0) != (side_q < 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = side_p / (side_p - side_q)
            crossing = p + t[..., None] * (poly - p)
        # per point: the crossing into it (where the edge is cut), then the point itself (where kept)
        both = np.stack([crossing, poly], axis=2).reshape(-1, 2)
        emit = np.stack([cut, keep_q], axis=2).reshape(m, -1)
        source = np.flatnonzero(emit)
        if len(source) == 0:
            poly = np.zeros((m, 1, 2))
            continue
        # row i: its emitted points in order, the last one repeated up to the widest row
        count = emit.sum(axis=1)
        first = np.cumsum(count) - count
        j = np.minimum(np.arange(max(int(count.max()), 1))[None, :], np.maximum(count - 1, 0)[:, None])
        poly = both[source[np.minimum(first[:, None] + j, len(source) - 1)]]
        poly[count == 0] = 0.0
    x, y = poly[..., 0], poly[..., 1]
    terms = x * np.roll(y, -1, axis=1) - y * np.roll(x, -1, axis=1)
    # Added left to right: the padding's zero terms then change no bit, so a pair's area does not depend on the
    # other pairs of the call (numpy's pairwise sum regroups the terms when the padded width reaches 8).
    total = np.zeros(m)
    for column in terms.T:
        total += column
    return 0.5 * np.abs(total)


def candidate_pairs(gt_bounds: np.ndarray, det_bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gt index, det index) int64 arrays of pairs whose bounding boxes touch, sorted by gt then det."""
    if len(gt_bounds) == 0 or len(det_bounds) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    g, d = gt_bounds[:, None, :], det_bounds[None, :, :]
    touch = (d[..., 0] <= g[..., 2]) & (g[..., 0] <= d[..., 2]) & (d[..., 1] <= g[..., 3]) & (g[..., 1] <= d[..., 3])
    gi, di = np.nonzero(touch)
    return gi.astype(np.int64), di.astype(np.int64)


def image_pairs(
    a_bounds: np.ndarray, a_starts: np.ndarray, b_bounds: np.ndarray, b_starts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``candidate_pairs`` within each image (image k: ``a_starts[k]:a_starts[k + 1]`` of a, the same of b), as
    global int64 indices sorted by image, then a, then b."""
    pa, pb = [np.empty(0, dtype=np.int64)], [np.empty(0, dtype=np.int64)]
    a_cuts, b_cuts = np.asarray(a_starts).tolist(), np.asarray(b_starts).tolist()
    for a0, a1, b0, b1 in zip(a_cuts[:-1], a_cuts[1:], b_cuts[:-1], b_cuts[1:], strict=True):
        if a1 > a0 and b1 > b0:
            ai, bi = candidate_pairs(a_bounds[a0:a1], b_bounds[b0:b1])
            pa.append(ai + a0)
            pb.append(bi + b0)
    return np.concatenate(pa), np.concatenate(pb)


def box_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n,) float64 overlap area of bounding boxes (n, 4) ``a`` and ``b``, row by row: an upper bound of
    the intersection area of the polygons inside them."""
    lo = np.maximum(a[:, :2], b[:, :2])
    hi = np.minimum(a[:, 2:], b[:, 2:])
    return np.prod(np.clip(hi - lo, 0.0, None), axis=1)


SLACK = 1e-9
"""Relative margin of pruning bounds, so that rounding never prunes a pair that passes a threshold."""


TIE = 1e-9
"""Relative distance from a threshold within which a float ratio is decided again in exact arithmetic."""


def _signed_area(points: list[tuple[Fraction, Fraction]]) -> Fraction:
    n = len(points)
    return (
        sum(
            (points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1] for i in range(n)),
            Fraction(0),
        )
        / 2
    )


def _is_convex(points: list[tuple[Fraction, Fraction]]) -> bool:
    """Every turn the same way (collinear ones aside) and one turn around: a convex, simple polygon."""
    n = len(points)
    signs = set()
    for i in range(n):
        (ax, ay), (bx, by), (cx, cy) = points[i - 1], points[i], points[(i + 1) % n]
        cross = (bx - ax) * (cy - by) - (by - ay) * (cx - bx)
        if cross:
            signs.add(cross > 0)
    if len(signs) != 1:
        return False
    angles = [
        math.atan2(float(points[(i + 1) % n][1] - p[1]), float(points[(i + 1) % n][0] - p[0]))
        for i, p in enumerate(points)
    ]
    turning = sum(
        (b - a + math.pi) % (2 * math.pi) - math.pi for a, b in zip(angles, angles[1:] + angles[:1], strict=True)
    )
    return abs(abs(turning) - 2 * math.pi) < 1e-6


def exact_area(points: np.ndarray) -> Fraction:
    """|shoelace| of float64 (N, 2) points, exactly (every float is a rational)."""
    return abs(_signed_area([(Fraction(x), Fraction(y)) for x, y in points.tolist()]))


def exact_intersection_area(a: np.ndarray, b: np.ndarray) -> Fraction | None:
    """Exact area of polygon ``a`` & polygon ``b`` (float64 (N, 2) points taken as the rationals they are),
    when one of them is convex and the other simple: Sutherland-Hodgman clipping of the other by the convex
    one in rational arithmetic. None when neither is convex or the other is self-intersecting."""
    import shapely

    pa = [(Fraction(x), Fraction(y)) for x, y in a.tolist()]
    pb = [(Fraction(x), Fraction(y)) for x, y in b.tolist()]
    if _is_convex(pb) and shapely.is_valid(shapely.Polygon(a)):
        clip, subject = pb, pa
    elif _is_convex(pa) and shapely.is_valid(shapely.Polygon(b)):
        clip, subject = pa, pb
    else:
        return None
    if _signed_area(clip) < 0:
        clip = clip[::-1]
    out = subject
    for i in range(len(clip)):
        (cx, cy), (dx, dy) = clip[i], clip[(i + 1) % len(clip)]

        def side(p: tuple[Fraction, Fraction], cx=cx, cy=cy, dx=dx, dy=dy) -> Fraction:
            return (dx - cx) * (p[1] - cy) - (dy - cy) * (p[0] - cx)

        points, out = out, []
        for j in range(len(points)):
            p, q = points[j - 1], points[j]
            sp, sq = side(p), side(q)
            if sq >= 0:
                if sp < 0:
                    t = sp / (sp - sq)
                    out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
                out.append(q)
            elif sp >= 0:
                t = sp / (sp - sq)
                out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
        if not out:
            return Fraction(0)
    return abs(_signed_area(out))


def ratio_above(
    num: np.ndarray, den: np.ndarray, threshold: float, near_ties: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """(n,) bool ``num / den > threshold`` (``den > 0``), where ratios within ``TIE`` of the threshold are decided
    by ``near_ties(positions)``: exact answers, or None entries where no exact answer is known (the float
    comparison stays)."""
    above = num > threshold * den
    near = np.flatnonzero(np.abs(num - threshold * den) <= TIE * np.abs(den))
    if len(near):
        for k, exact in zip(near.tolist(), near_ties(near), strict=True):
            if exact is not None:
                above[k] = exact
    return above
