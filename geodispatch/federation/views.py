"""HTTP endpoints of federation: EIDO export for the national centre, and its import.

``GET /api/federation/eido?region=&since=`` (list), ``GET /api/federation/eido/{reference}``,
``POST /api/federation/eido`` (admin of the receiving centre; one EIDO or a list; 422 when a hash
does not verify, nothing stored). Regional users export their own region only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, WebSocket

from geodispatch.api.deps import SessionDep, SettingsDep, require_roles
from geodispatch.api.security import ADMIN, ANALYST, NATIONAL, SUPERVISOR, Principal
from geodispatch.errors import ConfigurationError, InvalidInput, NotFound, Unauthenticated
from geodispatch.federation.conveyance import Refused
from geodispatch.federation.national import receive, refusals, region_summary
from geodispatch.federation.notifier import Notifier
from geodispatch.federation.service import export_incidents, import_documents

router = APIRouter(prefix="/api/federation", tags=["federation"])

Exporter = Annotated[Principal, Depends(require_roles(SUPERVISOR, ANALYST, ADMIN, NATIONAL))]
Admin = Annotated[Principal, Depends(require_roles(ADMIN))]



@router.get("/eido", summary="Incidents with their event logs as NENA EIDO JSON")
def export_list(
    session: SessionDep,
    principal: Exporter,
    settings: SettingsDep,
    region: str | None = None,
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    return export_incidents(
        session=session, settings=settings, region=principal.scope(region), since=since
    )


@router.get("/eido/{reference}", summary="One incident as NENA EIDO JSON")
def export_one(
    session: SessionDep, principal: Exporter, settings: SettingsDep, reference: str
) -> dict[str, Any]:
    docs = export_incidents(
        session=session, settings=settings, region=principal.scope(None), references=[reference]
    )
    if not docs:
        raise NotFound(f"incident {reference}")
    return docs[0]


@router.post("/eido", summary="Verify and import EIDO JSON from a regional centre (admin)")
def import_docs(
    session: SessionDep,
    settings: SettingsDep,
    principal: Admin,
    body: Annotated[dict[str, Any] | list[Any], Body()],
) -> list[dict[str, Any]]:
    docs = body if isinstance(body, list) else [body]
    results = import_documents(session=session, docs=docs, settings=settings)
    return [r.as_dict() for r in results]


# --- national side: what the regions sent ---------------------------------------------------

Readers = Annotated[Principal, Depends(require_roles(SUPERVISOR, ANALYST, ADMIN, NATIONAL))]


@router.get("/regions", summary="Registered regional centres: witnessed log size, events, "
            "incidents, refusals (read-only)")
def regions(session: SessionDep, principal: Readers) -> list[dict[str, Any]]:
    return region_summary(session=session)


@router.get("/refusals", summary="Documents refused from regional centres, with the reason")
def refused(session: SessionDep, principal: Readers, limit: int = 100) -> list[dict[str, Any]]:
    return refusals(session=session, limit=min(max(limit, 1), 1000))


@router.post("/notifications", summary="Push a NENA-STA-024 event (signed EIDO notifications); "
             "authenticated by each notification's signature, not a console token")
def push(session: SessionDep, settings: SettingsDep,
         body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    event = body.get("event")
    if not isinstance(event, dict) or not isinstance(event.get("notification"), list):
        raise InvalidInput('expected {"event": {"notification": [JWS, ...], ...}}')
    results = [receive(session=session, document=n, via="push",
                       standards_dir=settings.standards_dir) for n in event["notification"]]
    refused_ = [r for r in results if not r.accepted]
    return {"eventResponse": {
        "subscriptionId": event.get("subscriptionId"),
        "transactionId": event.get("transactionId"),
        "statusCode": 400 if refused_ else 200,
        "statusText": f"{refused_[0].reason}: {refused_[0].detail}" if refused_ else "OK",
        "results": [r.as_dict() for r in results]}}


# --- regional side: NENA-STA-024 conveyance ------------------------------------------------

centre_router = APIRouter(tags=["federation"])


def _notifier(app: Any) -> Notifier:
    n = getattr(app.state, "eido_notifier", None)
    if n is None:
        raise ConfigurationError("the EIDO feed is off: this centre has no log signing key")
    return n  # type: ignore[no-any-return]


@centre_router.websocket("/IncidentData/ent")
async def incident_data(websocket: WebSocket) -> None:
    """NENA-STA-024 subscribe/notify (subprotocol emergency-ent1.0); see notifier.py."""
    n = getattr(websocket.app.state, "eido_notifier", None)
    if n is None:
        await websocket.close(code=1011, reason="EIDO feed off")
        return
    await n.serve(websocket)


# Authenticated by a centre's signed credential, not by a console role.
incident_data.ws_roles = ()  # type: ignore[attr-defined]


@centre_router.get("/incidents/{incident_id}",
                   summary="NENA-STA-024 dereference: one incident as EIDO with its log proof "
                   "(Authorization: Signature <credential of a subscriber key>)")
def dereference(incident_id: str, request: Request) -> dict[str, Any]:
    n = _notifier(request.app)
    try:
        n.authenticate(request.headers.get("authorization", ""))
    except Refused as exc:
        raise Unauthenticated(f"{exc.code}: {exc.detail}") from None
    doc = n.dereference(incident_id)
    if doc is None:
        raise NotFound(f"incident {incident_id}")
    return doc
