"""HTTP endpoints of intake: register a call, read incidents and their event timeline, reclassify,
verify the tamper-evident log. Region-scoped: a user sees only incidents of their region
(national: every region, read-only). The caller's phone is shown only to call-takers,
dispatchers and supervisors of the incident's region.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from geodispatch.api.deps import SessionDep, SettingsDep, UnitOfWork, require_roles
from geodispatch.api.security import (
    ADMIN,
    ALL_ROLES,
    ANALYST,
    CALL_TAKER,
    DISPATCHER,
    NATIONAL,
    SUPERVISOR,
    Principal,
)
from geodispatch.db import transaction
from geodispatch.errors import InvalidInput, NotFound
from geodispatch.incidents import service
from geodispatch.incidents.access import PHONE_ROLES, incident_json, sees_phone, visible_incident
from geodispatch.incidents.classification import load_classification, load_dispositions
from geodispatch.incidents.models import Incident, IncidentEvent
from geodispatch.incidents.record import event_dict, incident_events
from geodispatch.incidents.schemas import IncidentCreate, NoteCreate, PlaceIncident, Reclassify
from geodispatch.incidents.verify import verify_record
from geodispatch.ledger import service as ledger
from geodispatch.ledger.signing import public_key_pem
from geodispatch.notify.models import SmsMessage

router = APIRouter(prefix="/api/incidents", tags=["incidents"])

Anyone = Annotated[Principal, Depends(require_roles(*ALL_ROLES))]
Intake = Annotated[Principal, Depends(require_roles(CALL_TAKER, DISPATCHER, SUPERVISOR, ADMIN))]
Operations = Annotated[Principal, Depends(require_roles(DISPATCHER, SUPERVISOR, ADMIN))]
NoteWriters = Annotated[Principal, Depends(require_roles(CALL_TAKER, DISPATCHER, SUPERVISOR))]
Auditors = Annotated[Principal, Depends(require_roles(SUPERVISOR, ADMIN, NATIONAL))]
Readers = Annotated[Principal, Depends(require_roles(
    CALL_TAKER, DISPATCHER, SUPERVISOR, ANALYST, ADMIN, NATIONAL))]


@router.get("/categories", summary="The call classification list")
def categories(principal: Anyone, settings: SettingsDep) -> dict[str, Any]:
    cls = load_classification(settings)
    return {"categories": [
        {"code": c.code, "priority": c.priority, "kinds": list(c.kinds),
         "capabilities": list(c.capabilities), "label": c.label}
        for c in cls.categories.values()]}


@router.get("/dispositions",
            summary="Dispositions accepted on closure: local codes, then the APCO common codes")
def dispositions(principal: Anyone, settings: SettingsDep) -> dict[str, Any]:
    return {"dispositions": load_dispositions(settings).as_list()}


@router.get("/verify", summary="Verify the record against the signed log (all, or one incident)")
def verify(principal: Auditors, session: SessionDep, settings: SettingsDep,
           reference: Annotated[str | None, Query(description="incident reference")] = None
           ) -> dict[str, Any]:
    # One snapshot for the whole check: events appended meanwhile (the delivery loop, GPS
    # arrival detection) must not look like rows changed without an event.
    session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    incident_id = None
    if reference:
        incident = service.get_by_reference(session=session, reference=reference)
        if not principal.can_see_region(incident.region):
            raise NotFound(f"incident {reference} not found")
        incident_id = incident.id
    key = ledger.public_key(settings)
    return verify_record(session=session, public_key=key, witnesses=ledger.witnesses(settings, key),
                         incident_id=incident_id).as_dict()


@router.get("/log/head", summary="The newest signed tree head of the centre's log")
def log_head(principal: Auditors, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    head = ledger.newest_head(session)
    return {"tree_head": None if head is None else head.as_dict(),
            "public_key": public_key_pem(ledger.public_key(settings)).decode("ascii")}


@router.get("/log/consistency", summary="RFC 9162 consistency proof between two tree sizes")
def log_consistency(principal: Auditors, session: SessionDep,
                    old: Annotated[int, Query(ge=0)], new: Annotated[int, Query(ge=0)]
                    ) -> dict[str, Any]:
    return {"old": old, "new": new,
            "proof": ledger.consistency(session=session, old_size=old, new_size=new)}


@router.get("/events/{event_id}/proof", summary="An event's inclusion proof in the newest head")
def event_proof(event_id: int, principal: Auditors, session: SessionDep) -> dict[str, Any]:
    row = session.execute(select(IncidentEvent.incident_id).where(IncidentEvent.id == event_id)
                          ).scalar()
    if row is None:
        raise NotFound(f"event {event_id} not found")
    visible_incident(session, principal, int(row))
    return ledger.inclusion(session=session, event_id=event_id)


@router.post("", status_code=201, summary="Register a call (idempotent on idempotency_key)")
def register(body: IncidentCreate, principal: Intake, uow: UnitOfWork, request: Request,
             response: Response, settings: SettingsDep) -> dict[str, Any]:
    zone_index = getattr(request.app.state, "zone_index", None)
    warnings: list[str] = []
    with transaction(uow) as session:
        incident, created = service.register_incident_ex(
            session=session, data=body, actor=principal.username, zone_index=zone_index,
            settings=settings, region=principal.region, warnings=warnings,
            number_at_commit=True)
        out = incident_json(session, incident, principal)
    out["reference"] = incident.reference  # taken by the commit
    if not created:
        response.status_code = 200
    out["created"] = created
    out["warnings"] = warnings
    return out


@router.post("/{incident_id}/location", summary="Place the incident on the map")
def place(incident_id: int, body: PlaceIncident, principal: Intake, uow: UnitOfWork,
          request: Request, settings: SettingsDep) -> dict[str, Any]:
    with transaction(uow) as session:
        visible_incident(session, principal, incident_id)
        incident = service.place_incident(
            session=session, incident_id=incident_id, lat=body.lat, lng=body.lng,
            address=body.address, reason=body.reason, actor=principal.username,
            zone_index=getattr(request.app.state, "zone_index", None), settings=settings)
        return incident_json(session, incident, principal)


def _csv(raw: str | None) -> tuple[str, ...]:
    return tuple(x.strip() for x in (raw or "").split(",") if x.strip())


@router.get("", summary="Search the incidents of the caller's region, newest first")
def list_incidents(
    principal: Readers, session: SessionDep,
    q: Annotated[str | None, Query(max_length=100, description=(
        "reference, address, crew call sign, or the caller's number (roles that see it)"))] = None,
    status: Annotated[str | None, Query(description="any of, comma-separated (closed, "
                                                    "cancelled and merged included)")] = None,
    priority: Annotated[str | None, Query(description="any of 1-4, comma-separated")] = None,
    category: Annotated[str | None, Query(description="any of, comma-separated")] = None,
    zone: Annotated[str | None, Query(max_length=64, description="sector or district code")
                    ] = None,
    received_from: Annotated[datetime | None, Query(alias="from")] = None,
    received_to: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    try:
        priorities = tuple(int(p) for p in _csv(priority))
    except ValueError:
        raise InvalidInput("priority is 1, 2, 3 or 4 (comma-separated)") from None
    for name, value in (("from", received_from), ("to", received_to)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"'{name}' needs a time zone (e.g. 2026-12-04T08:00:00+02:00)")
    search = service.IncidentSearch(q=q, statuses=_csv(status), priorities=priorities,
                                    categories=_csv(category), zone=zone,
                                    received_from=received_from, received_to=received_to)
    items = service.list_incidents(session=session, region=principal.region, limit=limit,
                                   search=search, match_phone=principal.role in PHONE_ROLES)
    rows = session.execute(
        select(Incident.id, Incident.location.ST_Y(), Incident.location.ST_X())
        .where(Incident.id.in_([i.id for i in items]))).all()
    points = {int(r[0]): (float(r[1]), float(r[2])) for r in rows if r[1] is not None}
    return {"items": [incident_json(session, i, principal, point=points.get(i.id))
                      for i in items]}


@router.get("/{incident_id}", summary="One incident with its assignments and notes")
def get_incident(incident_id: int, principal: Readers, session: SessionDep) -> dict[str, Any]:
    incident = visible_incident(session, principal, incident_id)
    return incident_json(session, incident, principal, assignments=True, notes=True)


@router.get("/{incident_id}/nearby",
            summary="Open incidents near this one or from the same caller (merge candidates)")
def nearby(incident_id: int, principal: Readers, session: SessionDep,
           radius_m: Annotated[float, Query(gt=0, le=20000)] = 1000.0,
           limit: Annotated[int, Query(ge=1, le=50)] = 10) -> dict[str, Any]:
    incident = visible_incident(session, principal, incident_id)
    items = service.merge_candidates(session=session, incident=incident, radius_m=radius_m,
                                     limit=limit)
    return {"radius_m": radius_m, "items": [n.as_dict() for n in items]}


@router.post("/{incident_id}/notes", status_code=201,
             summary="Add a note to the incident's record (a 'note' event)")
def add_note(incident_id: int, body: NoteCreate, principal: NoteWriters,
             uow: UnitOfWork) -> dict[str, Any]:
    with transaction(uow) as session:
        visible_incident(session, principal, incident_id)
        return service.add_note(session=session, incident_id=incident_id, text=body.text,
                                actor=principal.username)


@router.get("/{incident_id}/events",
            summary="The incident's event timeline (sealed into the signed log)")
def events(incident_id: int, principal: Readers, session: SessionDep) -> dict[str, Any]:
    incident = visible_incident(session, principal, incident_id)
    return {"reference": incident.reference,
            "events": [event_dict(e) for e in incident_events(session=session,
                                                               incident_id=incident.id)]}


@router.post("/{incident_id}/reclassify", summary="Change the category (reason required)")
def reclassify(incident_id: int, body: Reclassify, principal: Intake,
               uow: UnitOfWork) -> dict[str, Any]:
    with transaction(uow) as session:
        visible_incident(session, principal, incident_id)
        incident = service.reclassify(session=session, incident_id=incident_id,
                                      category=body.category, reason=body.reason,
                                      priority=body.priority, actor=principal.username)
        return incident_json(session, incident, principal)


@router.get("/{incident_id}/sms", summary="Messages to the incident's caller")
def incident_sms(incident_id: int, principal: Intake, session: SessionDep) -> dict[str, Any]:
    incident = visible_incident(session, principal, incident_id)
    show = sees_phone(principal, incident)
    rows = session.execute(select(SmsMessage).where(SmsMessage.incident_id == incident.id)
                           .order_by(SmsMessage.id)).scalars()
    return {"items": [{
        "id": m.id, "template": m.template, "lang": m.lang, "status": m.status,
        "attempts": m.attempts, "body": m.body, "phone": m.phone if show else None,
        "created_at": m.created_at.isoformat(), "sent_at": m.sent_at.isoformat()
        if m.sent_at else None, "last_error": m.last_error} for m in rows]}


class IncidentSmsBody(BaseModel):
    enabled: bool
    reason: str = Field("", max_length=1000)


@router.post("/{incident_id}/sms",
             summary="Per-incident SMS switch: enabled=false is 'do not SMS' (queued ones too)")
def incident_sms_switch(incident_id: int, body: IncidentSmsBody, principal: Intake,
                        uow: UnitOfWork) -> dict[str, Any]:
    with transaction(uow) as session:
        visible_incident(session, principal, incident_id)
        incident = service.set_incident_sms(session=session, incident_id=incident_id,
                                            enabled=body.enabled, actor=principal.username,
                                            reason=body.reason)
        return incident_json(session, incident, principal)
