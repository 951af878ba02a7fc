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



class SnapIndex:
    """Where points meet the road graph: a k-d tree over samples along every segment, exact
    nearest-point projection, and a cache of positions already snapped (crews rarely move
    between queries). Built on first use (or :meth:`warm`); thread-safe."""

    def __init__(self, graph: RoadGraph) -> None:
        self.graph = graph
        self._lock = threading.RLock()
        self._tree: cKDTree | None = None
        self._cache = _SnapCache.empty()
        self._last_snapped: tuple[IntArray, FloatArray, FloatArray, _Points] | None = None

    def warm(self) -> None:
        with self._lock:
            if self._tree is None:
                self._tree = self._build_tree()

    def _build_tree(self) -> cKDTree:
        g = self.graph
        self._lat0, self._lng0 = float(np.mean(g.node_lat)), float(np.mean(g.node_lng))
        x, y = local_xy(g.coord_lat, g.coord_lng, self._lat0, self._lng0)
        self._cx, self._cy = x, y
        step = np.zeros(g.coord_lat.shape[0], dtype=np.float64)
        step[1:] = haversine_arrays(g.coord_lat[:-1], g.coord_lng[:-1], g.coord_lat[1:],
                                    g.coord_lng[1:])
        self._cum = np.cumsum(step)
        # Pieces: (i, i+1) coordinate pairs inside each segment.
        counts = (g.seg_end - g.seg_start).astype(np.int64)
        piece_seg = np.repeat(np.arange(g.n_segments, dtype=np.int64), counts)
        first = np.repeat(g.seg_start - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
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
        self._piece_seg, self._piece_i, self._sample_piece = piece_seg, piece_i, sample_piece
        tree = cKDTree(np.column_stack([sx, sy]), balanced_tree=False, compact_nodes=False)
        log.debug("snap index: %d samples over %d pieces", sx.shape[0], piece_i.shape[0])
        return tree

    def snap_xy(self, lat: FloatArray, lng: FloatArray) -> _Points:
        """Exact nearest segment point for many points.

        The nearest sample gives an upper bound ``d0`` on the distance to the road; the true
        nearest piece has a sample within ``d0 + spacing / 2``, so projecting onto the pieces of
        all samples in that ball finds the exact nearest point.
        """
        with self._lock:
            if self._tree is None:
                self._tree = self._build_tree()
        tree = self._tree
        px, py = local_xy(lat, lng, self._lat0, self._lng0)
        pts = np.column_stack([px, py])
        d0, _ = tree.query(pts, k=1)
        balls = tree.query_ball_point(pts, r=d0 + SAMPLE_SPACING_M / 2 + 1e-6)
        lens = np.fromiter((len(b) for b in balls), dtype=np.int64, count=len(balls))
        samples = np.fromiter((s for b in balls for s in b), dtype=np.int64, count=int(lens.sum()))
        owner = np.repeat(np.arange(len(balls), dtype=np.int64), lens)
        pieces = self._sample_piece[samples]
        i = self._piece_i[pieces]
        ax, ay = self._cx[i], self._cy[i]
        bx, by = self._cx[i + 1], self._cy[i + 1]
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
        bi, bt, bp = i[best], t[best], pieces[best]
        seg = self._piece_seg[bp]
        g = self.graph
        s0, s1 = g.seg_start[seg], g.seg_end[seg]
        seg_len = self._cum[s1] - self._cum[s0]
        along = self._cum[bi] - self._cum[s0] + bt * (self._cum[bi + 1] - self._cum[bi])
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(seg_len > 0, np.clip(along / seg_len, 0.0, 1.0), 0.0)
        flat = g.coord_lat[bi] + bt * (g.coord_lat[bi + 1] - g.coord_lat[bi])
        flng = g.coord_lng[bi] + bt * (g.coord_lng[bi + 1] - g.coord_lng[bi])
        dist = haversine_arrays(lat, lng, flat, flng)
        return _Points(seg=seg.astype(np.int64), frac=frac, dist_m=dist)

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

