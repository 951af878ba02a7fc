"""The supervisor's board: every crew of the region with its status, how long it has been in it,
the incident it works on, the age of its last fix, grouped by the sector it is in; and the joint
actions (open incidents with several crews) with their crews and lead.

One read of four small queries, so the console shows the whole shift from one request. A crew
belongs to the sector its newest fix lies in (where it is now); without a fix, or outside every
sector, to its home sector; else to no zone. Times older than ``alerts_max_age_s`` (a crew
imported "on scene" in 2017) are flagged ``old`` so a console need not print absurd ages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, is_dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.dispatch.states import FINAL_INCIDENT
from geodispatch.geo import LatLng
from geodispatch.settings import Settings, get_settings
from geodispatch.zones.cells import cell_of

#: Assignments still running: the crew works on the incident.
RUNNING = ("dispatched", "acknowledged", "en_route", "on_scene")
#: The board's order of statuses within a zone: crews at work first, then the free, then the rest.
STATUS_ORDER = ("on_scene", "en_route", "dispatched", "transporting", "cleared", "available",
                "break", "out_of_service", "off_duty")


@dataclass(frozen=True)
class CrewIncident:
    """The open incident a crew is assigned to."""

    id: int
    reference: str
    category: str
    priority: int
    status: str
    assignment_status: str
    is_lead: bool


@dataclass(frozen=True)
class BoardCrew:
    """One crew's line on the board."""

    unit_id: int
    call_sign: str
    kind: str
    status: str
    status_since: datetime | None
    seconds_in_status: float | None
    fix_time: datetime | None
    fix_age_s: float | None
    stale: bool
    old: bool
    zone_id: int | None
    zone_source: str | None  # "position" | "home" | None
    incident: CrewIncident | None


@dataclass(frozen=True)
class BoardZone:
    """A sector (or "no zone": ``zone_id`` None) and its crews."""

    zone_id: int | None
    code: str | None
    name: str | None
    crews: list[BoardCrew]
    counts: dict[str, int]


@dataclass(frozen=True)
class JointCrew:
    unit_id: int
    call_sign: str
    unit_status: str
    assignment_status: str
    is_lead: bool


@dataclass(frozen=True)
class JointAction:
    """An open incident with more than one crew on it."""

    incident_id: int
    reference: str
    category: str
    priority: int
    status: str
    lead_unit_id: int | None
    crews: list[JointCrew]


