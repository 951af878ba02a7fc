"""Simulated crews on the real road graph (Baltimore extract) through the routing engine."""

from __future__ import annotations

import random
import statistics
from pathlib import Path

import pytest

from geodispatch.geo import haversine_m
from geodispatch.sim.motion import GpsModel
from geodispatch.sim.roads import RouterRoads
from geodispatch.sim.unit import PositionOut, SimConfig, SimUnit, UnitSpec


@pytest.fixture(scope="module")
def roads(data_dir: Path) -> RouterRoads:
    from geodispatch.routing.engine import Router
    from geodispatch.routing.importer import import_osm_file

    graph = import_osm_file(data_dir / "osm" / "baltimore_downtown_2015.osm.pbf", progress=False)
    return RouterRoads(Router(graph))


def test_routes_have_city_speeds_and_real_geometry(roads: RouterRoads) -> None:
    """Routes between random nodes exist, follow road geometry, and average 15-70 km/h."""
    rng = random.Random(2)
    speeds = []
    for _ in range(20):
        a = roads.random_point(rng)
        b = roads.random_point(rng, a, 2000.0)
        drive = roads.route(a, b)
        if drive is None or drive.distance_m < 200:
            continue
        speeds.append(drive.speed_mps * 3.6)
        # Road distance is at least the straight line, and the path has intermediate vertices.
        assert drive.distance_m >= haversine_m(a, b) * 0.99
        assert len(drive.coords) >= 2
    assert len(speeds) >= 10
    assert 15 < statistics.median(speeds) < 70


def test_random_points_near_home_stay_near(roads: RouterRoads) -> None:
    """Patrol targets are drawn within the patrol radius of home."""
    rng = random.Random(3)
    home = roads.random_point(rng)
    for _ in range(50):
        assert haversine_m(roads.random_point(rng, home, 800.0), home) <= 800.0 + 1.0


def test_patrol_on_the_graph_moves_at_plausible_speed(roads: RouterRoads) -> None:
    """A crew patrolling Baltimore moves between 5 and 80 km/h between consecutive fixes."""
    cfg = SimConfig(report_s=2.0, idle_report_s=2.0, stop_probability=0.0,
                    gps=GpsModel(noise_m=0.0, dropout_rate_per_h=0.0))
    now = 1_800_000_000.0
    unit = SimUnit(UnitSpec(device="B-1", token="t", call_sign="B-1"), roads=roads, config=cfg,
                   rng=random.Random(4), now=now)
    fixes = []
    for _ in range(900):
        now += 0.5
        fixes += [f for o in unit.step(now, 0.5) if isinstance(o, PositionOut) for f in o.fixes]
    moving = [(a, b) for a, b in zip(fixes, fixes[1:], strict=False)
              if a.speed_mps > 0 and b.speed_mps > 0]
    assert len(moving) > 50
    implied = [haversine_m(a.position, b.position) / (b.time - a.time).total_seconds() * 3.6
               for a, b in moving]
    # Straight-line speed between fixes is at most the driven speed (corners cut), never more.
    assert max(implied) < 80 and statistics.median(implied) > 5
