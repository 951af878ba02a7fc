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


def test_a_crew_acknowledges_its_assignment_like_a_terminal() -> None:
    """A crew's terminal reports ``delivered`` on receipt and the crew ``acknowledged`` before
    it drives off (stable keys, so a resend is stored once); the server's clearing of the
    acknowledged message is no stand-down, a later empty message is; a resent assignment is
    acknowledged again with the same key."""
    from geodispatch.sim.unit import AckOut

    now = [1_800_000_000.0]
    roads = GridRoads(LatLng(39.29, -76.61))
    specs = [UnitSpec(device="A-1", token="t", call_sign="A-1")]
    cfg = SimConfig(turnout_s=(1.0, 1.0), ack_s=(5.0, 5.0),
                    gps=GpsModel(dropout_rate_per_h=0.0))
    sim = Simulator(specs, roads=roads, config=cfg, seed=3, clock=lambda: now[0])
    sim.transport = FakeTransport()
    far = roads.node(9, 9)
    message = {"id": 41, "assignment_id": 41, "incident_id": 7, "lat": far.lat, "lng": far.lng}
    sim.on_assignment("A-1", message)
    for _ in range(4):
        now[0] += 1.0
        sim.step()
    sent = sim.transport.sent  # type: ignore[attr-defined]
    acks = [(o.state, o.key) for o in sent if isinstance(o, AckOut)]
    assert acks == [("delivered", "sim-delivered-41"), ("acknowledged", "sim-acknowledged-41")]
    kinds = [("ack:" + o.state) if isinstance(o, AckOut) else o.status
             for o in sent if isinstance(o, AckOut | StatusOut)]
    assert kinds.index("ack:acknowledged") < kinds.index("en_route")  # never a late ack
    unit = sim.units["A-1"]
    sim.on_assignment("A-1", None)  # the server clears the acknowledged message
    assert unit.mode == "en_route" and unit.task is not None
    sim.on_assignment("A-1", message)  # sent again (the ack was lost on the way)
    now[0] += 1.0
    sim.step()
    assert [o.key for o in sent if isinstance(o, AckOut)][-1] == "sim-acknowledged-41"
    sim.on_assignment("A-1", None)  # that resend's clear
    sim.on_assignment("A-1", None)  # a stand-down: the incident was cancelled
    assert unit.task is None and unit.mode == "patrol"
    assert sim.stats.acks == {"delivered": 1, "acknowledged": 2}