@dataclass(frozen=True)
class Board:
    generated_at: datetime
    region: str | None
    zones: list[BoardZone]
    joint: list[JointAction]
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (ISO times)."""
        out: dict[str, Any] = _plain(self)
        return out


def _plain(obj: Any) -> Any:
    """Dataclasses to dicts, times to ISO text (``dataclasses.asdict`` deep-copies every value:
    two thirds of the board's time at 200 crews)."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {k: _plain(v) for k, v in vars(obj).items()}
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def _quoted(values: Iterable[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _count(crews: Iterable[BoardCrew]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in crews:
        out[c.status] = out.get(c.status, 0) + 1
    return out


def supervisor_board(*, session: Session, region: str | None, settings: Settings | None = None,
                     now: datetime | None = None) -> Board:
    """Every active crew of ``region`` (None: all regions) grouped by sector, and the joint
    actions.

    Parameters
    ----------
    session
        Any session; the board only reads.
    region
        The caller's region, or None for every region (national, admin).
    settings
        ``stale_after_s`` marks a stale fix, ``alerts_max_age_s`` an old record,
        ``h3_zone_res`` the resolution of the sectors' cells.
    now
        The board's time (tests pin it).
    """
    settings = settings or get_settings()
    now = now or datetime.now(UTC)
    final = _quoted(FINAL_INCIDENT)
    params: dict[str, Any] = {"region": region}
    reg = "(CAST(:region AS text) IS NULL OR u.region = :region)"
    rows = session.execute(text(
        "SELECT u.id, u.call_sign, u.kind, u.status, u.status_changed_at, u.home_zone_id,"
        " l.fix_time, ST_Y(l.geom) AS lat, ST_X(l.geom) AS lng,"
        " w.incident_id, w.reference, w.category, w.priority, w.i_status, w.a_status, w.is_lead"
        " FROM units u LEFT JOIN unit_latest l ON l.unit_id = u.id"
        " LEFT JOIN LATERAL (SELECT a.incident_id, i.reference, i.category, i.priority,"
        "   i.status AS i_status, a.status AS a_status, a.is_lead"
        "   FROM assignments a JOIN incidents i ON i.id = a.incident_id"
        f"  WHERE a.unit_id = u.id AND a.status IN ({_quoted(RUNNING)})"
        f"    AND i.status NOT IN ({final})"
        "   ORDER BY a.dispatched_at DESC LIMIT 1) w ON true"
        f" WHERE u.active AND {reg} ORDER BY u.call_sign"), params).all()

    here: dict[int, int] = {}  # unit -> the sector its newest fix lies in
    # (the point's own cell at the zone resolution: H3 children do not nest exactly in parents)
    cells = {int(r.id): cell_of(LatLng(lat=float(r.lat), lng=float(r.lng)), settings.h3_zone_res)
             for r in rows if r.lat is not None}
    if cells:
        sector_of = {int(c): int(z) for c, z in session.execute(text(
            "SELECT zc.cell, zc.zone_id FROM zone_cells zc JOIN zones z ON z.id = zc.zone_id"
            " WHERE zc.level = 'sector' AND z.valid_to IS NULL AND zc.cell = ANY(:cells)"),
            {"cells": sorted(set(cells.values()))})}
        here = {u: sector_of[c] for u, c in cells.items() if c in sector_of}

    max_age = settings.alerts_max_age_s
    crews: list[BoardCrew] = []
    for r in rows:
        uid = int(r.id)
        zone_id, source = (here[uid], "position") if uid in here else (
            (int(r.home_zone_id), "home") if r.home_zone_id is not None else (None, None))
        in_status = (now - r.status_changed_at).total_seconds() if r.status_changed_at else None
        fix_age = (now - r.fix_time).total_seconds() if r.fix_time else None
        incident = None if r.incident_id is None else CrewIncident(
            id=int(r.incident_id), reference=str(r.reference), category=str(r.category),
            priority=int(r.priority), status=str(r.i_status),
            assignment_status=str(r.a_status), is_lead=bool(r.is_lead))
        crews.append(BoardCrew(
            unit_id=uid, call_sign=str(r.call_sign), kind=str(r.kind), status=str(r.status),
            status_since=r.status_changed_at, seconds_in_status=in_status,
            fix_time=r.fix_time, fix_age_s=fix_age,
            stale=fix_age is None or fix_age > settings.stale_after_s,
            old=in_status is not None and in_status > max_age,
            zone_id=zone_id, zone_source=source, incident=incident))

    zone_ids = sorted({c.zone_id for c in crews if c.zone_id is not None})
    names = {int(z.id): (str(z.code), str(z.name)) for z in session.execute(text(
        "SELECT id, code, name FROM zones WHERE id = ANY(:ids)"), {"ids": zone_ids})}
    rank = {s: k for k, s in enumerate(STATUS_ORDER)}
    by_zone: dict[int | None, list[BoardCrew]] = {}
    for c in crews:
        by_zone.setdefault(c.zone_id, []).append(c)
    zones = []
    for zid, members in by_zone.items():
        members.sort(key=lambda c: (rank.get(c.status, len(rank)), c.call_sign))
        code, name = names.get(zid, (None, None)) if zid is not None else (None, None)
        zones.append(BoardZone(zone_id=zid, code=code, name=name, crews=members,
                               counts=_count(members)))
    zones.sort(key=lambda z: (z.zone_id is None, z.code or "", z.zone_id or 0))

    return Board(generated_at=now, region=region, zones=zones,
                 joint=_joint_actions(session, region), counts=_count(crews))


def _joint_actions(session: Session, region: str | None) -> list[JointAction]:
    """Open incidents with two or more crews not cancelled, each with its crews and lead."""
    live = "a.status <> 'cancelled'"
    rows = session.execute(text(
        "SELECT i.id, i.reference, i.category, i.priority, i.status, a.unit_id, u.call_sign,"
        " u.status AS unit_status, a.status AS a_status, a.is_lead"
        " FROM incidents i JOIN assignments a ON a.incident_id = i.id"
        " JOIN units u ON u.id = a.unit_id"
        f" WHERE i.status NOT IN ({_quoted(FINAL_INCIDENT)}) AND {live}"
        " AND (CAST(:region AS text) IS NULL OR i.region = :region)"
        " AND i.id IN (SELECT a.incident_id FROM assignments a"
        f"   WHERE {live} GROUP BY a.incident_id HAVING count(*) >= 2)"
        " ORDER BY i.priority, i.received_at, a.is_lead DESC, a.dispatched_at"),
        {"region": region}).all()
    heads: dict[int, Any] = {}
    crews: dict[int, list[JointCrew]] = {}
    for r in rows:
        heads.setdefault(int(r.id), r)
        crews.setdefault(int(r.id), []).append(JointCrew(
            unit_id=int(r.unit_id), call_sign=str(r.call_sign), unit_status=str(r.unit_status),
            assignment_status=str(r.a_status), is_lead=bool(r.is_lead)))
    return [JointAction(incident_id=iid, reference=str(h.reference), category=str(h.category),
                        priority=int(h.priority), status=str(h.status),
                        lead_unit_id=next((c.unit_id for c in crews[iid] if c.is_lead), None),
                        crews=crews[iid])
            for iid, h in heads.items()]
