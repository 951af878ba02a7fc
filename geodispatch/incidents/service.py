"""Intake: register a call as an incident, resolve addresses, reclassify, read incidents.

Registration is one short transaction: resolve the place (a point, named by reverse geocoding,
or a typed address geocoded against the city's address index, :mod:`geodispatch.geocoding`),
index it (H3 cell, zones), insert, project the
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
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import h3
from sqlalchemy import column, select, text, union
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from geodispatch.db import get_row
from geodispatch.errors import Conflict, InvalidInput, NotFound
from geodispatch.geo import LatLng, haversine_m, valid_latlng
from geodispatch.geocoding.service import Geocoder, IndexGeocoder, describe_point
from geodispatch.incidents.classification import load_classification
from geodispatch.incidents.models import INCIDENT_STATUSES, Incident, IncidentEvent
from geodispatch.incidents.nearby import NearbyIncident, nearby_open_incidents
from geodispatch.incidents.record import (
    PendingEvent,
    append_event,
    close_at_commit,
    event_body,
    iso_utc,
    note_written,
    prepare_event,
    write_event,
)
from geodispatch.incidents.schemas import IncidentCreate
from geodispatch.notify.models import SmsMessage
from geodispatch.notify.outbox import enqueue_sms
from geodispatch.phone import normalise_phone
from geodispatch.settings import Settings, get_settings

log = logging.getLogger(__name__)

class ZonePlace(Protocol):
    """The zones a point is in, as :class:`geodispatch.zones.index.ZoneRef` gives them."""

    @property
    def region(self) -> str | None: ...
    @property
    def sector_id(self) -> int | None: ...
    @property
    def district_id(self) -> int | None: ...


class ZoneLookup(Protocol):
    """What intake needs of the zone model (:class:`geodispatch.zones.index.ZoneIndex`): the
    zones of a point, and a region's cells (the centre hint for a street-only address)."""

    def lookup(self, p: LatLng) -> ZonePlace: ...

    def cells(self, *, region: str | None = None) -> list[int]: ...


#: The category of a call registered without one (or with one the table does not know).
FALLBACK_CATEGORY = "other"
#: Prefix of the placeholder reference an incident row holds inside its registering transaction
#: until the real number is taken, just before the commit (never visible outside it).
_PENDING = "~"
_PLAIN = re.compile(r"[A-Za-z0-9-]+")

#: Centre of each region's zones, per zone index (a reloaded index computes them again).
_CENTRES: weakref.WeakKeyDictionary[Any, dict[str, LatLng | None]] = weakref.WeakKeyDictionary()
#: A geocoded point this close to the point the call-taker sent is the same place (the console
#: sends the point of the search hit it chose, with the typed text).
_SAME_PLACE_M = 25.0


@dataclass(frozen=True)
class Placed:
    """Where a call is and how that was found (every field None when it is not known)."""

    point: LatLng | None
    address: str | None  # as typed
    resolved: str | None = None
    precision: str | None = None
    method: str | None = None


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


#: The same statement for psycopg itself (run with its COMMIT in one round trip).
_NUMBER_SQL_RAW = re.sub(r"(?<!:):([a-z_]+)", r"%(\1)s", _NUMBER_SQL.text)


