"""HTTP endpoints of the dispatch workflow: recommend, assign (accept or override), crew status,
lead crew, cancel, merge, close, reopen, and the supervisor's alerts. Dispatchers and
supervisors of the incident's region (national: read-only, so none of these writes); the
supervisor's board."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from geodispatch.api.deps import (
    PrincipalDep,
    SessionDep,
    SettingsDep,
    UnitOfWork,
    require_roles,
)
from geodispatch.api.security import ADMIN, DISPATCHER, NATIONAL, SUPERVISOR, Principal
from geodispatch.db import transaction
from geodispatch.dispatch import alerts as supervision
from geodispatch.dispatch import workflow
from geodispatch.dispatch.board import supervisor_board
from geodispatch.dispatch.publish import publish_after_commit
from geodispatch.dispatch.recommend import recommend as run_recommend
from geodispatch.dispatch.schemas import (
    AssignBody,
    CloseBody,
    LeadBody,
    MergeBody,
    ReasonBody,
    RecommendBody,
    StatusBody,
)
from geodispatch.errors import NotFound
from geodispatch.incidents.access import incident_json, visible_incident
from geodispatch.incidents.classification import load_classification
from geodispatch.incidents.service import get_by_reference
from geodispatch.tracking.models import Unit

router = APIRouter(tags=["dispatch"])

Operations = Annotated[Principal, Depends(require_roles(DISPATCHER, SUPERVISOR, ADMIN))]
Supervisors = Annotated[Principal, Depends(require_roles(SUPERVISOR, ADMIN, NATIONAL))]
Watchers = Annotated[Principal, Depends(require_roles(DISPATCHER, SUPERVISOR, ADMIN, NATIONAL))]


def visible_unit(session: Session, principal: Principal, unit_id: int) -> Unit:
    """The crew, or NotFound when it is outside the caller's region (nor may it be sent)."""
    unit = session.execute(select(Unit).where(Unit.id == unit_id)).scalar_one_or_none()
    if unit is None or not principal.can_see_region(unit.region):
        raise NotFound(f"unit {unit_id} not found")
    return unit


def _after_commit(request: Request, session: Session) -> None:
    publish_after_commit(session, mqtt=getattr(request.app.state, "mqtt", None),
                         fleet=getattr(request.app.state, "fleet", None),
                         inflight=getattr(request.app.state, "delivery_inflight", None),
                         terminals=getattr(request.app.state, "crew_hub", None))


@router.post("/api/incidents/{incident_id}/recommend", summary="Rank crews for an incident")
def recommend(incident_id: int, principal: Operations, uow: UnitOfWork, request: Request,
              settings: SettingsDep,
              body: Annotated[RecommendBody | None, Body()] = None) -> dict[str, Any]:
    with transaction(uow) as session:
        visible_incident(session, principal, incident_id)
        state = request.app.state
        reco = run_recommend(
            session=session, incident_id=incident_id, fleet=getattr(state, "fleet", None),
            router=getattr(state, "router", None), zone_index=getattr(state, "zone_index", None),
            settings=settings,
            top_n=(body.top_n if body and body.top_n else settings.recommend_top_n),
            actor=principal.username)
        return reco.to_dict()


@router.post("/api/incidents/{incident_id}/assignments", status_code=201,
             summary="Assign a crew: a recommended one, or another with override_reason")
def assign(incident_id: int, body: AssignBody, principal: Operations, uow: UnitOfWork,
           request: Request) -> dict[str, Any]:
    with transaction(uow) as session:
        visible_incident(session, principal, incident_id)
        visible_unit(session, principal, body.unit_id)
        a = workflow.assign(session=session, incident_id=incident_id, unit_id=body.unit_id,
                            actor=principal.username, override_reason=body.override_reason,
                            lead=body.lead)
        _after_commit(request, session)
        return {"id": a.id, "incident_id": a.incident_id, "unit_id": a.unit_id,
                "status": a.status, "is_lead": a.is_lead, "was_recommended": a.was_recommended,
                "override_reason": a.override_reason, "eta_s": a.eta_s,
                "distance_m": a.distance_m}


@router.get("/api/incidents/{incident_id}/assignments", summary="Crews on an incident")
def assignments(incident_id: int, principal: Watchers, session: SessionDep) -> dict[str, Any]:
    incident = visible_incident(session, principal, incident_id)
    return {"items": incident_json(session, incident, principal, assignments=True)["assignments"]}


