"""Intake: register a call as an incident, resolve addresses, reclassify, read incidents.

Registration is one short transaction: resolve the place (a point, or an address against the
road names of the loaded OSM data), index it (H3 cell, zones), insert, project the
``registered`` event, and only then take the next gap-free reference number of the region (its
counter row stays locked until the commit, so registrations in one region serialise on the last
few writes only), write the event and queue the caller's SMS. It never routes and never talks to
the SMS gateway, so it answers in milliseconds.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from datetime import UTC, datetime
from typing import Any

import h3
import phonenumbers
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from geodispatch.errors import Conflict, InvalidInput, NotFound
from geodispatch.geo import LatLng, valid_latlng
from geodispatch.incidents.classification import load_classification
from geodispatch.incidents.models import Incident
from geodispatch.incidents.record import (
    PendingEvent,
    append_event,
    event_body,
    note_written,
    prepare_event,
    write_event,
)
from geodispatch.incidents.schemas import IncidentCreate
from geodispatch.settings import Settings, get_settings

log = logging.getLogger(__name__)

#: The category of a call registered without one (or with one the table does not know).
FALLBACK_CATEGORY = "other"
#: Prefix of the placeholder reference an incident row holds inside its registering transaction
#: until the real number is taken, just before the commit (never visible outside it).
_PENDING = "~"
_PLAIN = re.compile(r"[A-Za-z0-9-]+")

_INTERSECTION = re.compile(r"\s*(?:&|/|\band\b|\bта\b|\bі\b|\bи\b|\bx\b|×)\s*", re.IGNORECASE)


def normalise_phone(phone: str, region: str | None = None) -> str:
    """The number in E.164, or InvalidInput.

    A number without ``+`` is read as a national number of ``region`` (an ISO country code such
    as ``UA``); without a region it must carry its country code.
    """
    raw = phone.strip()
    if not raw.startswith("+") and not region:
        raise InvalidInput(f"caller phone {phone[:32]!r} is not E.164 "
                           "(start with + and country code)")
    try:
        parsed = phonenumbers.parse(raw, None if raw.startswith("+") else region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(f"caller phone {phone[:32]!r} is not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidInput(f"caller phone {phone[:32]!r} is not a valid number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_e164(phone: str | None) -> bool:
    """Whether ``phone`` is a valid number already in E.164 (one an SMS can go to)."""
    if not phone:
        return False
    try:
        return normalise_phone(phone) == phone
    except InvalidInput:
        return False


def _street_point(session: Session, name: str) -> tuple[LatLng, str] | None:
    # The middle of the longest connected stretch of the best-matching street: its edges are
    # merged, and a street in several pieces (a multi-line) is split into them first.
    row = session.execute(text(
        "SELECT name, ST_Y(p), ST_X(p) FROM ("
        " SELECT name, exact, ST_LineInterpolatePoint(piece, 0.5) AS p, ST_Length(piece) AS len"
        " FROM (SELECT name, exact, (ST_Dump(ST_LineMerge(g))).geom AS piece FROM ("
        "   SELECT name, ST_Collect(geom) AS g,"
        "    CASE WHEN lower(name) = lower(:n) THEN 0 ELSE 1 END AS exact"
        "   FROM road_edges WHERE name ILIKE :pat GROUP BY name) s) d"
        " WHERE GeometryType(piece) = 'LINESTRING') x"
        " ORDER BY exact, length(name), len DESC LIMIT 1"),
        {"n": name, "pat": f"%{_like_escape(name)}%"}).first()
    if row is None:
        return None
    return LatLng(float(row[1]), float(row[2])), str(row[0])


def _like_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


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
            {"a": f"%{_like_escape(a)}%", "b": f"%{_like_escape(b)}%"}).first()
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


_NUMBER_SQL = text("""
WITH n AS (
    INSERT INTO reference_counters (region, year, last) VALUES (:region, :year, 1)
    ON CONFLICT (region, year) DO UPDATE SET last = reference_counters.last + 1
    RETURNING last),
ref AS (SELECT :prefix || lpad(last::text, greatest(6, length(last::text)), '0') AS v FROM n),
inc AS (UPDATE incidents SET reference = ref.v FROM ref
        WHERE incidents.id = :incident_id RETURNING incidents.id),
sms AS (UPDATE sms_outbox SET body = replace(body, :placeholder, ref.v) FROM ref
        WHERE sms_outbox.incident_id = :incident_id RETURNING sms_outbox.id),
ev AS (INSERT INTO incident_events (incident_id, incident_seq, kind, actor, at, data, body)
       SELECT :incident_id, :seq, :kind, :actor, :at,
              CAST(replace(:data, :placeholder, ref.v) AS jsonb),
              convert_to(replace(convert_from(:body, 'UTF8'), :placeholder, ref.v), 'UTF8')
       FROM ref RETURNING id)
