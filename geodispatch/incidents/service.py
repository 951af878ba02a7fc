"""Intake: register a call as an incident, resolve addresses, reclassify, read incidents.

Registration is one short transaction: resolve the place (a point, or an address against the
road names of the loaded OSM data), index it (H3 cell, zones), take the next gap-free reference
number of the region, insert, append the ``registered`` event and queue the caller's SMS. It
never routes and never talks to the SMS gateway, so it answers in milliseconds.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

import h3
import phonenumbers
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geodispatch.errors import Conflict, InvalidInput, NotFound
from geodispatch.geo import LatLng, valid_latlng
from geodispatch.incidents.record import append_event
from geodispatch.incidents.classification import load_classification
from geodispatch.incidents.models import Incident
from geodispatch.incidents.schemas import IncidentCreate
from geodispatch.settings import Settings, get_settings

log = logging.getLogger(__name__)

_INTERSECTION = re.compile(r"\s*(?:&|/|\band\b|\bта\b|\bі\b|\bи\b|\bx\b|×)\s*", re.IGNORECASE)


def normalise_phone(phone: str) -> str:
    """The number in E.164, or InvalidInput (numbers must carry their country code)."""
    raw = phone.strip()
    if not raw.startswith("+"):
        raise InvalidInput(f"caller phone {phone!r} is not E.164 (start with + and country code)")
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(f"caller phone {phone!r} is not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidInput(f"caller phone {phone!r} is not a valid number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _street_point(session: Session, name: str) -> tuple[LatLng, str] | None:
    row = session.execute(text(
        "SELECT name, ST_Y(p), ST_X(p) FROM ("
        " SELECT name, ST_LineInterpolatePoint(ST_LineMerge(ST_Collect(geom)), 0.5) AS p,"
        "  CASE WHEN lower(name) = lower(:n) THEN 0 ELSE 1 END AS exact"
        " FROM road_edges WHERE name ILIKE :pat GROUP BY name) s"
        " WHERE p IS NOT NULL ORDER BY exact, length(name) LIMIT 1"),
        {"n": name, "pat": f"%{name}%"}).first()
    if row is None:
        # ST_LineInterpolatePoint needs one line; a multi-part street falls back to a vertex.
        row = session.execute(text(
            "SELECT name, ST_Y(ST_PointN(geom, 1)), ST_X(ST_PointN(geom, 1)) FROM road_edges "
            "WHERE name ILIKE :pat ORDER BY (lower(name) = lower(:n)) DESC, length(name), id "
            "LIMIT 1"), {"n": name, "pat": f"%{name}%"}).first()
    if row is None:
        return None
    return LatLng(float(row[1]), float(row[2])), str(row[0])


def geocode_address(*, session: Session, address: str) -> tuple[LatLng, str]:
    """Resolve ``"street"`` or ``"street A & street B"`` against the road names in ``road_edges``.

    An intersection is where edges of both streets meet (the nearest pair of their geometries);
    a street alone resolves to the middle of its longest named stretch. Names match
    case-insensitively as substrings, so Cyrillic and Latin names work alike.
    """
    parts = [p.strip() for p in _INTERSECTION.split(address.strip()) if p.strip()]
    if not parts:
        raise InvalidInput("empty address")
    if len(parts) >= 2:
        a, b = parts[0], parts[1]
        row = session.execute(text(
            "SELECT ea.name, eb.name, ST_Y(ST_ClosestPoint(ea.geom, eb.geom)),"
            " ST_X(ST_ClosestPoint(ea.geom, eb.geom)) FROM road_edges ea JOIN road_edges eb"
            " ON ST_DWithin(ea.geom, eb.geom, 0.0003)"
            " WHERE ea.name ILIKE :a AND eb.name ILIKE :b"
            " ORDER BY ST_Distance(ea.geom, eb.geom), ea.id, eb.id LIMIT 1"),
            {"a": f"%{a}%", "b": f"%{b}%"}).first()
        if row is None:
            raise NotFound(f"no intersection of {a!r} and {b!r} in the road data")
        return LatLng(float(row[2]), float(row[3])), f"{row[0]} & {row[1]}"
    found = _street_point(session, parts[0])
    if found is None:
        raise NotFound(f"no street named like {parts[0]!r} in the road data")
    return found


def next_reference(*, session: Session, region: str, year: int) -> str:
    """The next gap-free reference ``REGION-YEAR-NNNNNN`` (the counter row stays locked until
    the transaction ends, so a rolled-back registration gives its number back)."""
    n = session.execute(text(
        "INSERT INTO reference_counters (region, year, last) VALUES (:r, :y, 1) "
        "ON CONFLICT (region, year) DO UPDATE SET last = reference_counters.last + 1 "
        "RETURNING last"), {"r": region, "y": year}).scalar_one()
    return f"{region}-{year}-{int(n):06d}"


def _zones(p: LatLng, zone_index: Any, settings: Settings) -> tuple[str, int | None, int | None]:
    if zone_index is not None:
        ref = zone_index.lookup(p)
        return ref.region or settings.default_region, ref.sector_id, ref.district_id
    return settings.default_region, None, None


def _by_key(session: Session, key: str) -> Incident | None:
    return session.execute(
        select(Incident).where(Incident.idempotency_key == key)
    ).scalar_one_or_none()


def register_incident_ex(*, session: Session, data: IncidentCreate, actor: str,
                         zone_index: Any = None, settings: Settings | None = None
                         ) -> tuple[Incident, bool]:
    """Register a call; return the incident and whether it was created now.

    With an ``idempotency_key`` a retry returns the incident the first attempt made (also when
    both attempts race: the loser's insert hits the unique key inside a savepoint, which is
    rolled back together with its reference number, and the winner's row is returned).
    """
    settings = settings or get_settings()
    if data.idempotency_key:
        existing = _by_key(session, data.idempotency_key)
        if existing is not None:
            return existing, False
    cls = load_classification(settings)
    category = cls.category(data.category)
    phone = normalise_phone(data.caller_phone) if data.caller_phone else None
    address = data.address.strip() if data.address else None
    if data.lat is not None and data.lng is not None:
        p = LatLng(float(data.lat), float(data.lng))
        if not valid_latlng(p.lat, p.lng):
            raise InvalidInput("impossible coordinates")
    else:
        p, resolved = geocode_address(session=session, address=address or "")
        address = f"{address} ({resolved})" if resolved.lower() != (address or "").lower() \
            else address
    region, sector_id, district_id = _zones(p, zone_index, settings)
    now = datetime.now(UTC)
    received = data.received_at or now
    priority = data.priority or category.priority
    lang = (data.caller_lang or settings.sms_default_lang).lower()[:5]
    try:
        with session.begin_nested():
            incident = Incident(
                reference=next_reference(session=session, region=region, year=received.year),
                idempotency_key=data.idempotency_key, region=region, received_at=received,
                registered_at=now, caller_phone=phone, caller_lang=lang,
                sms_opt_out=data.sms_opt_out, location=p.to_ewkt(),
                h3=h3.str_to_int(h3.latlng_to_cell(p.lat, p.lng, settings.h3_incident_res)),
                address=address, category=category.code, original_category=category.code,
                priority=priority, status="queued", description=data.description,
                sector_id=sector_id, district_id=district_id, created_by=actor,
            )
            session.add(incident)
            session.flush()
            append_event(session=session, incident_id=incident.id, kind="registered",
                         actor=actor, at=now, data={
                             "reference": incident.reference, "region": region,
                             "received_at": received.isoformat(), "lat": p.lat, "lng": p.lng,
                             "address": address, "description": data.description,
                             "has_phone": phone is not None,
                             "set": {"category": category.code, "priority": priority,
                                     "status": "queued"}})
    except IntegrityError:
        if not data.idempotency_key:
            raise
        existing = _by_key(session, data.idempotency_key)
        if existing is None:
            raise Conflict("registration collided and the other attempt vanished") from None
        return existing, False
    if phone and not data.sms_opt_out:
        from geodispatch.notify.outbox import enqueue_sms

        enqueue_sms(session=session, incident=incident, template="registered",
                    reference=incident.reference)
    return incident, True


def register_incident(*, session: Session, data: IncidentCreate, actor: str,
                      zone_index: Any = None, settings: Settings | None = None) -> Incident:
    """Register a call as an incident (idempotent on ``data.idempotency_key``)."""
    incident, _created = register_incident_ex(session=session, data=data, actor=actor,
                                              zone_index=zone_index, settings=settings)
    return incident


def get_incident(*, session: Session, incident_id: int, lock: bool = False) -> Incident:
    stmt = select(Incident).where(Incident.id == incident_id)
    if lock:
        stmt = stmt.with_for_update()
    incident = session.execute(stmt).scalar_one_or_none()
    if incident is None:
        raise NotFound(f"incident {incident_id} not found")
    return incident


def get_by_reference(*, session: Session, reference: str) -> Incident:
    incident = session.execute(
        select(Incident).where(Incident.reference == reference)).scalar_one_or_none()
    if incident is None:
        raise NotFound(f"incident {reference} not found")
    return incident


def reclassify(*, session: Session, incident_id: int, category: str, reason: str, actor: str,
               priority: int | None = None) -> Incident:
    """Change the category (and optionally priority) with a mandatory reason; the original
    category stays on the incident and every change stays in the log."""
    if not reason or len(reason.strip()) < 3:
        raise InvalidInput("a classification change needs a reason")
    incident = get_incident(session=session, incident_id=incident_id, lock=True)
    if incident.status in ("closed", "cancelled", "merged"):
        raise Conflict(f"incident {incident.reference} is {incident.status}")
    cat = load_classification().category(category)
    new_priority = priority or incident.priority
    append_event(session=session, incident_id=incident.id, kind="reclassified", actor=actor,
                 data={"from": incident.category, "to": cat.code, "reason": reason.strip(),
                       "original_category": incident.original_category,
                       "set": {"category": cat.code, "priority": new_priority}})
    incident.category = cat.code
    incident.priority = new_priority
    session.flush()
    return incident


def list_incidents(*, session: Session, region: str | None, status: str | None = None,
                   limit: int = 200) -> list[Incident]:
    stmt = select(Incident).order_by(Incident.id.desc()).limit(max(1, min(limit, 1000)))
    if region is not None:
        stmt = stmt.where(Incident.region == region)
    if status:
        stmt = stmt.where(Incident.status.in_(status.split(",")))
    return list(session.execute(stmt).scalars())


def incident_point(session: Session, incident: Incident) -> LatLng:
    """The incident's location as a LatLng."""
    row = session.execute(
        text("SELECT ST_Y(location), ST_X(location) FROM incidents WHERE id = :i"),
        {"i": incident.id}).one()
    return LatLng(float(row[0]), float(row[1]))
