"""What a crew terminal shows: the crew's own current assignment, with the incident's details and
the other crews on it. Only the signed-in unit's assignment is ever read here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session

from geodispatch.dispatch.models import Assignment
from geodispatch.dispatch.states import ACTIVE
from geodispatch.geo import LatLng
from geodispatch.incidents.models import Incident
from geodispatch.tracking.models import Unit


def unit_json(unit: Unit) -> dict[str, Any]:
    return {"id": unit.id, "call_sign": unit.call_sign, "kind": unit.kind,
            "status": unit.status, "region": unit.region, "device_id": unit.device_id}


def current_assignment(*, session: Session, unit_id: int) -> Assignment | None:
    """The unit's active assignment (the newest, should there be several)."""
    return session.execute(
        select(Assignment).where(Assignment.unit_id == unit_id, Assignment.status.in_(ACTIVE))
        .order_by(Assignment.id.desc()).limit(1)).scalar_one_or_none()


def incident_point(session: Session, incident_id: int) -> LatLng | None:
    row = session.execute(text("SELECT ST_Y(location), ST_X(location) FROM incidents "
                               "WHERE id = :i"), {"i": incident_id}).one()
    return None if row[0] is None else LatLng(float(row[0]), float(row[1]))


def crew_view(*, session: Session, unit: Unit) -> dict[str, Any]:
    """The terminal's screen: the unit and its current assignment (``None`` when it has none)."""
    return crew_views(session=session, units=[unit])[unit.id]


def crew_views(*, session: Session, units: Sequence[Unit]) -> dict[int, dict[str, Any]]:
    """:func:`crew_view` of several units in four queries, whatever their number (the crew
    stream's refresher reads every unit changed since its last pass at once)."""
    if not units:
        return {}
    ids = [u.id for u in units]
    current: dict[int, Assignment] = {}
    for a in session.execute(
            select(Assignment).where(Assignment.unit_id.in_(ids), Assignment.status.in_(ACTIVE))
            .order_by(Assignment.unit_id, Assignment.id.desc())
            .ext(distinct_on(Assignment.unit_id))).scalars():
        current[a.unit_id] = a
    incident_ids = sorted({a.incident_id for a in current.values()})
    incidents: dict[int, tuple[Incident, LatLng | None]] = {}
    crews: dict[int, list[tuple[Assignment, str]]] = {}
    if incident_ids:
        for inc, lat, lng in session.execute(
                select(Incident, func.ST_Y(Incident.location), func.ST_X(Incident.location))
                .where(Incident.id.in_(incident_ids))):
            incidents[inc.id] = (inc, None if lat is None else LatLng(float(lat), float(lng)))
        for other, cs in session.execute(
                select(Assignment, Unit.call_sign).join(Unit, Unit.id == Assignment.unit_id)
                .where(Assignment.incident_id.in_(incident_ids),
                       Assignment.status.in_(ACTIVE))
                .order_by(Assignment.id)):
            crews.setdefault(other.incident_id, []).append((other, cs))
    out: dict[int, dict[str, Any]] = {}
    for unit in units:
        mine = current.get(unit.id)
        if mine is None:
            out[unit.id] = {"unit": unit_json(unit), "assignment": None}
            continue
        incident, point = incidents[mine.incident_id]
        out[unit.id] = _screen(unit, mine, incident, point, crews.get(mine.incident_id, []))
    return out


def _screen(unit: Unit, a: Assignment, incident: Incident, point: LatLng | None,
            crews: list[tuple[Assignment, str]]) -> dict[str, Any]:
    return {"unit": unit_json(unit), "assignment": {
        "id": a.id, "status": a.status, "is_lead": a.is_lead,
        "dispatched_at": a.dispatched_at.isoformat(),
        "delivered_at": a.delivered_at.isoformat() if a.delivered_at else None,
        "acknowledged_at": a.acknowledged_at.isoformat() if a.acknowledged_at else None,
        "eta_s": a.eta_s, "distance_m": a.distance_m,
        "incident": {"id": incident.id, "reference": incident.reference,
                     "category": incident.category, "priority": incident.priority,
                     "status": incident.status, "address": incident.address,
                     "notes": incident.description,
                     "lat": point.lat if point else None, "lng": point.lng if point else None},
        "crews": [{"call_sign": cs, "status": other.status, "is_lead": other.is_lead,
                   "self": other.unit_id == unit.id} for other, cs in crews],
    }}