def _number(*, session: Session, incident: Incident, event: PendingEvent, year: int,
            sms: SmsMessage | None = None, at_commit: bool = False) -> None:
    """Take the region's next reference number and write it and the ``registered`` event.

    Everything else was written before: from the counter row's lock to the commit there is this
    one statement. The event body and the queued SMS were made with the incident's placeholder
    reference, which this statement replaces by the number in the same bytes. (In RFC 8785 a
    string of letters, digits, ``-`` and ``~`` is written as it is, so the replaced body is the
    canonical body the number would have given; a region code that JSON would escape takes the
    slower path through :func:`next_reference`.)

    With ``at_commit`` the statement is sent together with the transaction's COMMIT
    (:func:`~geodispatch.incidents.record.close_at_commit`), so the counter row is locked for
    the statement and the WAL flush alone: until then the incident carries its placeholder
    reference, which the statement replaces.
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
    params = {
        "region": incident.region, "year": year, "prefix": prefix, "incident_id": incident.id,
        "placeholder": placeholder, "seq": event.incident_seq, "kind": event.kind,
        "actor": event.actor, "at": event.at, "data": json.dumps(event.data), "body": body,
    }

    def numbered(row: Sequence[Any]) -> None:
        number = str(row[0])
        event.state["incidents"][0]["reference"] = number
        event.data["reference"] = number
        set_committed_value(incident, "reference", number)
        if sms is not None:  # the queued SMS, as the statement left it
            set_committed_value(sms, "body", sms.body.replace(placeholder, number))

    if at_commit:
        # The rows hold the placeholder until the commit, as the event's state does: the
        # commit-time safety net finds them recorded.
        note_written(session, event)
        close_at_commit(session, _NUMBER_SQL_RAW, params, numbered)
        return
    numbered(session.execute(_NUMBER_SQL, params).one())
    note_written(session, event)


def _zones(p: LatLng, zone_index: ZoneLookup | None, settings: Settings
           ) -> tuple[str, int | None, int | None]:
    if zone_index is not None:
        ref = zone_index.lookup(p)
        return ref.region or settings.default_region, ref.sector_id, ref.district_id
    return settings.default_region, None, None


def _by_key(session: Session, key: str) -> Incident | None:
    return session.execute(
        select(Incident).where(Incident.idempotency_key == key)
    ).scalar_one_or_none()


def _geocoder(session: Session, settings: Settings, geocoder: Geocoder | None) -> Geocoder:
    return geocoder if geocoder is not None else IndexGeocoder(session, settings)


def region_centre(zone_index: ZoneLookup | None, region: str) -> LatLng | None:
    """The centre of a region's zones: the hint for a street-only address of a call that
    brings no other clue (no caller position, no map centre)."""
    if zone_index is None:
        return None
    try:
        known = _CENTRES.setdefault(zone_index, {})
    except TypeError:  # not weak-referenceable: computed every time
        known = {}
    if region in known:
        return known[region]
    try:
        cells = zone_index.cells(region=region)
    except Exception:  # noqa: BLE001 - an index without cells gives no hint, nothing worse
        cells = []
    centre = None
    if cells:
        pts = [h3.cell_to_latlng(h3.int_to_str(int(c)))
               for c in cells[:: max(1, len(cells) // 200)]]
        centre = LatLng(sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts))
    known[region] = centre
    return centre


def _place(session: Session, data: IncidentCreate, warnings: list[str], settings: Settings,
           geocoder: Geocoder | None, hint: LatLng | None = None) -> Placed:
    """Where the call is: the point sent, else the typed address geocoded; never raises.

    A point sent with the typed text keeps the geocoder's precision when the address resolves
    to that point (the call-taker picked a search hit), else it is a point as given, named by
    reverse geocoding. A street-only result is placed on the street nearest the hint
    (``near_lat``/``near_lng``: caller's position, zone or map centre) and said so in
    ``warnings``.
    """
    address = (data.address or "").strip() or None
    point: LatLng | None = None
    if data.lat is not None and data.lng is not None:
        if valid_latlng(float(data.lat), float(data.lng)):
            point = LatLng(float(data.lat), float(data.lng))
        else:
            warnings.append(f"impossible coordinates ({data.lat}, {data.lng}): location unknown")
    elif data.lat is not None or data.lng is not None:
        warnings.append("only one of lat/lng given: location unknown")
    if point is None and address is None:
        return Placed(None, None)
    near = point
    if near is None and data.near_lat is not None and data.near_lng is not None \
            and valid_latlng(float(data.near_lat), float(data.near_lng)):
        near = LatLng(float(data.near_lat), float(data.near_lng))
    near = near or hint
    try:
        with session.begin_nested():
            g = _geocoder(session, settings, geocoder)
            hits = g.forward(address, near=near, limit=1) if address else []
            if point is not None:
                if hits and haversine_m(hits[0].point, point) <= _SAME_PLACE_M:
                    h = hits[0]
                    return Placed(point, address, h.resolved, h.precision, h.method)
                named = g.reverse(lon=point.lng, lat=point.lat)
                return Placed(point, address, describe_point(named, point), "point",
                              "coordinates")
    except Exception:  # noqa: BLE001 - geocoding never fails a registration
        log.exception("geocoding failed for %r", (address or "")[:80])
        if point is not None:
            return Placed(point, address, None, "point", "coordinates")
        warnings.append("the address lookup failed: location unknown, address kept as typed")
        return Placed(None, address)
    if not hits:
        warnings.append(f"address {address[:80]!r} not found: location unknown, "
                        "address kept as typed" if address else "no address")
        return Placed(None, address)
    h = hits[0]
    if h.street_only:
        where = ("nearest the caller's position or zone" if h.method == "street-near-hint"
                 else "at its middle")
        warnings.append(f"street only ({h.note or 'no house number'}): placed on {h.label} "
                        f"{where}; place it on the map if the caller says more")
    elif h.precision == "area":
        warnings.append(f"area only: placed at {h.label}; place it on the map if you can")
    elif h.note:
        warnings.append(h.note)
    return Placed(h.point, address, h.resolved, h.precision, h.method)


def _phone(raw: str | None, settings: Settings, warnings: list[str]) -> str | None:
    if not raw or not raw.strip():
        return None
    try:
        return normalise_phone(raw, settings.phone_region)
    except InvalidInput as exc:
        warnings.append(f"{exc}: kept as typed, no SMS to it")
        return raw.strip()[:32]


def register_incident_ex(*, session: Session, data: IncidentCreate, actor: str,
                         zone_index: ZoneLookup | None = None,
                         settings: Settings | None = None,
                         region: str | None = None, warnings: list[str] | None = None,
                         geocoder: Geocoder | None = None, number_at_commit: bool = False
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

    With ``number_at_commit`` (the API's registrations) the reference number is taken in the
    commit's own round trip: until the transaction commits, ``incident.reference`` is a
    placeholder (``pending-...``), and afterwards the number. Serving registrations this way
    keeps the region's counter row locked for a WAL flush, not for a request's remaining work.
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
    hint = (region_centre(zone_index, region or settings.default_region)
            if data.lat is None and data.near_lat is None else None)
    placed = _place(session, data, warnings, settings, geocoder, hint)
    p, address = placed.point, placed.address
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
                address=address, address_resolved=placed.resolved,
                location_precision=placed.precision if p else None,
                location_method=placed.method if p else None,
                category=category.code, original_category=category.code,
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
                              "address": address, "address_resolved": placed.resolved,
                              "precision": placed.precision if p else None,
                              "method": placed.method if p else None,
                              "description": data.description,
                              "has_phone": phone is not None,
                              "set": {"category": category.code, "priority": priority,
                                      "status": "queued"}})
    sms = None
    if phone and not data.sms_opt_out and cls.notifies(category.code, "registered"):
        # (enqueue_sms itself skips a number that is not a valid E.164 one; the message says
        # the placeholder until the number is taken below)

        sms = enqueue_sms(session=session, incident=incident, template="registered",
                          once=False, reference=incident.reference)
    _number(session=session, incident=incident, event=event, year=received.year, sms=sms,
            at_commit=number_at_commit)
    return incident, True


def place_incident(*, session: Session, incident_id: int, lat: float, lng: float, actor: str,
                   address: str | None = None, reason: str = "",
                   zone_index: ZoneLookup | None = None, settings: Settings | None = None,
                   geocoder: Geocoder | None = None) -> Incident:
    """Put an incident on the map: its place was unknown, or it was wrong.

    The region (and so the reference) stays; sector and district follow the new point. The
    point is exact as placed (precision ``point``, method ``map``) and named by reverse
    geocoding.
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
    incident.location_precision, incident.location_method = "point", "map"
    try:
        with session.begin_nested():
            named = _geocoder(session, settings, geocoder).reverse(lon=lng, lat=lat)
        incident.address_resolved = describe_point(named, p)
    except Exception:  # noqa: BLE001 - naming the point never fails placing it
        log.exception("reverse geocoding failed at %s, %s", lat, lng)
        incident.address_resolved = None
    append_event(session=session, incident_id=incident.id, kind="located", actor=actor, data={
        "lat": lat, "lng": lng, "address": incident.address,
        "address_resolved": incident.address_resolved, "reason": reason.strip(),
        "was_unknown": before is None,
        "from": None if before is None else {"lat": before.lat, "lng": before.lng}})
    session.flush()
    return incident


def register_incident(*, session: Session, data: IncidentCreate, actor: str,
                      zone_index: ZoneLookup | None = None,
                      settings: Settings | None = None) -> Incident:
    """Register a call as an incident (idempotent on ``data.idempotency_key``)."""
    incident, _created = register_incident_ex(session=session, data=data, actor=actor,
                                              zone_index=zone_index, settings=settings)
    return incident


def get_incident(*, session: Session, incident_id: int, lock: bool = False) -> Incident:
    return get_row(session, Incident, incident_id, what="incident", lock=lock)


def get_by_reference(*, session: Session, reference: str) -> Incident:
    incident = session.execute(
        select(Incident).where(Incident.reference == reference)).scalar_one_or_none()
    if incident is None:
        raise NotFound(f"incident {reference} not found")
    return incident


def set_incident_sms(*, session: Session, incident_id: int, enabled: bool, actor: str,
                     reason: str = "") -> Incident:
    """Switch SMS to this incident's caller off ("do not SMS": a domestic-violence caller, a
    caller who asks) or back on; switching off suppresses the messages not yet sent.

    Recorded as an ``sms_disabled`` / ``sms_enabled`` event (with the reason and how many queued
    messages were suppressed). Setting what is already set changes nothing.
    """
    incident = get_incident(session=session, incident_id=incident_id, lock=True)
    if incident.sms_opt_out == (not enabled):
        return incident
    incident.sms_opt_out = not enabled
    suppressed = 0
    if not enabled:
        for m in session.execute(select(SmsMessage).where(
                SmsMessage.incident_id == incident.id,
                SmsMessage.status == "pending").with_for_update(skip_locked=True)).scalars():
            m.status = "suppressed"
            suppressed += 1
    append_event(session=session, incident_id=incident.id,
                 kind="sms_enabled" if enabled else "sms_disabled", actor=actor,
                 data={"reason": reason.strip(), "suppressed": suppressed,
                       "set": {"sms_opt_out": not enabled}})
    session.flush()
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


def merge_candidates(*, session: Session, incident: Incident, radius_m: float = 1000.0,
                     limit: int = 10) -> list[NearbyIncident]:
    """Open incidents of the same region that may be the same event as ``incident`` (its merge
    candidates): :func:`geodispatch.incidents.nearby.nearby_open_incidents` around its place
    and from its caller's number, itself left out."""
    where = incident_point(session, incident)
    return nearby_open_incidents(
        session=session, lat=where.lat if where else None, lng=where.lng if where else None,
        phone=incident.caller_phone, radius_m=radius_m, region=incident.region,
        exclude_id=incident.id, limit=limit)


NOTE_MAX_CHARS = 2000


def add_note(*, session: Session, incident_id: int, text: str, actor: str) -> dict[str, Any]:
    """Append a note to the incident's record (a ``note`` event: ``data = {"note": text}``).

    A note changes no projected row, so verification replays it like any other event: its
    columns must say what its sealed body says. Notes may be added in any status, a closed
    incident included (a remark after the fact is still part of the record).
    """
    body = (text or "").strip()
    if not body:
        raise InvalidInput("a note needs some text")
    if len(body) > NOTE_MAX_CHARS:
        raise InvalidInput(f"a note is at most {NOTE_MAX_CHARS} characters ({len(body)} given)")
    get_incident(session=session, incident_id=incident_id)
    at = datetime.now(UTC)
    event_id = append_event(session=session, incident_id=incident_id, kind="note", actor=actor,
                            data={"note": body}, at=at)
    return {"id": event_id, "incident_id": incident_id, "at": iso_utc(at), "actor": actor,
            "text": body}


def incident_notes(*, session: Session, incident_id: int) -> list[dict[str, Any]]:
    """The incident's notes, oldest first: ``id, at, actor, text``."""
    rows = session.execute(
        select(IncidentEvent.id, IncidentEvent.at, IncidentEvent.actor, IncidentEvent.data)
        .where(IncidentEvent.incident_id == incident_id, IncidentEvent.kind == "note")
        .order_by(IncidentEvent.incident_seq)).all()
    return [{"id": int(r[0]), "at": iso_utc(r[1]), "actor": r[2],
             "text": str((r[3] or {}).get("note") or (r[3] or {}).get("text") or "")}
            for r in rows]


@dataclass(frozen=True)
class IncidentSearch:
    """What the console's search box and filters ask for; every part is optional.

    ``q`` matches the reference, the address (as typed or as resolved), the call sign of a crew
    ever assigned and, for users who may see callers' numbers, the caller's number (its digits).
    ``statuses``, ``priorities`` and ``categories`` are any-of lists; ``zone`` is a zone code
    (sector or district); ``received_from`` / ``received_to`` bound the time the call came in.
    """

    q: str | None = None
    statuses: tuple[str, ...] = ()
    priorities: tuple[int, ...] = ()
    categories: tuple[str, ...] = ()
    zone: str | None = None
    received_from: datetime | None = None
    received_to: datetime | None = None


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def list_incidents(*, session: Session, region: str | None, status: str | None = None,
                   limit: int = 200, search: IncidentSearch | None = None,
                   match_phone: bool = False) -> list[Incident]:
    """Incidents of ``region`` (None: every region), newest first, filtered by ``search``.

    Unknown statuses, categories or zones and an empty time window are InvalidInput (naming
    what is accepted), never an empty list that looks like "nothing happened".
    """
    f = search or IncidentSearch()
    statuses = tuple(f.statuses) + tuple(x.strip() for x in (status or "").split(",") if x.strip())
    bad = sorted(set(statuses) - set(INCIDENT_STATUSES))
    if bad:
        raise InvalidInput(f"unknown status {', '.join(bad)}; "
                           f"known: {', '.join(INCIDENT_STATUSES)}")
    if any(p not in (1, 2, 3, 4) for p in f.priorities):
        raise InvalidInput("priority is 1, 2, 3 or 4")
    if f.categories:
        known = load_classification().categories
        unknown = sorted(set(f.categories) - set(known))
        if unknown:
            raise InvalidInput(f"unknown category {', '.join(unknown)}; known: "
                               f"{', '.join(sorted(known))}")
    if f.received_from and f.received_to and f.received_from > f.received_to:
        raise InvalidInput("'from' is after 'to'")
    n = max(1, min(limit, 1000))
    filters = []
    if region is not None:
        filters.append(Incident.region == region)
    if statuses:
        filters.append(Incident.status.in_(statuses))
    if f.priorities:
        filters.append(Incident.priority.in_(f.priorities))
    if f.categories:
        filters.append(Incident.category.in_(f.categories))
    if f.received_from:
        filters.append(Incident.received_at >= f.received_from)
    if f.received_to:
        filters.append(Incident.received_at <= f.received_to)
    if f.zone:
        zone_ids = list(session.execute(text("SELECT id FROM zones WHERE code = :c"),
                                        {"c": f.zone.strip()}).scalars())
        if not zone_ids:
            raise InvalidInput(f"unknown zone {f.zone!r}: give a sector or district code")
        filters.append(Incident.sector_id.in_(zone_ids) | Incident.district_id.in_(zone_ids))
    newest = (Incident.received_at.desc(), Incident.id.desc())
    q = (f.q or "").strip()
    if not q:
        return list(session.execute(select(Incident).where(*filters).order_by(*newest)
                                    .limit(n)).scalars())
    like = _like(q)
    arms = [Incident.reference.ilike(like, escape="\\"),
            Incident.address.ilike(like, escape="\\"),
            Incident.address_resolved.ilike(like, escape="\\"),
            Incident.id.in_(  # (assignments and units belong to other domains)
                select(column("incident_id")).select_from(
                    text("assignments a JOIN units u ON u.id = a.unit_id"))
                .where(text("u.call_sign ILIKE :crew ESCAPE '\\'").bindparams(crew=like)))]
    digits = re.sub(r"\D", "", q)
    if match_phone and len(digits) >= 4:
        arms.append(Incident.caller_phone.like("%" + digits + "%"))
    # The newest n of "any of the arms" are among the newest n of each arm: each arm is a query
    # of its own, which the planner answers from its trigram index when the text is rare (a
    # reference, a street seen once: milliseconds in a year of incidents) or by walking
    # received_at newest first when it is common; one OR of them all would scan every row.
    candidates = union(*(select(Incident.id).where(*filters, arm).order_by(*newest).limit(n)
                         for arm in arms)).subquery()
    return list(session.execute(
        select(Incident).where(Incident.id.in_(select(candidates.c.id)))
        .order_by(*newest).limit(n)).scalars())


def incident_point(session: Session, incident: Incident) -> LatLng | None:
    """The incident's location as a LatLng (None while it is unknown)."""
    session.flush()
    row = session.execute(
        text("SELECT ST_Y(location), ST_X(location) FROM incidents WHERE id = :i"),
        {"i": incident.id}).one()
    return None if row[0] is None else LatLng(float(row[0]), float(row[1]))
