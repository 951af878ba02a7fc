"""HTTP edge of the crew terminal: the app's pages (``/crew``, its manifest and service worker)
and its API, authenticated by the unit's device credentials (``X-Device-Id`` + ``X-Device-Token``,
the same token the unit's trackers use).

``POST /api/crew/session``
    Check a device id and token; the unit (401 for an unknown device or a wrong token).
``GET /api/crew/assignment``
    The unit's own current assignment: incident reference, category, priority, address, the
    dispatcher's notes, the other crews on it and which one leads (``null`` when it has none).
``GET /api/crew/stream``
    The same document pushed as Server-Sent Events (``event: assignment``, the whole screen
    each time it changes; ids ``<epoch>.<seq>``) from the workflow's after-commit hook through
    the in-memory :class:`~geodispatch.crew.stream.CrewHub`. The first event is the current
    screen, unless ``Last-Event-ID`` shows the terminal missed nothing. A comment line every
    15 s keeps it open; ``event: revoked`` ends it within about a second when the unit is
    deactivated or its token replaced. Same device headers as every crew call.
``GET /api/crew/route?lat=&lng=``
    The drive from the crew's position to its assignment by the project's road router (a
    straight-line estimate, flagged ``method: straight_line``, when there is no road graph).
``POST /api/crew/status``
    ``{"status", "t" (device time), "key" (idempotency key), "assignment_id"}``: handed to
    ``geodispatch.dispatch.workflow.crew_status_report``; statuses are the crew statuses plus
    ``delivered`` and ``acknowledged``. A resent key answers ``duplicate``; a late press
    (device time before the crew's last status or its assignment) ``late``.

GPS fixes go to the tracker ingest (``/api/ingest/osmand``), the same pipeline as every tracker.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from geodispatch.api.deps import SessionDep, SettingsDep, UnitOfWork
from geodispatch.crew.service import crew_view, current_assignment, incident_point, unit_json
from geodispatch.crew.stream import HEARTBEAT_S, RETRY_MS, CrewHub
from geodispatch.db import transaction
from geodispatch.dispatch import workflow
from geodispatch.dispatch.publish import publish_after_commit
from geodispatch.errors import ConfigurationError, NotFound, Unauthenticated
from geodispatch.geo import LatLng
from geodispatch.tracking.models import Unit
from geodispatch.tracking.service import authenticate_device

STATIC_DIR = Path(__file__).resolve().parent / "static"
FILES = {"app.js": "text/javascript", "app.css": "text/css", "i18n.js": "text/javascript",
         "stream.js": "text/javascript", "alert.wav": "audio/wav",
         "sw.js": "text/javascript", "manifest.webmanifest": "application/manifest+json",
         "icon.svg": "image/svg+xml"}
STRAIGHT_LINE_SPEED_MPS = 11.0  # ~40 km/h over 1.3x the straight line, only without a graph

router = APIRouter(tags=["crew"])


def _device_unit(request: Request, session: Session) -> Unit:
    device = request.headers.get("x-device-id", "")
    token = request.headers.get("x-device-token")
    if not device or len(device) > 128:
        raise Unauthenticated("X-Device-Id and X-Device-Token are required")
    try:
        return authenticate_device(session=session, device_id=device, token=token)
    except NotFound:
        raise Unauthenticated("unknown device or wrong token") from None


class SessionBody(BaseModel):
    device_id: str = Field(min_length=1, max_length=128)
    token: str = Field(min_length=1, max_length=256)


class CrewStatusBody(BaseModel):
    status: str = Field(min_length=2, max_length=32, pattern=r"^[a-z_]+$")
    t: datetime | None = None
    key: str | None = Field(None, min_length=1, max_length=128)
    assignment_id: int | None = Field(None, ge=1, le=2**31 - 1)


@router.get("/crew", include_in_schema=False)
@router.get("/crew/", include_in_schema=False)
def crew_page() -> Response:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html",
                        headers={"Cache-Control": "no-cache"})


@router.get("/crew/{name}", include_in_schema=False)
def crew_file(name: str) -> Response:
    if name not in FILES:
        raise NotFound(f"no file {name[:40]!r}")
    headers = {"Cache-Control": "no-cache"}
    if name == "sw.js":
        headers["Service-Worker-Allowed"] = "/crew/"
    return FileResponse(STATIC_DIR / name, media_type=FILES[name], headers=headers)


@router.post("/api/crew/session", summary="Crew sign-in: check the unit's device credentials")
def crew_session(body: SessionBody, session: SessionDep, settings: SettingsDep
                 ) -> dict[str, Any]:
    try:
        unit = authenticate_device(session=session, device_id=body.device_id, token=body.token)
    except NotFound:
        raise Unauthenticated("unknown device or wrong token") from None
    return {"unit": unit_json(unit), "tile_url": settings.tile_url,
            "tile_attribution": settings.tile_attribution}


@router.get("/api/crew/assignment", summary="The crew's own current assignment")
def crew_assignment(request: Request, session: SessionDep) -> dict[str, Any]:
    unit = _device_unit(request, session)
    return crew_view(session=session, unit=unit)


@router.get("/api/crew/route", summary="Route and ETA from the crew's position to its call")
def crew_route(request: Request, session: SessionDep,
               lat: Annotated[float, Query(ge=-90, le=90)],
               lng: Annotated[float, Query(ge=-180, le=180)]) -> dict[str, Any]:
    unit = _device_unit(request, session)
    a = current_assignment(session=session, unit_id=unit.id)
    if a is None:
        raise NotFound("the crew has no assignment")
    target = incident_point(session, a.incident_id)
    if target is None:
        raise NotFound("the incident's location is unknown")
    start = LatLng(lat, lng)
    road = getattr(request.app.state, "router", None)
    if road is not None:
        try:
            r = road.route(start, target)
            return {"method": "road", "eta_s": r.eta_s, "distance_m": r.distance_m,
                    "geometry": r.to_geojson()}
        except NotFound:
            pass
    d = _haversine_m(start, target) * 1.3
    return {"method": "straight_line", "eta_s": d / STRAIGHT_LINE_SPEED_MPS, "distance_m": d,
            "geometry": {"type": "LineString",
                         "coordinates": [[start.lng, start.lat], [target.lng, target.lat]]}}


@router.post("/api/crew/status", summary="A crew's status press (device time, idempotency key)")
def crew_status(body: CrewStatusBody, request: Request, session: SessionDep,
                uow: UnitOfWork) -> dict[str, Any]:
    unit_id = _device_unit(request, session).id
    session.rollback()
    with transaction(uow) as tx:
        result = workflow.crew_status_report(
            session=tx, unit_id=unit_id, status=body.status, at=body.t,
            source=f"crew:{unit_id}", key=body.key, assignment_id=body.assignment_id)
        state = request.app.state
        publish_after_commit(tx, mqtt=getattr(state, "mqtt", None),
                             fleet=getattr(state, "fleet", None),
                             inflight=getattr(state, "delivery_inflight", None),
                             terminals=getattr(state, "crew_hub", None))
    return {"result": result, "status": body.status}


def _sse(event: str, data: Any, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@router.get("/api/crew/stream", summary="The crew's own screen, pushed (Server-Sent Events)",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "``event: assignment`` with the document of "
                                            "GET /api/crew/assignment, at every change"}})
async def crew_stream(request: Request) -> StreamingResponse:
    hub: CrewHub | None = getattr(request.app.state, "crew_hub", None)
    if hub is None:
        raise ConfigurationError("the crew stream is not running (no crew lifespan)")
    factory = request.app.state.session_factory
    last_id = request.headers.get("last-event-id")

    def authenticate() -> tuple[int, str]:
        # Its own short session: a stream must not hold a pooled connection while it is open.
        with factory() as session:
            unit = _device_unit(request, session)
            return unit.id, unit.device_token_hash

    def screen(unit_id: int) -> dict[str, Any] | None:
        with factory() as session:
            unit = session.get(Unit, unit_id)
            return None if unit is None else crew_view(session=session, unit=unit)

    unit_id, token_hash = await hub.call(authenticate)

    async def events() -> AsyncIterator[str]:
        sub = hub.subscribe(unit_id, token_hash)  # first: no change after this point is missed
        try:
            yield f"retry: {RETRY_MS}\n: open\n\n"
            floor = 0  # a screen read before the first one is older than it: not sent
            if not hub.up_to_date(unit_id, last_id):
                floor = hub.now()
                first = await hub.call(screen, unit_id)
                if first is not None:
                    yield _sse("assignment", first, hub.event_id(floor))
            while True:
                try:
                    await asyncio.wait_for(sub.wake.wait(), HEARTBEAT_S)
                except TimeoutError:
                    yield ": ping\n\n"
                    continue
                if sub.ended is not None:
                    yield _sse("revoked", {"detail": "the unit's device token no longer "
                                                     "signs in: sign in again"})
                    return
                item = sub.take()
                if item is not None and hub.seq_of(item[0]) > floor:
                    yield _sse("assignment", item[1], item[0])
        finally:
            hub.unsubscribe(sub)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _haversine_m(a: LatLng, b: LatLng) -> float:
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lng - a.lng)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(h))
