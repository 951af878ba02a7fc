"""Routing fixtures: graphs built once per session from the real extracts in ``data/osm``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from geodispatch.geo import LatLng
from geodispatch.routing.engine import Router
from geodispatch.routing.graph import RoadGraph
from geodispatch.routing.importer import import_osm_file

EXTRACTS = (
    "andorra_2013.osm.pbf",
    "baltimore_downtown_2015.osm.pbf",
    "krems_austria.osm.gz",
    "moscow_north_part_2013.osm.gz",
    "porto_centre_2020.osm.pbf",
    "sf_mission_bernal_2014.osm",
    "west_oakland_2016.osm.bz2",
)

_GRAPHS: dict[str, RoadGraph] = {}


@pytest.fixture(scope="session")
def osm_dir(data_dir: Path) -> Path:
    return data_dir / "osm"


@pytest.fixture(scope="session")
def load_graph(osm_dir: Path) -> Callable[[str], RoadGraph]:
    """Build (once per session) the graph of one extract by file name."""

    def get(name: str) -> RoadGraph:
        if name not in _GRAPHS:
            _GRAPHS[name] = import_osm_file(osm_dir / name, progress=False)
        return _GRAPHS[name]

    return get


@pytest.fixture(scope="session")
def baltimore(load_graph: Callable[[str], RoadGraph]) -> RoadGraph:
    return load_graph("baltimore_downtown_2015.osm.pbf")


@pytest.fixture(scope="session")
def baltimore_router(baltimore: RoadGraph) -> Router:
    return Router(baltimore)


def random_points(graph: RoadGraph, n: int, seed: int) -> list[LatLng]:
    """Points scattered near the roads: random nodes moved by up to ~40 m."""
    rng = np.random.default_rng(seed)
    nodes = rng.integers(0, graph.n_nodes, n)
    dlat = rng.uniform(-0.00035, 0.00035, n)
    dlng = rng.uniform(-0.00035, 0.00035, n)
    return [LatLng(float(graph.node_lat[i] + a), float(graph.node_lng[i] + b))
            for i, a, b in zip(nodes, dlat, dlng, strict=True)]
