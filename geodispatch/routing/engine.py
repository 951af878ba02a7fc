"""The drive-time engine: snap points to roads and rank every crew for an incident in one search.

How a ranking works
-------------------
1. The incident and the crews are **snapped onto road segments** (nearest point of the nearest
   segment, by a k-d tree over points sampled along every segment). A point further than
   ``snap_max_m`` from any road is flagged ``on_road=False`` instead of silently trusted.
2. One **reverse search** runs outward from the incident over the reversed graph, so it yields
   every node's drive time *to* the incident at once. The incident sits part-way along an edge:
   the search starts from a virtual node joined to the edge's tail(s) with the partial edge time.
3. A crew is part-way along an edge too: its ETA is the partial time to the end of its edge
   plus that node's time to the incident (either end of a two-way street), or the direct partial
   time when it is on the incident's own segment, upstream.
4. The search is **bounded**: for the top k it runs with a small time limit and widens it until k
   crews are settled (every node within a limit is exact, so a crew whose ETA is within the limit
   is exact too); for a full ranking it runs once up to ``limit_s``.

The search itself is scipy's compiled Dijkstra over CSR arrays (``scipy.sparse.csgraph``), so no
Python runs per node; each query costs a few hundred microseconds on a 100k-node city.

Road distances come from the shortest-time tree (pointer jumping over the predecessors), and
route geometry for chosen crews from the same tree, with partial first and last edges.

Time-of-day factors (:class:`~geodispatch.routing.speeds.TimeFactors`) divide edge times by a speed
multiplier per road group; each distinct set of factors gets its own prepared matrices, built on
first use and kept.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from geodispatch.errors import NotFound
from geodispatch.geo import LatLng, haversine_m
from geodispatch.routing.graph import FloatArray, IntArray, RoadGraph, haversine_arrays
from geodispatch.routing.snapping import SnapIndex, _Points
from geodispatch.routing.speeds import TimeFactors
from geodispatch.settings import Settings

log = logging.getLogger(__name__)

FIRST_LIMIT_S = 120.0
"""Time limit of the first top-k search; widened x2.5 until k crews are inside it."""

GROW = 2.5


@dataclass(frozen=True)
class Snap:
    """Where a point meets the road graph.

    ``node`` is the nearer end of the snapped segment; ``distance_m`` the distance from the point to
    the road; ``on_road`` False when that is more than ``snap_max_m``. ``segment`` and
    ``fraction`` (0 at the segment's first vertex, 1 at its last) locate the snapped point exactly.
    """

    node: int
    distance_m: float
    on_road: bool
    segment: int = -1
    fraction: float = 0.0
    point: LatLng | None = None


@dataclass(slots=True)
class CrewEta:
    """A crew's drive time and road distance to the incident (``on_road``: near a road)."""

    unit_id: int
    eta_s: float
    distance_m: float
    on_road: bool = True
    #: Metres from the crew to the road when it is off-road (counted at walking speed).
    off_road_m: float = 0.0


@dataclass(frozen=True)
class Route:
    """A drive: geometry from the snapped start to the snapped end, time and distance."""

    coords: list[LatLng]
    eta_s: float
    distance_m: float

    def to_geojson(self) -> dict[str, Any]:
        return {"type": "LineString", "coordinates": [[p.lng, p.lat] for p in self.coords]}


@dataclass
class _Weights:
    """Matrices for one set of edge times (free flow, or one time-of-day factor set)."""

    time: FloatArray  # per edge
    fast: IntArray  # fastest edge of each (u, v) pair, sorted by (u, v)
    keys: IntArray  # u * n + v of ``fast``
    rev: sp.csr_matrix  # (n+1)^2 reversed graph; row n = virtual incident node with 2 slots
    fwd: sp.csr_matrix  # n^2 forward graph


@dataclass(frozen=True)
class _Exits:
    """Per crew: exit node and partial time along (f) and against (b) its edge; direct time."""

    xf: IntArray
    of: FloatArray
    xb: IntArray
    ob: FloatArray
    direct: FloatArray


class Router:
    """Drive times over one :class:`RoadGraph`, shared by the API, recommender and simulator.

    Parameters
    ----------
    graph
        The compiled road graph.
    snap_max_m
        Points further than this from any road are reported ``on_road=False``.
    time_factors
        Optional time-of-day speed table; used by :meth:`rank` when ``at`` is given.

    Notes
    -----
    Thread-safe: queries share one lock around the search (each takes milliseconds).
    """

    def __init__(self, graph: RoadGraph, *, snap_max_m: float = 200.0,
                 time_factors: TimeFactors | None = None, walk_speed_kmh: float = 5.0) -> None:
        if not (math.isfinite(snap_max_m) and snap_max_m >= 0):
            raise ValueError(f"snap_max_m must be a finite distance >= 0, not {snap_max_m!r}")
        if not (math.isfinite(walk_speed_kmh) and walk_speed_kmh > 0):
            raise ValueError(f"walk_speed_kmh must be a finite speed > 0, not {walk_speed_kmh!r}")
        self.graph = graph
        self.snap_max_m = float(snap_max_m)
        self.walk_mps = float(walk_speed_kmh) / 3.6
        self.time_factors = time_factors
        g = graph
        self._n = g.n_nodes
        has_f = g.seg_fwd >= 0
        # Segment end nodes (u at the first vertex, v at the last).
        self._seg_u = np.where(has_f, g.edge_src[np.maximum(g.seg_fwd, 0)],
                               g.edge_dst[np.maximum(g.seg_bwd, 0)]).astype(np.int64)
        self._seg_v = np.where(has_f, g.edge_dst[np.maximum(g.seg_fwd, 0)],
                               g.edge_src[np.maximum(g.seg_bwd, 0)]).astype(np.int64)
        self._lock = threading.RLock()
        self._weights: dict[tuple[float, ...], _Weights] = {}
        self._snaps = SnapIndex(graph, spur_max_m=self.snap_max_m)
        self._base = self._prepare(g.edge_time_s)

    def warm(self) -> None:
        """Build the snap index now rather than on the first query (call at start-up)."""
        self._snaps.warm()

    # --- weights -------------------------------------------------------------------------------
    def _prepare(self, time_s: FloatArray) -> _Weights:
        g, n = self.graph, self._n
        fast = g.fastest_edges(time_s)
        u, v, w = g.edge_src[fast].astype(np.int64), g.edge_dst[fast].astype(np.int64), time_s[fast]
        fwd_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(u, minlength=n), out=fwd_ptr[1:])
        fwd = sp.csr_matrix((w.astype(np.float64), v.astype(np.int32), fwd_ptr), shape=(n, n))
        order = np.lexsort((u, v))
        rev_ptr = np.zeros(n + 2, dtype=np.int64)
        np.cumsum(np.bincount(v, minlength=n), out=rev_ptr[1:n + 1])
        rev_ptr[n + 1] = rev_ptr[n] + 2
        rev_idx = np.concatenate([u[order], [0, 0]]).astype(np.int32)
        rev_w = np.concatenate([w[order], [0.0, 0.0]]).astype(np.float64)
        rev = sp.csr_matrix((rev_w, rev_idx, rev_ptr), shape=(n + 1, n + 1))
        return _Weights(time=time_s, fast=fast, keys=u * n + v, rev=rev, fwd=fwd)

    def _weights_at(self, at: datetime | None) -> _Weights:
        if at is None or self.time_factors is None:
            return self._base
        factors = self.time_factors.class_factors(at, self.graph.classes)
        if all(f == 1.0 for f in factors):
            return self._base
        with self._lock:
            w = self._weights.get(factors)
            if w is None:
                mult = np.asarray(factors, dtype=np.float64)[self.graph.edge_class]
                w = self._prepare(self.graph.edge_time_s / mult)
                self._weights[factors] = w
            return w

    def snap(self, p: LatLng) -> Snap:
        """Snap one point to the nearest road segment.

        Parameters
        ----------
        p
            The point.

        Returns
        -------
        Snap
            Nearer segment end node, distance to the road, on-road flag and exact position.
        """
        # Not cached: incidents are one-off points (crews go through the cache in ``rank``).
        pts = self._snaps.snap_xy(np.array([float(p.lat)]), np.array([float(p.lng)]))
        seg, frac, dist = int(pts.seg[0]), float(pts.frac[0]), float(pts.dist_m[0])
        node = int(self._seg_u[seg] if frac < 0.5 else self._seg_v[seg])
        lat, lng = self._point_on_segment(seg, frac)
        return Snap(node=node, distance_m=dist, on_road=dist <= self.snap_max_m, segment=seg,
                    fraction=frac, point=LatLng(lat, lng))

    def _walk_s(self, dist_m: FloatArray) -> FloatArray:
        """Seconds on foot between off-road points (beyond ``snap_max_m``) and the road."""
        out: FloatArray = np.where(dist_m > self.snap_max_m, dist_m / self.walk_mps, 0.0)
        return out

    def off_road_m(self, snap: Snap) -> float:
        """Metres on foot between a snapped point and the road (0 when it is on the road)."""
        return 0.0 if snap.on_road else float(snap.distance_m)

    def _point_on_segment(self, seg: int, frac: float) -> tuple[float, float]:
        lat, lng = self.graph.segment_coords(seg)
        la, ln = _cut(lat, lng, frac, frac)
        return float(la[0]), float(ln[0])

    # --- search --------------------------------------------------------------------------------
    def _target_seeds(self, w: _Weights, seg: int, frac: float
                      ) -> list[tuple[int, float, float, int, float]]:
        """(node, time, metres, edge, edge fraction) entering the target's segment.

        A target exactly on a junction is reached by any road into that node: one seed at the
        node with nothing left to drive (edge -1).
        """
        g = self.graph
        if frac == 0.0:
            return [(int(self._seg_u[seg]), 0.0, 0.0, -1, 0.0)]
        if frac == 1.0:
            return [(int(self._seg_v[seg]), 0.0, 0.0, -1, 0.0)]
        seeds = []
        ef, eb = int(g.seg_fwd[seg]), int(g.seg_bwd[seg])
        if ef >= 0:  # drive along the segment: enter at u, cover frac of the edge
            seeds.append((int(g.edge_src[ef]), frac * w.time[ef], frac * g.edge_length_m[ef],
                          ef, frac))
        if eb >= 0:  # drive against it: enter at v, cover 1 - frac
            f = 1.0 - frac
            seeds.append((int(g.edge_src[eb]), f * w.time[eb], f * g.edge_length_m[eb], eb, f))
        return seeds

    def _search(self, w: _Weights, seeds: Sequence[tuple[int, float, float, int, float]],
                limit: float) -> tuple[FloatArray, IntArray]:
        """Reverse Dijkstra from the virtual target node; (time to target, predecessor) per node."""
        n = self._n
        with self._lock:
            m = w.rev
            a = seeds[0]
            b = seeds[1] if len(seeds) > 1 else a
            m.indices[-2] = a[0]
            m.indices[-1] = b[0]
            m.data[-2] = a[1]
            m.data[-1] = b[1]
            dist, pred = dijkstra(m, directed=True, indices=n, limit=limit,
                                  return_predecessors=True)
        return dist, pred

    def _exits(self, w: _Weights, pts: _Points, tseg: int, tfrac: float) -> _Exits:
        """How each crew leaves its edge: an end with a partial time, or straight to the target."""
        g, n = self.graph, self._n
        static = pts.exits.get(id(w))
        if static is None:
            ef, eb = g.seg_fwd[pts.seg], g.seg_bwd[pts.seg]
            hf, hb = ef >= 0, eb >= 0
            eff, ebb = np.maximum(ef, 0), np.maximum(eb, 0)
            # A missing direction exits at the virtual node (time 0) with an infinite offset.
            # A crew exactly on a junction leaves by any road there: it "exits" at that node
            # with nothing left to drive, whichever segment the snap picked (a one-way segment
            # pointing away from where it must go would otherwise have to be driven first).
            at_u, at_v = pts.frac == 0.0, pts.frac == 1.0
            # A crew off-road walks to the road first (every way out starts with that).
            walk = self._walk_s(pts.dist_m)
            static = (np.where(at_v, self._seg_v[pts.seg], np.where(hf, g.edge_dst[eff], n)),
                      walk + np.where(at_v, 0.0,
                                      np.where(hf, (1.0 - pts.frac) * w.time[eff], np.inf)),
                      np.where(at_u, self._seg_u[pts.seg], np.where(hb, g.edge_dst[ebb], n)),
                      walk + np.where(at_u, 0.0, np.where(hb, pts.frac * w.time[ebb], np.inf)))
            pts.exits[id(w)] = static
        xf, of, xb, ob = static
        direct = np.full(pts.seg.shape[0], np.inf)
        same = np.flatnonzero(pts.seg == tseg)
        if same.shape[0]:
            tf_, tb_ = int(g.seg_fwd[tseg]), int(g.seg_bwd[tseg])
            fr = pts.frac[same]
            along = np.where((fr <= tfrac) & (tf_ >= 0), (tfrac - fr) * w.time[max(tf_, 0)],
                             np.inf)
            back = np.where((fr >= tfrac) & (tb_ >= 0), (fr - tfrac) * w.time[max(tb_, 0)],
                            np.inf)
            direct[same] = np.minimum(along, back) + self._walk_s(pts.dist_m[same])
        return _Exits(xf=xf, of=of, xb=xb, ob=ob, direct=direct)

    def _crew_etas(self, w: _Weights, pts: _Points, dist: FloatArray, tseg: int, tfrac: float
                   ) -> tuple[FloatArray, IntArray]:
        """ETA per crew and how it leaves its edge: 0 along, 1 against, 2 direct, -1 none."""
        ex = self._exits(w, pts, tseg, tfrac)
        stack = np.vstack([dist[ex.xf] + ex.of, dist[ex.xb] + ex.ob, ex.direct])
        how = np.argmin(stack, axis=0)
        eta = stack[how, np.arange(stack.shape[1])]
        return eta, np.where(np.isfinite(eta), how, -1)

    def _tree_lengths(self, w: _Weights, dist: FloatArray, pred: IntArray,
                      seeds: Sequence[tuple[int, float, float, int, float]]) -> FloatArray:
        """Road metres from every reached node to the target along the shortest-time tree.

        Pointer jumping over the predecessor tree, rooted at the virtual target node ``n`` (which
        points to itself with length 0): each round adds the length accumulated by the node it
        points to and then points two steps up, so a tree of depth d takes log2(d) vectorised
        rounds over the node array. Index ``n`` of the result is 0; unreached nodes are inf.
        """
        n = self._n
        g = self.graph
        ptr = pred.astype(np.int64)
        reached = np.isfinite(dist)
        ptr[~reached] = n
        ptr[n] = n
        acc = np.zeros(n + 1, dtype=np.float64)
        inner = np.flatnonzero(reached[:n] & (ptr[:n] != n))
        k = np.searchsorted(w.keys, inner * n + ptr[inner])
        acc[inner] = g.edge_length_m[w.fast[k]]
        for node, _, metres, _, _ in seeds:
            if ptr[node] == n:
                acc[node] = metres
        while not (ptr == n).all():
            acc += acc[ptr]
            ptr = ptr[ptr]
        acc[~reached] = np.inf
        return acc

    def _walk_lengths(self, w: _Weights, pred: IntArray, nodes: IntArray,
                      seeds: Sequence[tuple[int, float, float, int, float]]) -> FloatArray:
        """Road metres to the target from a few nodes, walking the predecessor tree."""
        n = self._n
        seed_m = {s[0]: s[2] for s in seeds}
        out = np.full(nodes.shape[0], np.inf)
        for j, start in enumerate(nodes.tolist()):
            if start >= n:
                continue
            keys: list[int] = []
            x = start
            p = int(pred[x])
            while p != n:
                if p < 0:
                    break
                keys.append(x * n + p)
                x, p = p, int(pred[p])
            if p != n:
                continue
            edges = w.fast[np.searchsorted(w.keys, np.asarray(keys, dtype=np.int64))]
            out[j] = float(self.graph.edge_length_m[edges].sum()) + seed_m[x]
        return out

    def _prepare_query(self, target: LatLng, at: datetime | None
                       ) -> tuple[_Weights, Snap, list[tuple[int, float, float, int, float]]]:
        w = self._weights_at(at)
        tsnap = self.snap(target)
        seeds = self._target_seeds(w, tsnap.segment, tsnap.fraction)
        return w, tsnap, seeds

    def rank(self, target: LatLng, candidates: Sequence[tuple[int, LatLng]], *,
             k: int | None = None, limit_s: float = 1800.0, at: datetime | None = None
             ) -> list[CrewEta]:
        """Drive time and road distance from crews to an incident, fastest first.

        Parameters
        ----------
        target
            The incident.
        candidates
            ``(unit_id, position)`` of the suitable crews.
        k
            Stop once the k fastest are known (None = rank every crew within ``limit_s``).
        limit_s
            Crews further than this (seconds) are left out.
        at
            Time of the drive, for the time-of-day speed factors (when configured).

        Returns
        -------
        list of CrewEta
            Sorted by (eta, unit_id); unreachable crews and crews beyond ``limit_s`` omitted.
        """
        _check_limit(limit_s)
        if not candidates or (k is not None and k <= 0):
            return []
        w, tsnap, seeds = self._prepare_query(target, at)
        # An off-road incident: the last metres are on foot, the same for every crew.
        t_walk = self.off_road_m(tsnap) / self.walk_mps
        limit_s -= t_walk
        if limit_s < 0:
            return []
        ids = np.fromiter(map(itemgetter(0), candidates), dtype=np.int64, count=len(candidates))
        pts = self._snaps.snap_points(list(map(itemgetter(1), candidates)))
        ex = self._exits(w, pts, tsnap.segment, tsnap.fraction)
        want = len(candidates) if k is None else min(k, len(candidates))
        limit = limit_s if want == len(candidates) else min(FIRST_LIMIT_S, limit_s)
        while True:
            dist, pred = self._search(w, seeds, limit)
            t_f, t_b = dist[ex.xf] + ex.of, dist[ex.xb] + ex.ob
            eta = np.minimum(np.minimum(t_f, t_b), ex.direct)
            inside = np.flatnonzero(np.isfinite(eta) & (eta <= limit))
            if inside.shape[0] >= want or limit >= limit_s:
                break
            limit = min(limit_s, limit * GROW)
        if want < inside.shape[0]:
            # Keep every crew tied with the k-th so the (eta, id) order below decides among them.
            kth = np.partition(eta[inside], want - 1)[want - 1]
            inside = inside[eta[inside] <= kth]
        order = inside[np.lexsort((ids[inside], eta[inside]))][:want]
        # Which way each chosen crew leaves its edge, and the road metres of that drive.
        g = self.graph
        tf, tb, td = t_f[order], t_b[order], ex.direct[order]
        seg, frac = pts.seg[order], pts.frac[order]
        exit_node = np.where(tf <= tb, ex.xf[order], ex.xb[order])
        if order.shape[0] <= 32:
            tree = self._walk_lengths(w, pred, exit_node, seeds)
        else:
            tree = self._tree_lengths(w, dist, pred, seeds)[exit_node]
        ef, eb = np.maximum(g.seg_fwd[seg], 0), np.maximum(g.seg_bwd[seg], 0)
        partial = np.where(tf <= tb, (1.0 - frac) * g.edge_length_m[ef],
                           frac * g.edge_length_m[eb])
        direct_m = np.abs(frac - tsnap.fraction) * g.edge_length_m[
            np.where(frac <= tsnap.fraction, ef, eb)]
        on_road = pts.dist_m[order] <= self.snap_max_m
        off_m = np.where(on_road, 0.0, pts.dist_m[order])
        metres = np.where(td <= np.minimum(tf, tb), direct_m, partial + tree) + off_m \
            + self.off_road_m(tsnap)
        return list(map(CrewEta, ids[order].tolist(), (eta[order] + t_walk).tolist(),
                        metres.tolist(), on_road.tolist(), off_m.tolist()))

    # --- routes ---------------------------------------------------------------------------------
    def routes(self, target: LatLng, sources: Sequence[tuple[int, LatLng]], *,
               at: datetime | None = None, limit_s: float = math.inf) -> dict[int, Route]:
        """Route geometry, time and distance from each source (crew) to the target, one search.

        Parameters
        ----------
        target
            The incident.
        sources
            ``(unit_id, position)`` of the crews to draw (e.g. the recommended ones).
        at
            Time of the drive (time-of-day factors).
        limit_s
            Search bound; sources beyond it get no route.

        Returns
        -------
        dict
            unit_id -> Route; unreachable sources are missing.
        """
        _check_limit(limit_s)
        if not sources:
            return {}
        w, tsnap, seeds = self._prepare_query(target, at)
        pts = self._snaps.snap_points([s[1] for s in sources])
        dist, pred = self._search(w, seeds, limit_s)
        t_walk = self.off_road_m(tsnap) / self.walk_mps
        eta, how = self._crew_etas(w, pts, dist, tsnap.segment, tsnap.fraction)
        out: dict[int, Route] = {}
        g, n = self.graph, self._n
        for j, (unit_id, _) in enumerate(sources):
            if how[j] < 0:
                continue
            seg, frac = int(pts.seg[j]), float(pts.frac[j])
            lat, lng = g.segment_coords(seg)
            pieces: list[tuple[FloatArray, FloatArray]] = []
            metres = 0.0
            if how[j] == 2:
                la, ln = _cut(lat, lng, frac, tsnap.fraction)
                e = int(g.seg_fwd[seg] if frac <= tsnap.fraction else g.seg_bwd[seg])
                metres = abs(tsnap.fraction - frac) * float(g.edge_length_m[e])
                pieces.append((la, ln))
            else:
                e = int(g.seg_fwd[seg] if how[j] == 0 else g.seg_bwd[seg])
                fe = frac if how[j] == 0 else 1.0 - frac
                if fe == 1.0 or e < 0:  # on the exit junction already (see _exits)
                    x = int(self._seg_v[seg] if how[j] == 0 else self._seg_u[seg])
                    pieces.append((np.array([g.node_lat[x]]), np.array([g.node_lng[x]])))
                else:
                    elat, elng = g.edge_coords(e)
                    pieces.append(_cut(elat, elng, fe, 1.0))
                    metres += (1.0 - fe) * float(g.edge_length_m[e])
                    x = int(g.edge_dst[e])
                while int(pred[x]) != n:
                    p = int(pred[x])
                    k = int(np.searchsorted(w.keys, x * n + p))
                    edge = int(w.fast[k])
                    pieces.append(g.edge_coords(edge))
                    metres += float(g.edge_length_m[edge])
                    x = p
                seed = min((s for s in seeds if s[0] == x), key=lambda s: s[1])
                if seed[3] >= 0:  # (a target on a junction has no piece of edge left)
                    elat, elng = g.edge_coords(seed[3])
                    pieces.append(_cut(elat, elng, 0.0, seed[4]))
                    metres += seed[2]
            coords: list[LatLng] = []
            for la, ln in pieces:
                for a, b in zip(la.tolist(), ln.tolist(), strict=True):
                    if not coords or coords[-1] != (a, b):
                        coords.append(LatLng(a, b))
            # Off-road ends are walked: counted in time and distance, drawn as straight legs.
            metres += self.off_road_m(tsnap)
            if pts.dist_m[j] > self.snap_max_m:
                metres += float(pts.dist_m[j])
            out[int(unit_id)] = Route(coords=coords, eta_s=float(eta[j]) + t_walk,
                                      distance_m=metres)
        return out

    def route(self, source: LatLng, target: LatLng, *, at: datetime | None = None) -> Route:
        """The fastest drive from ``source`` to ``target`` (both snapped onto roads).

        Raises
        ------
        NotFound
            When no road route exists.
        """
        found = self.routes(target, [(0, source)], at=at)
        if 0 not in found:
            raise NotFound("no road route between these points")
        return found[0]

    # --- coverage -------------------------------------------------------------------------------
    def multi_source_times(self, sources: Sequence[LatLng], limit_s: float,
                           *, at: datetime | None = None) -> FloatArray:
        _check_limit(limit_s)
        return self._multi_source_times(sources, limit_s, at=at)

    def _multi_source_times(self, sources: Sequence[LatLng], limit_s: float,
                            *, at: datetime | None = None) -> FloatArray:
        """Drive time from the nearest source to every node (inf beyond ``limit_s``).

        Parameters
        ----------
        sources
            Crew or station positions (snapped; partial edge times counted).
        limit_s
            Search bound in seconds.
        at
            Time of the drive (time-of-day factors).

        Returns
        -------
        numpy.ndarray
            ``float64[n_nodes]``.
        """
        n = self._n
        if not sources:
            return np.full(n, np.inf)
        w = self._weights_at(at)
        g = self.graph
        pts = self._snaps.snap_points(list(sources))
        ef, eb = g.seg_fwd[pts.seg], g.seg_bwd[pts.seg]
        at_u, at_v = pts.frac == 0.0, pts.frac == 1.0  # on a junction: from there, any road
        nodes = np.concatenate([g.edge_dst[np.maximum(ef, 0)][ef >= 0],
                                g.edge_dst[np.maximum(eb, 0)][eb >= 0],
                                self._seg_u[pts.seg][at_u], self._seg_v[pts.seg][at_v]]
                               ).astype(np.int32)
        walk = self._walk_s(pts.dist_m)
        cost = np.concatenate([(walk + (1.0 - pts.frac) * w.time[np.maximum(ef, 0)])[ef >= 0],
                               (walk + pts.frac * w.time[np.maximum(eb, 0)])[eb >= 0],
                               walk[at_u], walk[at_v]])
        f = w.fwd
        indptr = np.concatenate([f.indptr, [f.indptr[-1] + nodes.shape[0]]]).astype(np.int64)
        m = sp.csr_matrix((np.concatenate([f.data, cost]), np.concatenate([f.indices, nodes]),
                           indptr), shape=(n + 1, n + 1))
        dist = dijkstra(m, directed=True, indices=n, limit=limit_s)
        out: FloatArray = dist[:n]
        return out


