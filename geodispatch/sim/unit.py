"""One simulated crew: patrols its home sector, follows assignments, and reports like a terminal.

The crew is a small state machine advanced by :meth:`SimUnit.step` with the wall-clock time:

``patrol`` (drive a route to a random point near home, pause there, pick another)
-> on an assignment: ``dispatched`` (turnout delay) -> ``en_route`` (drive the fastest route to
the incident, faster than on patrol) -> ``on_scene`` (stay a while) -> ``cleared`` -> ``available``
and back to ``patrol``.

Each step returns what the terminal sends: position fixes (noisy, on the device's reporting
interval; buffered while out of coverage and handed over as one batch when coverage returns) and
crew status changes. The transport (MQTT) is not this module's business.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from geodispatch.geo import LatLng, haversine_m
from geodispatch.sim.motion import GpsModel, Path
from geodispatch.sim.payloads import Fix
from geodispatch.sim.roads import Drive, Roads

PROTOCOLS = ("native", "owntracks")


@dataclass(slots=True)
class UnitSpec:
    """A crew's identity and credentials as the simulator needs them (a line of the fleet file)."""

    device: str
    token: str
    call_sign: str
    protocol: str = "native"
    home: LatLng | None = None
    kind: str = "patrol_car"
    unit_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"device": self.device, "token": self.token, "call_sign": self.call_sign,
                "protocol": self.protocol, "kind": self.kind, "unit_id": self.unit_id,
                "home": None if self.home is None else [self.home.lat, self.home.lng]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> UnitSpec:
        home = d.get("home")
        return cls(device=d["device"], token=d["token"], call_sign=d.get("call_sign", d["device"]),
                   protocol=d.get("protocol", "native"), kind=d.get("kind", "patrol_car"),
                   unit_id=d.get("unit_id"),
                   home=None if home is None else LatLng(float(home[0]), float(home[1])))


@dataclass(slots=True)
class SimConfig:
    """Behaviour knobs shared by every simulated crew (seconds, metres, factors)."""

    report_s: float = 5.0
    idle_report_s: float = 15.0
    patrol_radius_m: float = 1500.0
    patrol_speed_factor: tuple[float, float] = (0.55, 0.85)
    emergency_speed_factor: tuple[float, float] = (1.05, 1.3)
    max_speed_mps: float = 30.0
    stop_probability: float = 0.06
    stop_s: tuple[float, float] = (4.0, 25.0)
    patrol_pause_s: tuple[float, float] = (15.0, 90.0)
    turnout_s: tuple[float, float] = (3.0, 12.0)
    #: The crew presses "acknowledge" this long after the assignment arrives (before turnout
    #: ends: an acknowledgement stamped after "en route" would be a late report).
    ack_s: tuple[float, float] = (1.0, 2.5)
    on_scene_s: tuple[float, float] = (45.0, 150.0)
    gps: GpsModel = field(default_factory=GpsModel)


@dataclass(slots=True, frozen=True)
class Task:
    """An assignment as the crew understands it."""

    incident_id: int | None
    target: LatLng
    assignment_id: int | None = None


@dataclass(slots=True)
class PositionOut:
    """Fixes to publish; ``batch`` means they were buffered out of coverage."""

    unit: UnitSpec
    fixes: list[Fix]
    batch: bool = False


@dataclass(slots=True)
class StatusOut:
    unit: UnitSpec
    status: str
    at: datetime
    incident_id: int | None = None


@dataclass(slots=True)
class AckOut:
    """The terminal's receipt (``delivered``) or the crew's press (``acknowledged``) of an
    assignment, sent on ``geodispatch/units/{device}/assignment/ack`` like an MQTT-only crew
    terminal's; ``key`` is the same for a resent one (the server stores it once)."""

    unit: UnitSpec
    assignment_id: int
    state: str
    at: datetime

    @property
    def key(self) -> str:
        return f"sim-{self.state}-{self.assignment_id}"


Out = PositionOut | StatusOut | AckOut