@router.post("/api/dispatch/units/{unit_id}/status", summary="Set a crew's status (dispatcher)")
def unit_status(unit_id: int, body: StatusBody, principal: Operations, uow: UnitOfWork,
                request: Request) -> dict[str, Any]:
    with transaction(uow) as session:
        visible_unit(session, principal, unit_id)
        workflow.crew_status_report(session=session, unit_id=unit_id, status=body.status, at=None,
                                    source=f"dispatcher:{principal.username}")
        _after_commit(request, session)
        return {"unit_id": unit_id, "status": body.status}


def _write(request: Request, session: Session, principal: Principal, incident: Any
           ) -> dict[str, Any]:
    _after_commit(request, session)
    return incident_json(session, incident, principal)


@router.post("/api/incidents/{incident_id}/cancel", summary="Cancel an incident")
def cancel(incident_id: int, body: ReasonBody, principal: Operations, uow: UnitOfWork,
           request: Request) -> dict[str, Any]:
    with transaction(uow) as session:
        visible_incident(session, principal, incident_id)
        inc = workflow.cancel_incident(session=session, incident_id=incident_id,
                                       actor=principal.username, reason=body.reason)
        return _write(request, session, principal, inc)


@router.post("/api/incidents/{incident_id}/merge",
             summary="Mark as duplicate of / merge into another incident")
def merge(incident_id: int, body: MergeBody, principal: Operations, uow: UnitOfWork,
          request: Request) -> dict[str, Any]:
    with transaction(uow) as session:
        visible_incident(session, principal, incident_id)
        into = body.into_id
        if into is None and body.into_reference:
            into = get_by_reference(session=session, reference=body.into_reference).id
        if into is None:
            raise NotFound("give into_id or into_reference")
        visible_incident(session, principal, into)
        inc = workflow.merge_incident(session=session, incident_id=incident_id, into_id=into,
                                      actor=principal.username, reason=body.reason,
                                      duplicate=body.duplicate)
        return _write(request, session, principal, inc)


@router.post("/api/incidents/{incident_id}/close",
             summary="Close with a disposition (APCO common code or a local code mapped onto one)")
def close(incident_id: int, body: CloseBody, principal: Operations, uow: UnitOfWork,
          request: Request, settings: SettingsDep) -> dict[str, Any]:
    with transaction(uow) as session:
        visible_incident(session, principal, incident_id)
        inc = workflow.close_incident(session=session, incident_id=incident_id,
                                      actor=principal.username, disposition=body.disposition,
                                      note=body.note, settings=settings)
        return _write(request, session, principal, inc)


@router.post("/api/incidents/{incident_id}/reopen", summary="Reopen a closed incident")
def reopen(incident_id: int, body: ReasonBody, principal: Operations, uow: UnitOfWork,
           request: Request) -> dict[str, Any]:
    with transaction(uow) as session:
        visible_incident(session, principal, incident_id)
        inc = workflow.reopen_incident(session=session, incident_id=incident_id,
                                       actor=principal.username, reason=body.reason)
        return _write(request, session, principal, inc)


@router.post("/api/incidents/{incident_id}/lead",
             summary="Make one of the incident's crews its lead")
def lead(incident_id: int, body: LeadBody, principal: Operations, uow: UnitOfWork,
         request: Request) -> dict[str, Any]:
    with transaction(uow) as session:
        visible_incident(session, principal, incident_id)
        workflow.set_lead(session=session, incident_id=incident_id, unit_id=body.unit_id,
                          actor=principal.username)
        _after_commit(request, session)
        incident = visible_incident(session, principal, incident_id)
        return incident_json(session, incident, principal, assignments=True)


@router.get("/api/dispatch/limits",
            summary="How long an incident of each priority may wait unassigned")
def limits(principal: PrincipalDep, settings: SettingsDep) -> dict[str, Any]:
    """Seconds by priority (1-4): the limits of the 'unassigned' supervisor alert, from the
    classification file; the console sorts and marks its queue by them."""
    cls = load_classification(settings)
    return {"unassigned_limit_s": {str(p): cls.unassigned_limit(p) for p in (1, 2, 3, 4)}}


@router.get("/api/dispatch/alerts", summary="Supervisor timers and alerts of the region")
def alerts(principal: Watchers, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    items = supervision.supervisor_alerts(session=session, region=principal.region,
                                       settings=settings)
    return {"items": [{**asdict(a), "since": a.since.isoformat()} for a in items]}


@router.get("/api/supervisor/board",
            summary="Every crew by sector (status, time in it, incident, fix age); joint actions")
def board(principal: Supervisors, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    return supervisor_board(session=session, region=principal.region,
                            settings=settings).to_dict()