def _check_limit(limit_s: float) -> None:
    """A search bound is a number of seconds >= 0, or inf for none; NaN would never finish."""
    if not isinstance(limit_s, (int, float)) or math.isnan(limit_s) or limit_s < 0:
        raise ValueError(f"the search limit must be >= 0 seconds (or inf), not {limit_s!r}")


def _cut(lat: FloatArray, lng: FloatArray, f0: float, f1: float) -> tuple[FloatArray, FloatArray]:
    """The part of a polyline between length fractions ``f0`` and ``f1`` (reversed if f1 < f0)."""
    if f1 < f0:
        la, ln = _cut(lat, lng, f1, f0)
        return la[::-1], ln[::-1]
    step = haversine_arrays(lat[:-1], lng[:-1], lat[1:], lng[1:])
    cum = np.concatenate([[0.0], np.cumsum(step)])
    total = cum[-1]
    if total <= 0:
        return lat[:1].copy(), lng[:1].copy()
    d0, d1 = f0 * total, f1 * total
    la0, ln0 = np.interp(d0, cum, lat), np.interp(d0, cum, lng)
    la1, ln1 = np.interp(d1, cum, lat), np.interp(d1, cum, lng)
    inner = (cum > d0) & (cum < d1)
    return (np.concatenate([[la0], lat[inner], [la1]]), np.concatenate([[ln0], lng[inner], [ln1]]))


