"""The drive-time engine: exact ETAs, one-way rules, snapping, top-k, routes and coverage."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from scipy.sparse.csgraph import dijkstra

from geodispatch.geo import LatLng, haversine_m
from geodispatch.routing.engine import Router, Snap, load_router
from geodispatch.routing.graph import RoadGraph, haversine_arrays
from geodispatch.routing.speeds import TimeFactors
from geodispatch.settings import Settings
from tests.routing.conftest import EXTRACTS, random_points


def _attach(G: nx.DiGraph, g: RoadGraph, name: object, s: Snap, *, target: bool) -> None:
    """Join a snapped point to a networkx graph with the partial edge times (a point exactly at
    a segment's end is at that junction: it may arrive or leave by any road there)."""
    ef, eb, f = int(g.seg_fwd[s.segment]), int(g.seg_bwd[s.segment]), s.fraction
    if f in (0.0, 1.0):
        at_u = f == 0.0
        node = (int(g.edge_src[ef]) if at_u else int(g.edge_dst[ef])) if ef >= 0 else \
            (int(g.edge_dst[eb]) if at_u else int(g.edge_src[eb]))
        G.add_edge(*((node, name) if target else (name, node)), w=0.0)
    if target:
        if ef >= 0:
            G.add_edge(int(g.edge_src[ef]), name, w=f * g.edge_time_s[ef])
        if eb >= 0:
            G.add_edge(int(g.edge_src[eb]), name, w=(1 - f) * g.edge_time_s[eb])
    else:
        if ef >= 0:
            G.add_edge(name, int(g.edge_dst[ef]), w=(1 - f) * g.edge_time_s[ef])
        if eb >= 0:
            G.add_edge(name, int(g.edge_dst[eb]), w=f * g.edge_time_s[eb])


def networkx_etas(g: RoadGraph, router: Router, target: LatLng,
                  crews: list[tuple[int, LatLng]]) -> dict[int, float]:
    """Reference ETAs: networkx Dijkstra on the same edge weights, crews and incident on edges."""
    G = nx.DiGraph()
    for e in range(g.n_edges):
        u, v, w = int(g.edge_src[e]), int(g.edge_dst[e]), float(g.edge_time_s[e])
        if not G.has_edge(u, v) or G[u][v]["w"] > w:
            G.add_edge(u, v, w=w)
    ts = router.snap(target)
    _attach(G, g, "T", ts, target=True)
    for uid, p in crews:
        s = router.snap(p)
        _attach(G, g, ("C", uid), s, target=False)
        if s.segment == ts.segment:  # same road piece: drive straight there if allowed
            ef, eb = int(g.seg_fwd[s.segment]), int(g.seg_bwd[s.segment])
            if ef >= 0 and s.fraction <= ts.fraction:
                G.add_edge(("C", uid), "T", w=(ts.fraction - s.fraction) * g.edge_time_s[ef])
            if eb >= 0 and s.fraction >= ts.fraction:
                G.add_edge(("C", uid), "T", w=(s.fraction - ts.fraction) * g.edge_time_s[eb])
    lengths = nx.single_source_dijkstra_path_length(G.reverse(copy=False), "T", weight="w")
    return {uid: lengths[("C", uid)] for uid, _ in crews if ("C", uid) in lengths}


@pytest.mark.parametrize("name", EXTRACTS)
def test_etas_equal_networkx(load_graph: Callable[[str], RoadGraph], name: str) -> None:
    """On every real extract, ranked ETAs equal networkx's Dijkstra on the same weights (0.1 s)."""
    g = load_graph(name)
    router = Router(g)
    crews = list(enumerate(random_points(g, 60, seed=1)))
    for target in random_points(g, 6, seed=2):
        ranked = router.rank(target, crews, limit_s=math.inf)
        ref = networkx_etas(g, router, target, crews)
        assert {c.unit_id for c in ranked} == set(ref)
        for c in ranked:
            assert abs(c.eta_s - ref[c.unit_id]) < 0.1


def test_oneway_respected(baltimore: RoadGraph, baltimore_router: Router) -> None:
    """Along a one-way street a crew drives straight on; against it, it must go around."""
    g = baltimore
    oneway = np.flatnonzero((g.seg_bwd < 0) & (g.edge_length_m[np.maximum(g.seg_fwd, 0)] > 150))
    seg = int(oneway[0])
    e = int(g.seg_fwd[seg])
    lat, lng = g.segment_coords(seg)
    from geodispatch.routing.engine import _cut

    def at(f: float) -> LatLng:
        la, ln = _cut(lat, lng, f, f)
        return LatLng(float(la[0]), float(ln[0]))

    a, b = at(0.2), at(0.8)
    along = baltimore_router.rank(b, [(1, a)], limit_s=math.inf)[0]
    against = baltimore_router.rank(a, [(1, b)], limit_s=math.inf)[0]
    assert along.eta_s == pytest.approx(0.6 * g.edge_time_s[e], rel=1e-3)
    assert against.eta_s > along.eta_s + 1.0
    assert against.distance_m > 0.6 * g.edge_length_m[e]


def test_snap_on_road(baltimore: RoadGraph, baltimore_router: Router) -> None:
    """A point on a junction snaps there with ~0 m and on_road."""
    s = baltimore_router.snap(baltimore.node(100))
    assert s.distance_m < 0.5 and s.on_road
    assert haversine_m(baltimore.node(s.node), baltimore.node(100)) < 0.5


def test_snap_near_road_gives_distance(baltimore: RoadGraph, baltimore_router: Router) -> None:
    """A point 30 m beside a straight road snaps onto it at about 30 m, still on the road."""
    g = baltimore
    first_piece = haversine_arrays(g.coord_lat[g.seg_start], g.coord_lng[g.seg_start],
                                   g.coord_lat[g.seg_start + 1], g.coord_lng[g.seg_start + 1])
    lat, lng = g.segment_coords(int(np.argmax(first_piece)))
    mid = LatLng(float((lat[0] + lat[1]) / 2), float((lng[0] + lng[1]) / 2))
    north = LatLng(mid.lat + 30 / 111_320, mid.lng)
    s = baltimore_router.snap(north)
    assert s.on_road
    assert 0 < s.distance_m <= 30.5


def test_snap_off_road_flagged(baltimore: RoadGraph, baltimore_router: Router) -> None:
    """A point 2 km beyond the map is flagged off-road, not silently snapped."""
    min_lat, min_lng, _, _ = baltimore.bbox()
    s = baltimore_router.snap(LatLng(min_lat - 0.02, min_lng - 0.02))
    assert not s.on_road
    assert s.distance_m > 1500


def test_snap_matches_brute_force(baltimore: RoadGraph, baltimore_router: Router) -> None:
    """The k-d tree snap finds the same distance as checking every segment piece."""
    from shapely import LineString, Point

    lines = [LineString(np.column_stack(baltimore.segment_coords(s)[::-1]))
             for s in range(baltimore.n_segments)]
    for p in random_points(baltimore, 15, seed=5):
        best = min(range(len(lines)), key=lambda i: lines[i].distance(Point(p.lng, p.lat)))
        foot = lines[best].interpolate(lines[best].project(Point(p.lng, p.lat)))
        s = baltimore_router.snap(p)
        assert s.distance_m == pytest.approx(haversine_m(p, LatLng(foot.y, foot.x)), abs=0.5)


def test_topk_equals_first_k_of_rank_all(baltimore: RoadGraph, baltimore_router: Router) -> None:
    """The bounded top-k search returns exactly the first k of the full ranking."""
    crews = list(enumerate(random_points(baltimore, 400, seed=3)))
    for target in random_points(baltimore, 20, seed=4):
        full = baltimore_router.rank(target, crews)
        for k in (1, 5, 12):
            top = baltimore_router.rank(target, crews, k=k)
            assert [(c.unit_id, round(c.eta_s, 6), round(c.distance_m, 3)) for c in top] == \
                [(c.unit_id, round(c.eta_s, 6), round(c.distance_m, 3)) for c in full[:k]]


def test_limit_leaves_out_far_crews(baltimore: RoadGraph, baltimore_router: Router) -> None:
    """Crews beyond the time limit are omitted and the rest keep their ETAs."""
    crews = list(enumerate(random_points(baltimore, 200, seed=6)))
    target = random_points(baltimore, 1, seed=7)[0]
    full = baltimore_router.rank(target, crews, limit_s=math.inf)
    limit = full[len(full) // 2].eta_s
    bounded = baltimore_router.rank(target, crews, limit_s=limit)
    assert bounded == [c for c in full if c.eta_s <= limit]


def test_route_geometry_and_distance(baltimore: RoadGraph, baltimore_router: Router) -> None:
    """A crew's route runs from its road position to the incident's, as long as its distance."""
    crews = list(enumerate(random_points(baltimore, 50, seed=8)))
    target = random_points(baltimore, 1, seed=9)[0]
    top = baltimore_router.rank(target, crews, k=5)
    routes = baltimore_router.routes(target, [c for c in crews if c[0] in {t.unit_id for t in top}])
    for c in top:
        r = routes[c.unit_id]
        assert r.eta_s == pytest.approx(c.eta_s) and r.distance_m == pytest.approx(c.distance_m)
        drawn = sum(haversine_m(a, b) for a, b in zip(r.coords, r.coords[1:], strict=False))
        assert drawn == pytest.approx(r.distance_m, rel=0.01, abs=1.0)
        start = baltimore_router.snap(dict(crews)[c.unit_id]).point
        end = baltimore_router.snap(target).point
        assert start is not None and end is not None
        assert haversine_m(r.coords[0], start) < 1.0 and haversine_m(r.coords[-1], end) < 1.0


def test_multi_source_times(baltimore: RoadGraph, baltimore_router: Router) -> None:
    """Coverage times from crews at junctions equal the minimum of single-source searches."""
    nodes = [10, 1000, 3000]
    times = baltimore_router.multi_source_times([baltimore.node(i) for i in nodes], limit_s=600)
    ref = dijkstra(baltimore.csr(), indices=nodes, min_only=True, limit=600)
    assert times.shape == (baltimore.n_nodes,)
    finite = np.isfinite(ref)
    assert np.array_equal(finite, np.isfinite(times))
    assert np.abs(times[finite] - ref[finite]).max() < 0.01


def test_rush_hour_slows_and_night_speeds_up(baltimore: RoadGraph) -> None:
    """With the time-of-day table, a Monday 08:00 drive is slower and a 03:00 one faster."""
    router = Router(baltimore, time_factors=TimeFactors.load(None, "America/New_York"))
    crews = list(enumerate(random_points(baltimore, 30, seed=10)))
    target = random_points(baltimore, 1, seed=11)[0]
    free = {c.unit_id: c.eta_s for c in router.rank(target, crews)}
    rush = {c.unit_id: c.eta_s for c in router.rank(target, crews,
                                                     at=datetime(2026, 11, 30, 8, 0))}
    night = {c.unit_id: c.eta_s for c in router.rank(target, crews, at=datetime(2026, 12, 2, 3))}
    for uid, t in free.items():
        if t > 10:
            assert t / 0.8 * 0.99 <= rush[uid] <= t / 0.6 * 1.01
            assert t / 1.1 * 0.99 <= night[uid] <= t / 1.05 * 1.01


def test_load_router_once_per_path(baltimore: RoadGraph, tmp_path: Path,
                                   settings: Settings) -> None:
    """load_router returns one shared Router per graph file, and None before a graph is built."""
    s = settings.model_copy(update={"graph_path": tmp_path / "g.npz"})
    assert load_router(s) is None
    baltimore.save(tmp_path / "g.npz")
    first = load_router(s)
    assert first is not None and load_router(s) is first
    assert first.graph.n_edges == baltimore.n_edges


def _node_times(g: RoadGraph, targets: list[int]) -> np.ndarray:
    """Node-to-node fastest times to each target node (scipy Dijkstra on the reversed graph)."""
    import scipy.sparse as sp

    # Parallel edges between one pair: csr sums duplicates, so keep the fastest of each pair.
    order = np.lexsort((g.edge_time_s, g.edge_src, g.edge_dst))
    keep = np.ones(order.shape[0], dtype=bool)
    pair = g.edge_dst[order].astype(np.int64) * g.n_nodes + g.edge_src[order]
    keep[1:] = pair[1:] != pair[:-1]
    o = order[keep]
    m = sp.csr_matrix((g.edge_time_s[o], (g.edge_dst[o], g.edge_src[o])),
                      shape=(g.n_nodes, g.n_nodes))
    out: np.ndarray = dijkstra(m, directed=True, indices=targets)
    return out


@pytest.mark.parametrize("name", EXTRACTS)
def test_points_on_junctions_leave_and_arrive_by_any_road(
        load_graph: Callable[[str], RoadGraph], name: str) -> None:
    """A crew or an incident exactly on a junction may leave or arrive by any road there: its
    ETA is the node-to-node fastest time, whichever segment the point was snapped onto."""
    g = load_graph(name)
    router = Router(g)
    rng = np.random.default_rng(5)
    nodes = rng.choice(g.n_nodes, size=min(80, g.n_nodes), replace=False)
    crews = [(int(v), LatLng(float(g.node_lat[v]), float(g.node_lng[v]))) for v in nodes]
    targets = [int(v) for v in rng.choice(g.n_nodes, size=5, replace=False)]
    ref = _node_times(g, targets)
    for row, t in enumerate(targets):
        target = LatLng(float(g.node_lat[t]), float(g.node_lng[t]))
        ranked = {c.unit_id: c for c in router.rank(target, crews, limit_s=math.inf)}
        for v, _ in crews:
            want = float(ref[row, v])
            if math.isfinite(want):
                assert v in ranked, (v, t)
                assert abs(ranked[v].eta_s - want) < 0.1, (v, t, ranked[v].eta_s, want)
        # Routes agree with the ranking, and start and end at the junctions.
        drawn = router.routes(target, crews[:10])
        for v, p in crews[:10]:
            if v in drawn:
                assert abs(drawn[v].eta_s - ranked[v].eta_s) < 1e-6
                assert haversine_m(drawn[v].coords[0], p) < 1.0
                assert haversine_m(drawn[v].coords[-1], target) < 1.0


def test_search_limits_must_be_numbers(baltimore: RoadGraph, baltimore_router: Router) -> None:
    """NaN or a negative bound is refused (NaN never finished); inf means no bound and lists
    only crews that can actually get there."""
    target = random_points(baltimore, 1, seed=11)[0]
    crews = list(enumerate(random_points(baltimore, 30, seed=12)))
    for bad in (math.nan, -1.0, -math.inf):
        with pytest.raises(ValueError, match="search limit"):
            baltimore_router.rank(target, crews, limit_s=bad)
        with pytest.raises(ValueError, match="search limit"):
            baltimore_router.routes(target, crews, limit_s=bad)
        with pytest.raises(ValueError, match="search limit"):
            baltimore_router.multi_source_times([target], bad)
    ranked = baltimore_router.rank(target, crews, limit_s=math.inf)
    assert ranked and all(math.isfinite(c.eta_s) and math.isfinite(c.distance_m) for c in ranked)


def _away(p: LatLng, metres: float) -> LatLng:
    """A point ``metres`` due north of ``p``."""
    return LatLng(p.lat + metres / 111_195.0, p.lng)


def test_off_road_legs_are_walked_and_flagged(baltimore: RoadGraph) -> None:
    """An incident or a crew farther than snap_max_m from every road: the leg to the road is
    counted at walking speed in the ETA and the distance, and the crew is flagged."""
    router = Router(baltimore, snap_max_m=200.0, walk_speed_kmh=5.0)
    north = int(np.argmax(baltimore.node_lat))
    edge = LatLng(float(baltimore.node_lat[north]), float(baltimore.node_lng[north]))
    crews = list(enumerate(random_points(baltimore, 20, seed=3)))
    # The incident 900 m north of the northernmost junction: off every road.
    target = _away(edge, 900.0)
    tsnap = router.snap(target)
    assert not tsnap.on_road and tsnap.distance_m > 800
    assert tsnap.point is not None
    walk_s = tsnap.distance_m / (5.0 / 3.6)
    on_road = {c.unit_id: c for c in router.rank(tsnap.point, crews, limit_s=math.inf)}
    off = router.rank(target, crews, limit_s=math.inf)
    assert {c.unit_id for c in off} == set(on_road)
    for c in off:
        assert c.eta_s == pytest.approx(on_road[c.unit_id].eta_s + walk_s, abs=0.05)
        assert c.distance_m == pytest.approx(on_road[c.unit_id].distance_m + tsnap.distance_m,
                                             abs=0.5)
    # ... and beyond the search bound once the walk alone exceeds it.
    assert router.rank(target, crews, limit_s=walk_s - 1) == []
    # A crew 600 m off the road walks to it first, and says so.
    crew_far = _away(edge, 600.0)
    csnap = router.snap(crew_far)
    assert csnap.point is not None and not csnap.on_road
    road_target = random_points(baltimore, 1, seed=4)[0]
    [near] = router.rank(road_target, [(1, csnap.point)], limit_s=math.inf)
    [far] = router.rank(road_target, [(1, crew_far)], limit_s=math.inf)
    assert not far.on_road and far.off_road_m == pytest.approx(csnap.distance_m)
    assert far.eta_s == pytest.approx(near.eta_s + csnap.distance_m / (5.0 / 3.6), abs=0.05)
    drawn = router.routes(road_target, [(1, crew_far)])
    assert drawn[1].eta_s == pytest.approx(far.eta_s, abs=1e-6)
    # A target on the other side of the world: nobody within half an hour, and flagged.
    sydney = LatLng(-33.8688, 151.2093)
    assert not router.snap(sydney).on_road
    assert router.rank(sydney, crews, limit_s=1800.0) == []
