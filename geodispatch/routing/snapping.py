"""Snapping points onto the road graph (used by :class:`~geodispatch.routing.engine.Router`).

The nearest point of the nearest segment, exactly: a k-d tree over points sampled every
``SAMPLE_SPACING_M`` along every segment bounds the distance, and projecting onto the pieces of
every sample inside that bound finds the true nearest point. Snapped positions are cached by
coordinate, so ranking thousands of crews that did not move costs one ``searchsorted``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter

import numpy as np
from scipy.spatial import cKDTree

from geodispatch.geo import LatLng
from geodispatch.routing.graph import FloatArray, IntArray, RoadGraph, haversine_arrays, local_xy

log = logging.getLogger(__name__)

SAMPLE_SPACING_M = 40.0
"""Distance between k-d tree sample points along a segment (snap stays exact, see ``snap_xy``)."""

_SNAP_CACHE_MAX = 100_000

SPUR_TOLERANCE_M = 5.0
"""A spur is the road a point is on only when it is this much nearer than every kept road."""


@dataclass(frozen=True)
class _SnapCache:
    """Remembered snaps: ``keys`` sorted, ``rows`` into the per-point arrays."""

    keys: IntArray
    rows: IntArray
    lat: FloatArray
    lng: FloatArray
    seg: IntArray
    frac: FloatArray
    dist: FloatArray

    @classmethod
    def empty(cls) -> _SnapCache:
        f, i = np.empty(0, dtype=np.float64), np.empty(0, dtype=np.int64)
        return cls(keys=i, rows=i, lat=f, lng=f, seg=i, frac=f, dist=f)

    def extended(self, keys: IntArray, lat: FloatArray, lng: FloatArray, pts: _Points
                 ) -> _SnapCache:
        if self.lat.shape[0] + lat.shape[0] > _SNAP_CACHE_MAX:
            return _SnapCache.empty().extended(keys, lat, lng, pts)
        # Merge the few new keys into the sorted array (O(size) copy, no full re-sort).
        order = np.argsort(keys)
        new_keys = keys[order]
        new_rows = self.lat.shape[0] + order
        at = np.searchsorted(self.keys, new_keys)
        return _SnapCache(
            keys=np.insert(self.keys, at, new_keys), rows=np.insert(self.rows, at, new_rows),
            lat=np.concatenate([self.lat, lat]), lng=np.concatenate([self.lng, lng]),
            seg=np.concatenate([self.seg, pts.seg]), frac=np.concatenate([self.frac, pts.frac]),
            dist=np.concatenate([self.dist, pts.dist_m]),
        )


def _coord_keys(lat: FloatArray, lng: FloatArray) -> IntArray:
    """A 64-bit key per coordinate pair (array integer arithmetic wraps silently)."""
    a = np.ascontiguousarray(lat, dtype=np.float64).view(np.int64)
    b = np.ascontiguousarray(lng, dtype=np.float64).view(np.int64)
    out: IntArray = (a * np.int64(0x9E3779B1)) ^ b
    return out


@dataclass
class _Points:
    """Snapped points as arrays (crews of one query), with their exits per weight set."""

    seg: IntArray
    frac: FloatArray
    dist_m: FloatArray
    exits: dict[int, tuple[IntArray, FloatArray, IntArray, FloatArray]] = field(
        default_factory=dict)



class _Pieces:
    """A k-d tree over samples along some coordinate ranges (the graph's segments, or its spurs),
    and the exact nearest point on them."""

    def __init__(self, starts: IntArray, ends: IntArray, x: FloatArray, y: FloatArray,
                 cum: FloatArray) -> None:
        self.x, self.y, self.cum = x, y, cum
        self.starts, self.ends = starts, ends
        counts = (ends - starts).astype(np.int64)
        piece_owner = np.repeat(np.arange(starts.shape[0], dtype=np.int64), counts)
        first = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        piece_i = np.arange(int(counts.sum()), dtype=np.int64) + first
        plen = np.hypot(x[piece_i + 1] - x[piece_i], y[piece_i + 1] - y[piece_i])
        ns = np.maximum(1, np.ceil(plen / SAMPLE_SPACING_M)).astype(np.int64)
        tot = ns + 1
        sample_piece = np.repeat(np.arange(piece_i.shape[0], dtype=np.int64), tot)
        ptr = np.concatenate([[0], np.cumsum(tot)[:-1]])
        j = np.arange(int(tot.sum()), dtype=np.int64) - np.repeat(ptr, tot)
        t = j / np.repeat(ns, tot)
        pi = piece_i[sample_piece]
        sx = x[pi] + t * (x[pi + 1] - x[pi])
        sy = y[pi] + t * (y[pi + 1] - y[pi])
        self.piece_owner, self.piece_i, self.sample_piece = piece_owner, piece_i, sample_piece
        self.tree = cKDTree(np.column_stack([sx, sy]), balanced_tree=False, compact_nodes=False)
        self.n_samples = int(sx.shape[0])

    def nearest(self, px: FloatArray, py: FloatArray
                ) -> tuple[IntArray, IntArray, FloatArray, FloatArray, FloatArray]:
        """Per point: the owning range, the coordinate index and position ``t`` on the nearest
        piece, the distance in local metres, and the metres along the range to that point.

        The nearest sample gives an upper bound ``d0`` on the distance; the true nearest piece
        has a sample within ``d0 + spacing / 2``, so projecting onto the pieces of all samples in
        that ball finds the exact nearest point.
        """
        pts = np.column_stack([px, py])
        d0, _ = self.tree.query(pts, k=1)
        balls = self.tree.query_ball_point(pts, r=d0 + SAMPLE_SPACING_M / 2 + 1e-6)
        lens = np.fromiter((len(b) for b in balls), dtype=np.int64, count=len(balls))
        samples = np.fromiter((s for b in balls for s in b), dtype=np.int64, count=int(lens.sum()))
        owner = np.repeat(np.arange(len(balls), dtype=np.int64), lens)
        pieces = self.sample_piece[samples]
        i = self.piece_i[pieces]
        ax, ay = self.x[i], self.y[i]
        bx, by = self.x[i + 1], self.y[i + 1]
        dx, dy = bx - ax, by - ay
        den = dx * dx + dy * dy
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(den > 0, ((px[owner] - ax) * dx + (py[owner] - ay) * dy) / den, 0.0)
        t = np.clip(t, 0.0, 1.0)
        d = np.hypot(px[owner] - (ax + t * dx), py[owner] - (ay + t * dy))
        # Best candidate per point: sort by (owner, d) and take each owner's first.
        order = np.lexsort((d, owner))
        first = np.ones(order.shape[0], dtype=bool)
        first[1:] = owner[order][1:] != owner[order][:-1]
        best = order[first]
        bi, bt = i[best], t[best]
        rng = self.piece_owner[pieces[best]]
        along = self.cum[bi] - self.cum[self.starts[rng]] + bt * (self.cum[bi + 1] - self.cum[bi])
        return rng, bi, bt, d[best], along


class SnapIndex:
    """Where points meet the road graph: a k-d tree over samples along every segment, exact
    nearest-point projection, and a cache of positions already snapped (crews rarely move
    between queries). Built on first use (or :meth:`warm`); thread-safe.

    A graph with spurs (roads the importer left out, see :mod:`geodispatch.routing.graph`) has a
    second tree over them. A point whose nearest road is a spur, nearer by more than
    :data:`SPUR_TOLERANCE_M` than any kept road, is placed at the kept junction the spur is
    reached from, with the way along the spur counted in its distance from the road, as long as
    that total stays within ``spur_max_m`` (the router's snap distance); otherwise it snaps to
    the nearest kept road as before.
    """

    def __init__(self, graph: RoadGraph, *, spur_max_m: float = 200.0) -> None:
        self.graph = graph
        self.spur_max_m = float(spur_max_m)
        self._lock = threading.RLock()
        self._built = False
        self._cache = _SnapCache.empty()
        self._last_snapped: tuple[IntArray, FloatArray, FloatArray, _Points] | None = None

    def warm(self) -> None:
        with self._lock:
            if not self._built:
                self._build()

    def _build(self) -> None:
        g = self.graph
        self._lat0, self._lng0 = float(np.mean(g.node_lat)), float(np.mean(g.node_lng))
        x, y = local_xy(g.coord_lat, g.coord_lng, self._lat0, self._lng0)
        step = np.zeros(g.coord_lat.shape[0], dtype=np.float64)
        step[1:] = haversine_arrays(g.coord_lat[:-1], g.coord_lng[:-1], g.coord_lat[1:],
                                    g.coord_lng[1:])
        self._cum = np.cumsum(step)
        self._roads = _Pieces(g.seg_start, g.seg_end, x, y, self._cum)
        self._spurs = _Pieces(g.spur_start, g.spur_end, x, y, self._cum) \
            if g.n_spurs else None
        # Where a point placed at a kept node goes: one segment ending there (0 or 1 along it).
        has_f = g.seg_fwd >= 0
        seg_u = np.where(has_f, g.edge_src[np.maximum(g.seg_fwd, 0)],
                         g.edge_dst[np.maximum(g.seg_bwd, 0)]).astype(np.int64)
        seg_v = np.where(has_f, g.edge_dst[np.maximum(g.seg_fwd, 0)],
                         g.edge_src[np.maximum(g.seg_bwd, 0)]).astype(np.int64)
        segs = np.arange(g.n_segments, dtype=np.int64)
        self._node_seg = np.zeros(g.n_nodes, dtype=np.int64)
        self._node_frac = np.zeros(g.n_nodes, dtype=np.float64)
        self._node_seg[seg_v], self._node_frac[seg_v] = segs, 1.0
        self._node_seg[seg_u], self._node_frac[seg_u] = segs, 0.0
        log.debug("snap index: %d samples over %d segments, %d spurs", self._roads.n_samples,
                  g.n_segments, g.n_spurs)
        self._built = True

    def snap_xy(self, lat: FloatArray, lng: FloatArray) -> _Points:
        """Exact nearest segment point for many points (see :class:`_Pieces` and the spurs
        rule in the class docstring)."""
        with self._lock:
            if not self._built:
                self._build()
        g = self.graph
        px, py = local_xy(lat, lng, self._lat0, self._lng0)
        seg, bi, bt, _, along = self._roads.nearest(px, py)
        s0, s1 = g.seg_start[seg], g.seg_end[seg]
        seg_len = self._cum[s1] - self._cum[s0]
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(seg_len > 0, np.clip(along / seg_len, 0.0, 1.0), 0.0)
        flat = g.coord_lat[bi] + bt * (g.coord_lat[bi + 1] - g.coord_lat[bi])
        flng = g.coord_lng[bi] + bt * (g.coord_lng[bi + 1] - g.coord_lng[bi])
        dist = haversine_arrays(lat, lng, flat, flng)
        out = _Points(seg=seg.astype(np.int64), frac=frac, dist_m=dist)
        if self._spurs is not None:
            self._place_on_spurs(lat, lng, px, py, out)
        return out

    def _place_on_spurs(self, lat: FloatArray, lng: FloatArray, px: FloatArray,
                        py: FloatArray, out: _Points) -> None:
        assert self._spurs is not None
        g = self.graph
        sp, bi, bt, _, along = self._spurs.nearest(px, py)
        flat = g.coord_lat[bi] + bt * (g.coord_lat[bi + 1] - g.coord_lat[bi])
        flng = g.coord_lng[bi] + bt * (g.coord_lng[bi + 1] - g.coord_lng[bi])
        d_spur = haversine_arrays(lat, lng, flat, flng)
        along = np.clip(along, 0.0, g.spur_len_m[sp])
        via_u = along + g.spur_u_m[sp]
        via_v = g.spur_len_m[sp] - along + g.spur_v_m[sp]
        use_u = via_u <= via_v
        node = np.where(use_u, g.spur_u_node[sp], g.spur_v_node[sp])
        total = d_spur + np.where(use_u, via_u, via_v)
        take = (d_spur + SPUR_TOLERANCE_M < out.dist_m) & (total <= self.spur_max_m) & (node >= 0)
        if take.any():
            n = node[take]
            out.seg[take], out.frac[take] = self._node_seg[n], self._node_frac[n]
            out.dist_m[take] = total[take]

    def snap_arrays(self, lat: FloatArray, lng: FloatArray) -> _Points:
        """Snap many points, remembering each position (crews rarely move between queries).

        The cache is a sorted array of 64-bit keys mixed from the coordinates' bit patterns, so a
        lookup of thousands of crews is one ``searchsorted``; a key collision only costs a re-snap.
        """
        key = _coord_keys(lat, lng)
        last = self._last_snapped
        if last is not None and np.array_equal(last[0], key) and np.array_equal(last[1], lat) \
                and np.array_equal(last[2], lng):
            return last[3]  # the same fleet as the previous query
        points = self._lookup(key, lat, lng)
        self._last_snapped = (key, lat, lng, points)
        return points

    def _lookup(self, key: IntArray, lat: FloatArray, lng: FloatArray) -> _Points:
        cache = self._cache
        hit = np.zeros(key.shape[0], dtype=bool)
        rows = np.zeros(key.shape[0], dtype=np.int64)
        if cache.keys.shape[0]:
            pos = np.minimum(np.searchsorted(cache.keys, key), cache.keys.shape[0] - 1)
            rows = cache.rows[pos]
            hit = (cache.keys[pos] == key) & (cache.lat[rows] == lat) & (cache.lng[rows] == lng)
        if hit.all():
            return _Points(seg=cache.seg[rows], frac=cache.frac[rows], dist_m=cache.dist[rows])
        miss = np.flatnonzero(~hit)
        snapped = self.snap_xy(lat[miss], lng[miss])
        if cache.keys.shape[0]:
            seg, frac, dist = cache.seg[rows], cache.frac[rows], cache.dist[rows]
            seg[miss], frac[miss], dist[miss] = snapped.seg, snapped.frac, snapped.dist_m
        else:
            seg, frac, dist = snapped.seg, snapped.frac, snapped.dist_m
        with self._lock:
            self._cache = self._cache.extended(key[miss], lat[miss], lng[miss], snapped)
        return _Points(seg=seg, frac=frac, dist_m=dist)

    def snap_points(self, points: Sequence[LatLng]) -> _Points:
        lat = np.fromiter(map(itemgetter(0), points), dtype=np.float64, count=len(points))
        lng = np.fromiter(map(itemgetter(1), points), dtype=np.float64, count=len(points))
        return self.snap_arrays(lat, lng)