# --- process-wide instance ------------------------------------------------------------------------

_ROUTERS: dict[tuple[str, int, int], Router] = {}
_ROUTERS_LOCK = threading.Lock()


def load_router(settings: Settings) -> Router | None:
    """The process's Router for ``settings.resolved_graph_path`` (None when no graph is built yet).

    Loaded once per process per path (and again only if the file is rebuilt), so the API, the
    recommender and the simulator share one graph in memory.
    """
    path = Path(settings.resolved_graph_path)
    try:
        st = path.stat()
    except FileNotFoundError:
        log.warning("no road graph at %s: run `geodispatch graph import`", path)
        return None
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    with _ROUTERS_LOCK:
        router = _ROUTERS.get(key)
        if router is None:
            graph = RoadGraph.load(path)
            factors = (TimeFactors.load(settings.speed_factors_file, settings.routing_timezone)
                       if settings.rush_hour_factors else None)
            router = Router(graph, snap_max_m=settings.snap_max_m, time_factors=factors,
                            walk_speed_kmh=settings.walk_speed_kmh)
            for old in [k for k in _ROUTERS if k[0] == key[0]]:
                del _ROUTERS[old]
            _ROUTERS[key] = router
            log.info("road graph %s: %d nodes, %d edges", path, graph.n_nodes, graph.n_edges)
        return router


def straight_line_m(a: LatLng, b: LatLng) -> float:
    """Great-circle metres (re-exported for callers comparing with road distance)."""
    return haversine_m(a, b)