def _num(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def parse_assignment(payload: Any) -> Task | None:
    """Read an assignment message; None for an empty (cleared) or unreadable one.

    Accepts the location as ``lat``/``lng`` (or ``lon``) at the top level or under ``location`` /
    ``incident``, or as a GeoJSON point, so the simulator does not break when the server adds
    fields.
    """
    if not isinstance(payload, dict) or not payload:
        return None
    if payload.get("status") in ("cancelled", "cleared", "closed"):
        return None

    def point(d: Any) -> LatLng | None:
        if not isinstance(d, dict):
            return None
        if d.get("type") == "Point" and isinstance(d.get("coordinates"), list | tuple):
            c = d["coordinates"]
            lat, lng = _num(c[1]), _num(c[0])
        else:
            lat = _num(d.get("lat", d.get("latitude")))
            lng = _num(d.get("lng", d.get("lon", d.get("longitude"))))
        return None if lat is None or lng is None else LatLng(lat, lng)

    raw_incident = payload.get("incident")
    incident: dict[str, Any] = raw_incident if isinstance(raw_incident, dict) else {}
    target = (point(payload) or point(payload.get("location")) or point(incident)
              or point(incident.get("location")) or point(payload.get("geometry")))
    if target is None:
        return None
    raw_id = payload.get("incident_id", incident.get("id"))
    inc = int(raw_id) if isinstance(raw_id, int | str) and str(raw_id).isdigit() else None
    raw_a = payload.get("assignment_id", payload.get("id") if "incident_id" in payload else None)
    aid = int(raw_a) if isinstance(raw_a, int | str) and str(raw_a).isdigit() else None
    return Task(incident_id=inc, target=target, assignment_id=aid)


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class SimUnit:
    """The state of one crew and its terminal; :meth:`step` advances it to a new time."""

    def __init__(self, spec: UnitSpec, *, roads: Roads, config: SimConfig, rng: random.Random,
                 now: float, start: LatLng | None = None) -> None:
        self.spec = spec
        self.roads = roads
        self.cfg = config
        self.rng = rng
        self.home = spec.home or roads.random_point(rng)
        self.pos = start or roads.random_point(rng, self.home, config.patrol_radius_m)
        self.mode = "patrol"
        self.path: Path | None = None
        self.s = 0.0
        self.cruise = 0.0
        self.heading: float | None = None
        self.moving = False
        self.wait_until = now + rng.uniform(0.0, 10.0)
        self.next_fix_at = now + rng.uniform(0.0, config.report_s)
        self.dropout_until = 0.0
        self.buffered: list[Fix] = []
        self.task: Task | None = None
        self.pending: Task | None = None
        self.cleared_pending = False
        self.battery = rng.uniform(60.0, 100.0)
        self.arrivals = 0
        self.finished: set[int] = set()
        self.acks: list[tuple[float, int, str]] = []  # (due, assignment id, state) to send
        self.acked: set[int] = set()
        # The server clears the retained assignment once it has the acknowledgement: that one
        # empty message is not a "stand down".
        self.expect_clear = False

    # --- commands from outside -----------------------------------------------------------------
    def on_assignment(self, payload: Any, now: float) -> None:
        """An assignment message arrived, or was cleared (empty payload).

        The server clears the retained assignment when the crew clears and when the incident is
        cancelled or closed; an empty payload while still on the way therefore means "stand
        down" and the crew goes back to patrol.
        """
        task = parse_assignment(payload)
        if task is None:
            if self.expect_clear:
                self.expect_clear = False
                return
            if self.mode in ("dispatched", "en_route"):
                self.task = None
                self._start_patrol(now)
            return
        if self.task is not None and task.incident_id == self.task.incident_id:
            # The retained message again after a reconnect, or sent again because the
            # acknowledgement did not arrive: acknowledge again (same key: stored once).
            if task.assignment_id is not None and task.assignment_id in self.acked:
                self.acks.append((now, task.assignment_id, "acknowledged"))
            return
        if task.incident_id is not None and task.incident_id in self.finished:
            return  # a stale retained assignment for an incident this crew already cleared
        self.pending = task

    def in_dropout(self, now: float) -> bool:
        return now < self.dropout_until

    # --- the clock -----------------------------------------------------------------------------
    def step(self, now: float, dt: float) -> list[Out]:
        """Advance to ``now`` (``dt`` seconds after the previous step) and return what to send."""
        out: list[Out] = []
        if self.pending is not None:
            self.task, self.pending = self.pending, None
            self.mode = "dispatched"
            self.path = None
            self.moving = False
            self.wait_until = now + self.rng.uniform(*self.cfg.turnout_s)
            aid = self.task.assignment_id
            if aid is not None:
                out.append(AckOut(self.spec, aid, "delivered", utc(now)))
                self.acks.append((now + self.rng.uniform(*self.cfg.ack_s), aid, "acknowledged"))
        self._send_acks(now, out)
        self._advance(now, dt, out)
        self._report(now, dt, out)
        return out

    def _send_acks(self, now: float, out: list[Out], *, all_now: bool = False) -> None:
        due = [a for a in self.acks if all_now or a[0] <= now]
        if not due:
            return
        self.acks = [a for a in self.acks if a not in due]
        for _t, aid, state in due:
            out.append(AckOut(self.spec, aid, state, utc(now)))
            self.acked.add(aid)
            self.expect_clear = True

    def _advance(self, now: float, dt: float, out: list[Out]) -> None:
        if now < self.wait_until:
            self.moving = False
            return
        if self.mode == "dispatched" and self.task is not None:
            self._send_acks(now, out, all_now=True)  # acknowledged, at the latest, on leaving
            target = self.task.target
            if haversine_m(self.pos, target) < 50.0:  # already there: no drive to report
                self.mode = "on_scene"
                self.arrivals += 1
                out.append(StatusOut(self.spec, "on_scene", utc(now), self.task.incident_id))
                self.wait_until = now + self.rng.uniform(*self.cfg.on_scene_s)
                return
            drive = self.roads.route(self.pos, target) or self._crow_flies(target)
            self.mode = "en_route"
            self._follow(drive, self.cfg.emergency_speed_factor, now)
            out.append(StatusOut(self.spec, "en_route", utc(now), self.task.incident_id))
        elif self.mode == "on_scene":
            inc = self.task.incident_id if self.task else None
            out.append(StatusOut(self.spec, "cleared", utc(now), inc))
            if inc is not None:
                self.finished.add(inc)
            self.task = None
            self.mode = "available"
            self.wait_until = now + self.rng.uniform(1.0, 3.0)
            return
        elif self.mode == "available":
            out.append(StatusOut(self.spec, "available", utc(now), None))
            self._start_patrol(now)
        if self.path is None:
            self._start_patrol(now)
            if self.path is None:
                return
        self._drive(now, dt, out)

    def _drive(self, now: float, dt: float, out: list[Out]) -> None:
        assert self.path is not None
        before = self.path.locate(self.s)[2]
        self.s += self.cruise * dt
        self.moving = True
        pos, heading, seg = self.path.locate(self.s)
        self.pos, self.heading = pos, heading if heading is not None else self.heading
        if self.s >= self.path.length_m:
            self.pos = self.path.end
            self.path = None
            self.moving = False
            if self.mode == "en_route" and self.task is not None:
                self.mode = "on_scene"
                self.arrivals += 1
                out.append(StatusOut(self.spec, "on_scene", utc(now), self.task.incident_id))
                self.wait_until = now + self.rng.uniform(*self.cfg.on_scene_s)
            else:
                self.wait_until = now + self.rng.uniform(*self.cfg.patrol_pause_s)
            return
        # A vertex passed: junctions and traffic lights sometimes stop the car (not with lights on).
        if seg > before and self.mode == "patrol" and self.rng.random() < self.cfg.stop_probability:
            self.wait_until = now + self.rng.uniform(*self.cfg.stop_s)
            self.moving = False

    def _crow_flies(self, target: LatLng) -> Drive:
        d = haversine_m(self.pos, target)
        return Drive(coords=[self.pos, target], distance_m=d, eta_s=d / 8.0)

    def _follow(self, drive: Drive, factor: tuple[float, float], now: float) -> None:
        self.path = Path([self.pos, *drive.coords])
        self.s = 0.0
        base = drive.speed_mps if drive.speed_mps > 0 else 10.0
        self.cruise = min(base * self.rng.uniform(*factor), self.cfg.max_speed_mps)
        if self.spec.kind == "foot_patrol":  # walking, or hurrying on foot when dispatched
            self.cruise = self.rng.uniform(1.1, 1.6) if self.mode == "patrol" else 2.5

    def _start_patrol(self, now: float) -> None:
        self.mode = "patrol"
        for _ in range(5):
            target = self.roads.random_point(self.rng, self.home, self.cfg.patrol_radius_m)
            if haversine_m(target, self.pos) < 50.0:
                continue
            drive = self.roads.route(self.pos, target)
            if drive is not None and drive.distance_m > 0:
                self._follow(drive, self.cfg.patrol_speed_factor, now)
                return
        # Stuck (one-way dead end, disconnected island): hop onto the network near home.
        self.pos = self.roads.random_point(self.rng, self.home, self.cfg.patrol_radius_m)
        self.path = None
        self.wait_until = now + self.rng.uniform(*self.cfg.patrol_pause_s)

    def _report(self, now: float, dt: float, out: list[Out]) -> None:
        gps = self.cfg.gps
        if not self.in_dropout(now):
            lost = gps.starts_dropout(dt, self.rng)
            if lost:
                self.dropout_until = now + lost
        if now < self.next_fix_at:
            return
        interval = self.cfg.report_s if self.moving else self.cfg.idle_report_s
        self.next_fix_at = now + interval * self.rng.uniform(0.9, 1.1)
        self.battery = max(5.0, self.battery - 0.002 * interval)
        observed, acc = gps.observe(self.pos, self.rng)
        speed = self.cruise * self.rng.uniform(0.92, 1.08) if self.moving else 0.0
        fix = Fix(time=utc(now), position=observed, speed_mps=speed,
                  heading=self.heading if self.moving else None, accuracy_m=acc,
                  battery=self.battery)
        if self.in_dropout(now):
            self.buffered.append(fix)
            return
        if self.buffered:
            out.append(PositionOut(self.spec, [*self.buffered, fix], batch=True))
            self.buffered = []
        else:
            out.append(PositionOut(self.spec, [fix]))