SELECT ref.v, ev.id, (SELECT count(*) FROM inc), (SELECT count(*) FROM sms) FROM ref, ev
""")


def _number(*, session: Session, incident: Incident, event: PendingEvent, year: int) -> None:
    """Take the region's next reference number and write it and the ``registered`` event.

    Everything else was written before: from the counter row's lock to the commit there is this
    one statement. The event body and the queued SMS were made with the incident's placeholder
    reference, which this statement replaces by the number in the same bytes. (In RFC 8785 a
    string of letters, digits, ``-`` and ``~`` is written as it is, so the replaced body is the
    canonical body the number would have given; a region code that JSON would escape takes the
    slower path through :func:`next_reference`.)
    """
    prefix = f"{incident.region}-{year}-"
    placeholder = incident.reference
    event.data["reference"] = placeholder
    if not _PLAIN.fullmatch(prefix):
        number = next_reference(session=session, region=incident.region, year=year)
        event.set_incident(session, reference=number)
        event.data["reference"] = number
        write_event(session=session, pending=event)
        session.execute(text("UPDATE sms_outbox SET body = replace(body, :p, :n) "
                             "WHERE incident_id = :i"),
                        {"p": placeholder, "n": number, "i": incident.id})
        return
    session.flush()
    body = event_body(incident_id=event.incident_id, incident_seq=event.incident_seq,
                      kind=event.kind, actor=event.actor, at=event.at, data=event.data,
                      state=event.state)
    number, event_id, _, _ = session.execute(_NUMBER_SQL, {
        "region": incident.region, "year": year, "prefix": prefix, "incident_id": incident.id,
        "placeholder": placeholder, "seq": event.incident_seq, "kind": event.kind,
        "actor": event.actor, "at": event.at, "data": json.dumps(event.data), "body": body,
    }).one()
    event.state["incidents"][0]["reference"] = number
    event.data["reference"] = number
    set_committed_value(incident, "reference", number)
    for obj in list(session.identity_map.values()):  # the queued SMS, as the statement left it
        if getattr(obj, "incident_id", None) == incident.id and hasattr(obj, "body") \
                and isinstance(obj.body, str) and placeholder in obj.body:
            set_committed_value(obj, "body", obj.body.replace(placeholder, number))
    note_written(session, event)


def _zones(p: LatLng, zone_index: Any, settings: Settings) -> tuple[str, int | None, int | None]:
    if zone_index is not None:
        ref = zone_index.lookup(p)
        return ref.region or settings.default_region, ref.sector_id, ref.district_id
    return settings.default_region, None, None


def _by_key(session: Session, key: str) -> Incident | None:
    return session.execute(
        select(Incident).where(Incident.idempotency_key == key)
    ).scalar_one_or_none()


def _place(session: Session, data: IncidentCreate, warnings: list[str]
           ) -> tuple[LatLng | None, str | None]:
    """Where the call is, and the address text to keep; (None, text) when it is not known."""
    address = (data.address or "").strip() or None
    if data.lat is not None and data.lng is not None:
        if valid_latlng(float(data.lat), float(data.lng)):
            return LatLng(float(data.lat), float(data.lng)), address
        warnings.append(f"impossible coordinates ({data.lat}, {data.lng}): location unknown")
    elif data.lat is not None or data.lng is not None:
        warnings.append("only one of lat/lng given: location unknown")
    if address is None:
        return None, None
    try:
        with session.begin_nested():
            p, resolved = geocode_address(session=session, address=address)
    except (InvalidInput, NotFound) as exc:
        warnings.append(f"{exc}: location unknown, address kept as typed")
        return None, address
    except SQLAlchemyError:
        log.exception("address lookup failed for %r", address[:80])
        warnings.append("the address lookup failed: location unknown, address kept as typed")
        return None, address
    if resolved.lower() != address.lower():
        address = f"{address} ({resolved})"
    return p, address


def _phone(raw: str | None, settings: Settings, warnings: list[str]) -> str | None:
    if not raw or not raw.strip():
        return None
    try:
        return normalise_phone(raw, settings.phone_region)
    except InvalidInput as exc:
        warnings.append(f"{exc}: kept as typed, no SMS to it")
        return raw.strip()[:32]


def register_incident_ex(*, session: Session, data: IncidentCreate, actor: str,
                         zone_index: Any = None, settings: Settings | None = None,
                         region: str | None = None, warnings: list[str] | None = None
                         ) -> tuple[Incident, bool]:
    """Register a call; return the incident and whether it was created now.

    The call is registered whatever the request's place, category or phone number look like:
    what cannot be used is kept as typed and explained in ``warnings`` (an unresolvable
    address gives an incident with no location, an unknown category gives ``other``, a number
    that is not a phone number gets no SMS). ``region`` is the region of a call whose place
    is unknown (the call-taker's; default ``settings.default_region``).

    With an ``idempotency_key`` a retry returns the incident the first attempt made (also when
    both attempts race: the loser's insert hits the unique key inside a savepoint, which is
    rolled back together with its reference number, and the winner's row is returned).
    """
    settings = settings or get_settings()
    warnings = warnings if warnings is not None else []
    if data.idempotency_key:
        existing = _by_key(session, data.idempotency_key)
        if existing is not None:
            return existing, False
    cls = load_classification(settings)
    code = (data.category or "").strip() or FALLBACK_CATEGORY
    if code not in cls.categories:
        warnings.append(f"unknown category {code[:48]!r}: registered as {FALLBACK_CATEGORY}")
        code = FALLBACK_CATEGORY
    category = cls.category(code)
    phone = _phone(data.caller_phone, settings, warnings)
    p, address = _place(session, data, warnings)
    if p is not None:
        region, sector_id, district_id = _zones(p, zone_index, settings)
    else:
        region, sector_id, district_id = region or settings.default_region, None, None
    now = datetime.now(UTC)
    received = data.received_at or now
    priority = data.priority or category.priority
    lang = (data.caller_lang or settings.sms_default_lang).lower()[:5]
    try:
        with session.begin_nested():
            incident = Incident(
                reference=_PENDING + secrets.token_hex(12),
                idempotency_key=data.idempotency_key, region=region, received_at=received,
                registered_at=now, caller_phone=phone, caller_lang=lang,
                sms_opt_out=data.sms_opt_out, location=p.to_ewkt() if p else None,
                h3=h3.str_to_int(h3.latlng_to_cell(p.lat, p.lng, settings.h3_incident_res))
                if p else None,
                address=address, category=category.code, original_category=category.code,
                priority=priority, status="queued", description=data.description,
                sector_id=sector_id, district_id=district_id, created_by=actor,
            )
            session.add(incident)
            session.flush()
    except IntegrityError:
        if not data.idempotency_key:
            raise
        existing = _by_key(session, data.idempotency_key)
        if existing is None:
            raise Conflict("registration collided and the other attempt vanished") from None
        return existing, False
    event = prepare_event(session=session, incident_id=incident.id, kind="registered",
                          actor=actor, at=now, data={
                              "region": region, "received_at": received.isoformat(),
                              "lat": p.lat if p else None, "lng": p.lng if p else None,
                              "location_unknown": p is None, "warnings": warnings,
                              "address": address, "description": data.description,
                              "has_phone": phone is not None,
                              "set": {"category": category.code, "priority": priority,
                                      "status": "queued"}})
    if phone and not data.sms_opt_out:
        # (enqueue_sms itself skips a number that is not a valid E.164 one; the message says
        # the placeholder until the number is taken below)
        from geodispatch.notify.outbox import enqueue_sms

        enqueue_sms(session=session, incident=incident, template="registered",
                    reference=incident.reference)
    _number(session=session, incident=incident, event=event, year=received.year)
    return incident, True


def place_incident(*, session: Session, incident_id: int, lat: float, lng: float, actor: str,
                   address: str | None = None, reason: str = "", zone_index: Any = None,
                   settings: Settings | None = None) -> Incident:
    """Put an incident on the map: its place was unknown, or it was wrong.

    The region (and so the reference) stays; sector and district follow the new point.
    """
    settings = settings or get_settings()
    if not valid_latlng(lat, lng):
        raise InvalidInput("impossible coordinates")
    incident = get_incident(session=session, incident_id=incident_id, lock=True)
    if incident.status in ("closed", "cancelled", "merged"):
        raise Conflict(f"incident {incident.reference} is {incident.status}")
    before = incident_point(session, incident)
    p = LatLng(lat, lng)
    _region, sector_id, district_id = _zones(p, zone_index, settings)
    incident.location = p.to_ewkt()
    incident.h3 = h3.str_to_int(h3.latlng_to_cell(lat, lng, settings.h3_incident_res))
    incident.sector_id, incident.district_id = sector_id, district_id
    if address is not None and address.strip():
        incident.address = address.strip()
    append_event(session=session, incident_id=incident.id, kind="located", actor=actor, data={
        "lat": lat, "lng": lng, "address": incident.address, "reason": reason.strip(),
        "was_unknown": before is None,
        "from": None if before is None else {"lat": before.lat, "lng": before.lng}})
    session.flush()
    return incident


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
    previous = incident.category
    incident.category = cat.code
    incident.priority = new_priority
    append_event(session=session, incident_id=incident.id, kind="reclassified", actor=actor,
                 data={"from": previous, "to": cat.code, "reason": reason.strip(),
                       "original_category": incident.original_category,
                       "set": {"category": cat.code, "priority": new_priority}})
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


def incident_point(session: Session, incident: Incident) -> LatLng | None:
    """The incident's location as a LatLng (None while it is unknown)."""
    session.flush()
    row = session.execute(
        text("SELECT ST_Y(location), ST_X(location) FROM incidents WHERE id = :i"),
        {"i": incident.id}).one()
    return None if row[0] is None else LatLng(float(row[0]), float(row[1]))
