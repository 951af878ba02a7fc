"""Crews move along road geometry at plausible speeds, with GPS noise and dropouts."""

from __future__ import annotations

import random
import statistics

from geodispatch.geo import LatLng, haversine_m
from geodispatch.sim.motion import GpsModel, Path, bearing_deg, offset_m
from geodispatch.sim.roads import GridRoads
from geodispatch.sim.unit import PositionOut, SimConfig, SimUnit, StatusOut, UnitSpec

CENTER = LatLng(39.29, -76.61)


def test_path_interpolates_along_segments() -> None:
    """Half-way along an L-shaped path is on the second leg at the right distance."""
    a = CENTER
    b = offset_m(a, 0.0, 100.0)
    c = offset_m(b, 100.0, 0.0)
    path = Path([a, b, c])
    assert abs(path.length_m - 200.0) < 0.5
    p, heading, seg = path.locate(150.0)
    assert seg == 1
    assert abs(haversine_m(p, b) - 50.0) < 0.5 and abs(haversine_m(p, c) - 50.0) < 0.5
    assert heading is not None and abs(heading - 0.0) < 1.0
    assert abs(bearing_deg(a, b) - 90.0) < 1.0


def test_gps_noise_has_the_configured_spread() -> None:
    """Observed fixes scatter around the truth with about the configured sigma (metres)."""
    rng = random.Random(3)
    gps = GpsModel(noise_m=8.0)
    errs = [haversine_m(gps.observe(CENTER, rng)[0], CENTER) for _ in range(2000)]
    # The radial error of a 2-D gaussian has mean sigma * sqrt(pi/2).
    assert 8.0 < statistics.mean(errs) < 12.0


def _unit(roads: GridRoads, cfg: SimConfig, now: float, seed: int = 1) -> SimUnit:
    spec = UnitSpec(device="P-001", token="x", call_sign="P-001", home=roads.node(5, 5))
    return SimUnit(spec, roads=roads, config=cfg, rng=random.Random(seed), now=now,
                   start=roads.node(0, 0))


def test_patrol_moves_along_streets_at_plausible_speed() -> None:
    """On patrol a crew stays on the grid streets and reports city speeds (under 60 km/h)."""
    roads = GridRoads(CENTER, size=12, spacing_m=200.0, speed_kmh=40.0)
    cfg = SimConfig(gps=GpsModel(noise_m=0.0, dropout_rate_per_h=0.0), stop_probability=0.0)
    now = 1_800_000_000.0
    unit = _unit(roads, cfg, now)
    fixes = []
    prev = unit.pos
    moved = 0.0
    for _ in range(600):
        now += 1.0
        for out in unit.step(now, 1.0):
            if isinstance(out, PositionOut):
                fixes.extend(out.fixes)
        moved += haversine_m(prev, unit.pos)
        prev = unit.pos
    assert moved > 1000.0  # it drives
    speeds = [f.speed_mps for f in fixes if f.speed_mps > 0]
    assert speeds and max(speeds) < 60 / 3.6 and statistics.median(speeds) > 10 / 3.6
    # Every fix lies on a street: one coordinate aligned with a grid line (noise is off).
    origin = roads.node(0, 0)
    for f in fixes:
        north = haversine_m(LatLng(origin.lat, f.position.lng), f.position)
        east = haversine_m(LatLng(f.position.lat, origin.lng), f.position)
        off = min(abs(north - round(north / 200) * 200), abs(east - round(east / 200) * 200))
        assert off < 1.0


def test_dropout_buffers_and_sends_one_batch() -> None:
    """Out of coverage nothing is sent; on return the buffered fixes come as one batch."""
    roads = GridRoads(CENTER)
    cfg = SimConfig(report_s=2.0, idle_report_s=2.0,
                    gps=GpsModel(noise_m=3.0, dropout_rate_per_h=0.0))
    now = 1_800_000_000.0
    unit = _unit(roads, cfg, now)
    unit.dropout_until = now + 30.0
    during: list[PositionOut] = []
    for _ in range(29):
        now += 1.0
        during.extend(o for o in unit.step(now, 1.0) if isinstance(o, PositionOut))
    assert during == [] and len(unit.buffered) >= 12
    after: list[PositionOut] = []
    for _ in range(5):
        now += 1.0
        after.extend(o for o in unit.step(now, 1.0) if isinstance(o, PositionOut))
    assert after[0].batch and len(after[0].fixes) >= 13
    times = [f.time for f in after[0].fixes]
    assert times == sorted(times)


def test_assignment_drives_to_the_incident_and_reports_statuses() -> None:
    """An assigned crew reports en route, closes in on the incident, arrives, clears."""
    roads = GridRoads(CENTER, size=12)
    cfg = SimConfig(gps=GpsModel(noise_m=0.0, dropout_rate_per_h=0.0), turnout_s=(2.0, 2.0),
                    on_scene_s=(20.0, 20.0))
    now = 1_800_000_000.0
    unit = _unit(roads, cfg, now)
    target = roads.node(9, 7)
    unit.on_assignment({"incident_id": 7, "lat": target.lat, "lng": target.lng}, now)
    statuses: list[tuple[str, int | None]] = []
    dists = []
    for _ in range(900):
        now += 1.0
        for out in unit.step(now, 1.0):
            if isinstance(out, StatusOut):
                statuses.append((out.status, out.incident_id))
        if unit.mode == "en_route":
            dists.append(haversine_m(unit.pos, target))
        if ("available", None) in statuses:
            break
    assert [s for s, _ in statuses] == ["en_route", "on_scene", "cleared", "available"]
    assert statuses[0][1] == 7 and statuses[1][1] == 7
    assert dists[-1] < dists[0]
    assert all(b <= a + 1e-6 for a, b in zip(dists, dists[1:], strict=False))
    assert unit.mode == "patrol"


def test_assignment_payload_shapes() -> None:
    """Assignments are read from flat, nested and GeoJSON shapes; empty means cleared."""
    from geodispatch.sim.unit import parse_assignment

    p = LatLng(39.3, -76.6)
    assert parse_assignment({"incident_id": 3, "lat": p.lat, "lon": p.lng}).target == p  # type: ignore[union-attr]
    nested = parse_assignment({"incident": {"id": 4, "location": {"type": "Point",
                                                                  "coordinates": [p.lng, p.lat]}}})
    assert nested is not None and nested.incident_id == 4 and nested.target == p
    assert parse_assignment(None) is None and parse_assignment({}) is None


def test_foot_patrol_walks() -> None:
    """Foot patrols move at walking pace (under 7 km/h), not at the road's speed."""
    roads = GridRoads(CENTER, size=12)
    cfg = SimConfig(gps=GpsModel(noise_m=0.0, dropout_rate_per_h=0.0), stop_probability=0.0)
    now = 1_800_000_000.0
    spec = UnitSpec(device="F-1", token="x", call_sign="F-1", kind="foot_patrol",
                    home=roads.node(5, 5))
    unit = SimUnit(spec, roads=roads, config=cfg, rng=random.Random(2), now=now)
    speeds = []
    for _ in range(300):
        now += 1.0
        for out in unit.step(now, 1.0):
            if isinstance(out, PositionOut):
                speeds += [f.speed_mps for f in out.fixes if f.speed_mps > 0]
    assert speeds and max(speeds) * 3.6 < 7.0
