"""The simulator loop drives many crews over a transport and routes assignments to them."""

from __future__ import annotations

import threading

from geodispatch.geo import LatLng
from geodispatch.sim.engine import Simulator, load_fleet, save_fleet
from geodispatch.sim.motion import GpsModel
from geodispatch.sim.roads import GridRoads
from geodispatch.sim.unit import Out, PositionOut, SimConfig, StatusOut, UnitSpec


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[Out] = []

    def send(self, out: Out) -> None:
        self.sent.append(out)

    def pump(self) -> None:
        pass


def test_simulator_publishes_for_every_crew_and_follows_assignments() -> None:
    """Every crew reports; an assignment delivered by device id sends that crew en route."""
    now = [1_800_000_000.0]
    roads = GridRoads(LatLng(39.29, -76.61))
    specs = [UnitSpec(device=f"T-{i}", token="t", call_sign=f"T-{i}") for i in range(20)]
    cfg = SimConfig(turnout_s=(1.0, 1.0), gps=GpsModel(dropout_rate_per_h=0.0))
    sim = Simulator(specs, roads=roads, config=cfg, seed=5, clock=lambda: now[0])
    sim.transport = FakeTransport()
    target = roads.node(3, 3)
    sim.on_assignment("T-7", {"incident_id": 99, "lat": target.lat, "lng": target.lng})
    sim.on_assignment("nobody", {"incident_id": 1, "lat": 0.0, "lng": 0.0})
    for _ in range(60):
        now[0] += 1.0
        sim.step()
    sent = sim.transport.sent  # type: ignore[attr-defined]
    reporting = {o.unit.device for o in sent if isinstance(o, PositionOut)}
    assert reporting == {s.device for s in specs}
    statuses = [(o.unit.device, o.status, o.incident_id) for o in sent if isinstance(o, StatusOut)]
    assert ("T-7", "en_route", 99) in statuses
    assert sim.stats.assignments == 1 and sim.stats.fixes > 20


def test_run_stops_on_event_and_fleet_file_roundtrips(tmp_path: object) -> None:
    """run() returns when stopped; the fleet file keeps tokens, protocol and home."""
    from pathlib import Path

    roads = GridRoads(LatLng(39.29, -76.61))
    specs = [UnitSpec(device="A", token="s3cret", call_sign="A", protocol="owntracks",
                      home=LatLng(39.3, -76.6), unit_id=4)]
    sim = Simulator(specs, roads=roads, config=SimConfig())
    stop = threading.Event()
    stop.set()
    sim.run(FakeTransport(), stop=stop, tick_s=0.01)
    path = Path(str(tmp_path)) / "fleet.json"
    save_fleet(path, specs)
    assert load_fleet(path) == specs
    assert path.stat().st_mode & 0o077 == 0
