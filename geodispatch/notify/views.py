"""HTTP endpoints of caller notifications: opt-out, the per-incident "do not SMS" switch and an
incident's SMS history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy import select

from geodispatch.api.deps import SessionDep, require_roles
from geodispatch.api.security import ADMIN, CALL_TAKER, DISPATCHER, SUPERVISOR, Principal
from geodispatch.db import transaction
from geodispatch.incidents.views import UnitOfWork, incident_json, sees_phone, visible_incident
from geodispatch.notify.models import SmsMessage
from geodispatch.notify.outbox import opt_out, set_incident_sms

router = APIRouter(tags=["notify"])

Operators = Annotated[Principal, Depends(require_roles(CALL_TAKER, DISPATCHER, SUPERVISOR,
                                                       ADMIN))]


class OptOutBody(BaseModel):
    phone: str = Field(..., max_length=32)


class IncidentSmsBody(BaseModel):
    enabled: bool
    reason: str = Field("", max_length=1000)


@router.post("/api/sms/opt-out", status_code=204, summary="A caller asks for no more SMS")
def post_opt_out(body: OptOutBody, principal: Operators, session: SessionDep) -> None:
    opt_out(session=session, phone=body.phone)


@router.get("/api/incidents/{incident_id}/sms", summary="Messages to the incident's caller")
def incident_sms(incident_id: int, principal: Operators, session: SessionDep) -> dict[str, Any]:
    incident = visible_incident(session, principal, incident_id)
    show = sees_phone(principal, incident)
    rows = session.execute(select(SmsMessage).where(SmsMessage.incident_id == incident.id)
                           .order_by(SmsMessage.id)).scalars()
    return {"items": [{
        "id": m.id, "template": m.template, "lang": m.lang, "status": m.status,
        "attempts": m.attempts, "body": m.body, "phone": m.phone if show else None,
        "created_at": m.created_at.isoformat(), "sent_at": m.sent_at.isoformat()
        if m.sent_at else None, "last_error": m.last_error} for m in rows]}


@router.post("/api/incidents/{incident_id}/sms",
             summary="Per-incident SMS switch: enabled=false is 'do not SMS' (queued ones too)")
def incident_sms_switch(incident_id: int, body: IncidentSmsBody, principal: Operators,
                        uow: UnitOfWork) -> dict[str, Any]:
    with transaction(uow) as session:
        visible_incident(session, principal, incident_id)
        incident = set_incident_sms(session=session, incident_id=incident_id,
                                    enabled=body.enabled, actor=principal.username,
                                    reason=body.reason)
        return incident_json(session, incident, principal)
