"""Roads the component filter leaves out stay snappable: a point on one is placed at the kept
junction it is reached from (the way along it counted), when that is within the snap distance."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from geodispatch.geo import LatLng, haversine_m
from geodispatch.routing.engine import Router
from geodispatch.routing.graph import RoadGraph
from geodispatch.routing.importer import WayBatch, build_graph
from geodispatch.routing.speeds import DEFAULT_SPEEDS_KMH

LAT0, LNG0 = 50.45, 30.52
M_LAT = 1 / 111_195.0
M_LNG = 1 / (111_195.0 * math.cos(math.radians(LAT0)))


def _at(x_m: float, y_m: float) -> tuple[float, float]:
    return LAT0 + y_m * M_LAT, LNG0 + x_m * M_LNG


def _square_with_spur() -> RoadGraph:
    """A two-way square A(0,0) B(400,0) C(400,400) D(0,400), and a one-way road out of A that
    goes 30 m south and then 150 m east, beside side AB: nobody can drive back out of it, so it
    is not in the strongly connected network."""
    batch = WayBatch()
    corners = {1: (0, 0), 2: (400, 0), 3: (400, 400), 4: (0, 400)}
    for way, (a, b) in enumerate([(1, 2), (2, 3), (3, 4), (4, 1)], start=1):
        refs = [(n, *_at(*corners[n])) for n in (a, b)]
        batch.add_way(way, {"highway": "residential", "name": f"side {way}"}, refs,
                      DEFAULT_SPEEDS_KMH)
    spur = [(1, *_at(0, 0)), (10, *_at(0, -30)), (11, *_at(150, -30))]
    batch.add_way(9, {"highway": "service", "oneway": "yes"}, spur, DEFAULT_SPEEDS_KMH)
    return build_graph(batch)


def _node_at(g: RoadGraph, x_m: float, y_m: float) -> int:
    lat, lng = _at(x_m, y_m)
    return int(np.argmin(np.hypot(g.node_lat - lat, g.node_lng - lng)))


def _at_node(router: Router, p: LatLng) -> tuple[int | None, float]:
    """The graph node a snap sits on (None when it is inside a segment) and its distance."""
    snap = router.snap(p)
    return (snap.node if snap.fraction in (0.0, 1.0) else None), snap.distance_m


def test_a_left_out_road_is_kept_as_a_spur_attached_at_its_junction() -> None:
    g = _square_with_spur()
    assert g.n_nodes == 4 and g.meta["dropped_nodes"] == 1  # the spur's far end
    assert g.n_spurs == 1 and g.meta["spur_segments"] == 1
    a = _node_at(g, 0, 0)
    assert int(g.spur_u_node[0]) == a and float(g.spur_u_m[0]) == 0.0
    assert g.spur_len_m[0] == pytest.approx(180.0, abs=0.5)
    # the far end meets the network only through A: 180 m back along the spur
    assert int(g.spur_v_node[0]) == a and float(g.spur_v_m[0]) == pytest.approx(180.0, abs=0.5)


def test_a_point_on_the_spur_is_placed_at_its_junction() -> None:
    g = _square_with_spur()
    router = Router(g)
    a = _node_at(g, 0, 0)
    end = LatLng(*_at(150, -30))  # 30 m from side AB, 180 m along the spur from A
    node, dist = _at_node(router, end)
    assert node == a
    assert dist == pytest.approx(180.0, abs=1.0)
    mid = LatLng(*_at(60, -30))
    node, dist = _at_node(router, mid)
    assert node == a and dist == pytest.approx(90.0, abs=1.0)
    # a crew at C drives to A for either: the same time as to A itself
    crew = LatLng(*_at(400, 400))
    to_a = router.rank(g.node(a), [(1, crew)])[0].eta_s
    assert router.rank(end, [(1, crew)])[0].eta_s == pytest.approx(to_a, abs=0.5)


def test_points_on_kept_roads_are_not_pulled_onto_a_spur() -> None:
    """A point on side AB (30 m from the spur) stays on AB; so does a point nearer the spur by
    less than the tolerance."""
    router = Router(_square_with_spur())
    on_ab = LatLng(*_at(120, 0))
    snap = router.snap(on_ab)
    assert snap.distance_m < 0.5 and 0.0 < snap.fraction < 1.0
    between = LatLng(*_at(120, -14))  # 14 m from AB, 16 m from the spur
    snap = router.snap(between)
    assert snap.distance_m == pytest.approx(14.0, abs=0.5) and 0.0 < snap.fraction < 1.0


def test_a_spur_beyond_the_snap_distance_is_not_used() -> None:
    """With a 100 m snap distance the spur's far end (180 m from A) snaps to side AB as any
    point off the network does."""
    router = Router(_square_with_spur(), snap_max_m=100.0)
    end = LatLng(*_at(150, -30))
    snap = router.snap(end)
    assert snap.distance_m == pytest.approx(30.0, abs=0.5) and 0.0 < snap.fraction < 1.0


def test_spurs_survive_save_and_a_format_1_file_loads_without_them(tmp_path: Path) -> None:
    g = _square_with_spur()
    path = g.save(tmp_path / "g.npz")
    again = RoadGraph.load(path)
    assert again.n_spurs == 1
    assert np.array_equal(again.spur_u_node, g.spur_u_node)
    end = LatLng(*_at(150, -30))
    assert Router(again).snap(end).distance_m == pytest.approx(180.0, abs=1.0)
    with np.load(path, allow_pickle=False) as z:
        old = {k: z[k] for k in z.files if not k.startswith("spur_")}
    meta = json.loads(str(old["meta"]))
    old["meta"] = np.array(json.dumps(dict(meta, format=1)))
    np.savez(tmp_path / "old.npz", **old)
    v1 = RoadGraph.load(tmp_path / "old.npz")
    assert v1.n_spurs == 0
    assert Router(v1).snap(end).distance_m == pytest.approx(30.0, abs=0.5)


def test_spurs_on_a_real_extract(load_graph: Callable[[str], RoadGraph]) -> None:
    """Andorra's import leaves roads out; each kept spur is attached to kept nodes within the
    import's limit, and a point on any spur gets a finite drive time from the network."""
    g = load_graph("andorra_2013.osm.pbf")
    assert g.meta["dropped_nodes"] > 0 and g.n_spurs > 0
    assert ((g.spur_u_node >= 0) | (g.spur_v_node >= 0)).all()
    assert (g.spur_u_node < g.n_nodes).all() and (g.spur_v_node < g.n_nodes).all()
    assert (np.minimum(g.spur_u_m, g.spur_v_m) <= 500.0).all()
    router = Router(g)
    mids = [(i, (int(g.spur_start[i]) + int(g.spur_end[i])) // 2) for i in range(g.n_spurs)]
    points = [LatLng(float(g.coord_lat[c]), float(g.coord_lng[c])) for _, c in mids]
    crew = g.node(0)
    placed = 0
    for (i, _), p in zip(mids, points, strict=True):
        snap = router.snap(p)
        via = [(int(n), float(d)) for n, d in ((g.spur_u_node[i], g.spur_u_m[i]),
                                                (g.spur_v_node[i], g.spur_v_m[i])) if n >= 0]
        if snap.fraction in (0.0, 1.0) and snap.node in {n for n, _ in via}:
            placed += 1
            # placed at an attachment node: never nearer than that node in a straight line
            assert snap.distance_m >= haversine_m(p, g.node(snap.node)) - 1.0
        assert math.isfinite(router.rank(p, [(1, crew)])[0].eta_s)
    assert placed > 0
