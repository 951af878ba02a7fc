"""Importing real OSM extracts in every supported format, and the road rules applied on the way."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components, dijkstra

from geodispatch.routing.graph import RoadGraph, haversine_arrays
from geodispatch.routing.importer import graph_from_osmnx, import_osm_file
from geodispatch.routing.speeds import (
    DEFAULT_SPEEDS_KMH,
    is_drivable,
    oneway_direction,
    parse_maxspeed,
)
from tests.routing.conftest import EXTRACTS


@pytest.mark.parametrize("name", EXTRACTS)
def test_import_each_extract(load_graph: Callable[[str], RoadGraph], name: str) -> None:
    """Every extract (.osm, .osm.gz, .osm.bz2, .osm.pbf) imports as one strongly connected graph."""
    g = load_graph(name)
    assert g.n_nodes > 20 and g.n_edges > 40
    n_comp, _ = connected_components(g.csr(), directed=True, connection="strong")
    assert n_comp == 1
    assert np.allclose(g.edge_time_s, g.edge_length_m / (g.edge_speed_kmh / 3.6), rtol=1e-5)


def test_edge_length_follows_geometry(baltimore: RoadGraph) -> None:
    """An edge's length is the length of its full way geometry, not the junction chord."""
    ptr, idx = baltimore.edge_coord_index()
    lat, lng = baltimore.coord_lat[idx], baltimore.coord_lng[idx]
    step = haversine_arrays(lat[:-1], lng[:-1], lat[1:], lng[1:])
    inside = np.ones(step.shape[0], dtype=bool)
    inside[ptr[1:-1] - 1] = False  # steps that jump from one edge to the next
    per_edge = np.add.reduceat(np.where(inside, step, 0.0), ptr[:-1])
    assert np.allclose(per_edge, baltimore.edge_length_m, rtol=1e-6, atol=0.01)


def test_oneway_tag_values() -> None:
    """oneway=yes/true/1 and -1, roundabouts and motorways are one-way; oneway=no overrides."""
    assert oneway_direction({"highway": "residential", "oneway": "yes"}) == 1
    assert oneway_direction({"highway": "residential", "oneway": "true"}) == 1
    assert oneway_direction({"highway": "residential", "oneway": "1"}) == 1
    assert oneway_direction({"highway": "residential", "oneway": "-1"}) == -1
    assert oneway_direction({"highway": "primary", "junction": "roundabout"}) == 1
    assert oneway_direction({"highway": "motorway"}) == 1
    assert oneway_direction({"highway": "motorway", "oneway": "no"}) == 0
    assert oneway_direction({"highway": "residential"}) == 0


def test_oneway_ways_have_one_edge(baltimore: RoadGraph) -> None:
    """A real extract has one-way segments, each with a single directed edge."""
    oneway = (baltimore.seg_fwd < 0) | (baltimore.seg_bwd < 0)
    assert 0.1 < oneway.mean() < 0.6
    assert not ((baltimore.seg_fwd < 0) & (baltimore.seg_bwd < 0)).any()


def test_maxspeed_parsing() -> None:
    """maxspeed numbers, mph, zone codes and lists become km/h; words without a number do not."""
    assert parse_maxspeed("50") == 50
    assert parse_maxspeed("30 mph") == pytest.approx(48.28, abs=0.01)
    assert parse_maxspeed("RU:urban") == 60
    assert parse_maxspeed("DE:urban") == 50
    assert parse_maxspeed("50;30") == 30
    assert parse_maxspeed("none") is None
    assert parse_maxspeed("signals") is None


def test_tagged_maxspeed_wins(baltimore: RoadGraph) -> None:
    """Edges of ways with maxspeed use it; the rest use the class table."""
    classes = np.asarray(baltimore.classes)[baltimore.edge_class]
    table = np.array([DEFAULT_SPEEDS_KMH[c] for c in classes])
    tagged = ~np.isclose(baltimore.edge_speed_kmh, table)
    assert tagged.any() and (~tagged).any()
    mph = np.isclose(baltimore.edge_speed_kmh, 25 * 1.609344, atol=0.01)  # "25 mph" streets
    assert mph.any()


def test_speed_table_file_overrides(osm_dir: Path, tmp_path: Path) -> None:
    """A JSON speed table changes the speed of untagged roads of that class."""
    table = tmp_path / "speeds.json"
    table.write_text(json.dumps({"residential": 21}))
    g = import_osm_file(osm_dir / "sf_mission_bernal_2014.osm", speed_table_file=table,
                        progress=False)
    residential = np.asarray(g.classes)[g.edge_class] == "residential"
    assert np.isclose(g.edge_speed_kmh[residential], 21).any()
    assert not np.isclose(g.edge_speed_kmh[residential], DEFAULT_SPEEDS_KMH["residential"]).any()


def test_non_drivable_ways_are_dropped() -> None:
    """Footways, private roads, driveways and car-free ways are not part of the car graph."""
    assert not is_drivable({"highway": "footway"})
    assert not is_drivable({"highway": "residential", "access": "private"})
    assert is_drivable({"highway": "residential", "access": "private", "emergency": "yes"})
    assert not is_drivable({"highway": "service", "service": "driveway"})
    assert is_drivable({"highway": "service", "service": "emergency_access"})
    assert not is_drivable({"highway": "residential", "motor_vehicle": "no"})
    assert not is_drivable({"highway": "pedestrian", "area": "yes"})


def test_osmnx_graph_conversion(osm_dir: Path, load_graph: Callable[[str], RoadGraph]) -> None:
    """osmnx.graph_from_xml on a local file converts to the drive times of the pyosmium import."""
    import osmnx as ox

    G = ox.graph_from_xml(osm_dir / "sf_mission_bernal_2014.osm", simplify=False, retain_all=True)
    via_osmnx = graph_from_osmnx(G)
    direct = load_graph("sf_mission_bernal_2014.osm")
    assert via_osmnx.edge_length_m.sum() == pytest.approx(direct.edge_length_m.sum(), rel=1e-4)
    index = {int(o): i for i, o in enumerate(via_osmnx.node_osm_id)}
    mine = list(range(direct.n_nodes))
    theirs = [index[int(o)] for o in direct.node_osm_id]  # every junction exists in both
    t_direct = dijkstra(direct.csr(), indices=mine[:25])[:, mine]
    t_osmnx = dijkstra(via_osmnx.csr(), indices=theirs[:25])[:, theirs]
    assert np.abs(t_direct - t_osmnx).max() < 0.1
