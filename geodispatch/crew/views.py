"""HTTP edge of the crew terminal: the app's pages (``/crew``, its manifest and service worker)
and its API, authenticated either by the unit's device credentials (``X-Device-Id`` +
``X-Device-Token``, the same token the unit's trackers use) or by an officer's shift token
(``X-Crew-Shift``, from an officer's own sign-in bound to the unit: the crew roster,
:mod:`geodispatch.crew.roster`).

``POST /api/crew/session``
    ``{"device_id", "token"}``: check a device id and token; the unit (401 for an unknown device
    or a wrong token). ``{"username", "password", "call_sign"}``: an officer signs on to the unit
    for the shift (a ``crew_signed_on`` event in the unit's record); the unit and ``shift``
    (with the ``token`` the app sends as ``X-Crew-Shift``).
``POST /api/crew/sign-off``
    The officer signs off the unit (shift token only); every request with that token is refused
    from then on (401) and its streams end with ``event: revoked``.
``GET /api/crew/roster`` (dispatcher, supervisor, admin, national)
    Who is in which car: each unit with officers on shift (``?since=`` adds shifts that ended).
``POST /api/crew/roster/{shift_id}/sign-off`` (supervisor, admin)
    A supervisor signs an officer off the unit (``{"reason"}``), with the same effect.
``POST /api/crew/position``
    A GPS fix of the crew app (the OsmAnd query: ``lat``, ``lon``, ``timestamp``, ``accuracy``,
    ``speed`` in knots, ``bearing``) for a terminal signed in with a shift token: it goes through
    the tracker ingest's validator and writer as the unit's fix, like every tracker's.
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

A device-signed terminal sends its GPS fixes to the tracker ingest (``/api/ingest/osmand``),
the same pipeline as every tracker.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, model_validator
from sqlalchemy.orm import Session

from geodispatch.api.deps import SessionDep, SettingsDep, UnitOfWork, require_roles
from geodispatch.api.security import ADMIN, DISPATCHER, NATIONAL, SUPERVISOR, Principal
from geodispatch.crew import roster
from geodispatch.crew.service import crew_view, current_assignment, incident_point, unit_json
from geodispatch.crew.stream import HEARTBEAT_S, RETRY_MS, CrewHub
from geodispatch.db import transaction
from geodispatch.dispatch import workflow
from geodispatch.dispatch.publish import publish_after_commit
from geodispatch.errors import ConfigurationError, NotFound, Unauthenticated
from geodispatch.geo import LatLng
from geodispatch.tracking import decoders
from geodispatch.tracking.http_ingest import IngestUnavailable, shared_ingest
from geodispatch.tracking.models import Unit
from geodispatch.tracking.reports import Rejected
from geodispatch.tracking.service import authenticate_device

STATIC_DIR = FilePath(__file__).resolve().parent / "static"
FILES = {"app.js": "text/javascript", "app.css": "text/css", "i18n.js": "text/javascript",
         "stream.js": "text/javascript", "alert.wav": "audio/wav",
         "officer.js": "text/javascript", "officer.css": "text/css",
         "sw.js": "text/javascript", "manifest.webmanifest": "application/manifest+json",
         "icon.svg": "image/svg+xml"}
STRAIGHT_LINE_SPEED_MPS = 11.0  # ~40 km/h over 1.3x the straight line, only without a graph

router = APIRouter(tags=["crew"])
RosterReader = Annotated[Principal, Depends(require_roles(DISPATCHER, SUPERVISOR, ADMIN,
                                                          NATIONAL))]
RosterKeeper = Annotated[Principal, Depends(require_roles(SUPERVISOR, ADMIN))]


@dataclass(frozen=True)
class CrewAuth:
    """Who a crew request comes from: the unit, and the officer's shift when signed in with one
    (``token_hash`` is what the stream watcher compares: the device token's hash, or the
    shift's)."""

    unit: Unit
    token_hash: str
    shift_id: int | None = None
    username: str | None = None


def _crew(request: Request, session: Session) -> CrewAuth:
    shift_token = request.headers.get("x-crew-shift")
    if shift_token:
        if len(shift_token) > 256:
            raise Unauthenticated("malformed shift token")
        shift, unit = roster.authenticate_shift(session=session, token=shift_token)
        return CrewAuth(unit, shift.token_hash, shift.id, shift.username)
    device = request.headers.get("x-device-id", "")
    token = request.headers.get("x-device-token")
    if not device or len(device) > 128:
        raise Unauthenticated("X-Crew-Shift, or X-Device-Id and X-Device-Token, are required")
    try:
        unit = authenticate_device(session=session, device_id=device, token=token)
    except NotFound:
        raise Unauthenticated("unknown device or wrong token") from None
    return CrewAuth(unit, unit.device_token_hash)


def _device_unit(request: Request, session: Session) -> Unit:
    return _crew(request, session).unit


class SessionBody(BaseModel):
    """A device's credentials, or an officer's own with the unit to sign on to."""

    device_id: str | None = Field(None, min_length=1, max_length=128)
    token: str | None = Field(None, min_length=1, max_length=256)
    username: str | None = Field(None, min_length=1, max_length=64)
    password: str | None = Field(None, min_length=1, max_length=256)
    call_sign: str | None = Field(None, min_length=1, max_length=32)

    @model_validator(mode="after")
    def _one_way(self) -> SessionBody:
        device = self.device_id is not None and self.token is not None
        officer = None not in (self.username, self.password, self.call_sign)
        if device == officer:
            raise ValueError("give device_id and token, or username, password and call_sign")
        return self


class SignOffBody(BaseModel):
    reason: str | None = Field(None, max_length=roster.MAX_REASON)


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


@router.post("/api/crew/session",
             summary="Crew sign-in: the unit's device credentials, or an officer's own for a unit")
def crew_session(body: SessionBody, request: Request, uow: UnitOfWork, settings: SettingsDep
                 ) -> dict[str, Any]:
    out: dict[str, Any] = {"tile_url": settings.tile_url,
                           "tile_attribution": settings.tile_attribution}
    if body.device_id is not None and body.token is not None:
        with transaction(uow) as tx:
            try:
                unit = authenticate_device(session=tx, device_id=body.device_id,
                                           token=body.token)
            except NotFound:
                raise Unauthenticated("unknown device or wrong token") from None
            return {**out, "unit": unit_json(unit), "shift": None}
    assert body.username and body.password and body.call_sign
    with transaction(uow) as tx:
        on = roster.sign_on(session=tx, username=body.username, password=body.password,
                            call_sign=body.call_sign)
        out |= {"unit": unit_json(on.unit),
                "shift": {**roster.shift_json(on.shift, full_name=on.user.full_name),
                          "token": on.token}}
    _ended(request, on.ended)
    return out


def _ended(request: Request, shift_ids: list[int]) -> None:
    hub: CrewHub | None = getattr(request.app.state, "crew_hub", None)
    if hub is not None and shift_ids:
        hub.shifts_ended(shift_ids)


@router.post("/api/crew/sign-off", summary="The officer signs off the unit (shift token)")
def crew_sign_off(request: Request, uow: UnitOfWork) -> dict[str, Any]:
    with transaction(uow) as tx:
        who = _crew(request, tx)
        if who.shift_id is None or who.username is None:
            raise Unauthenticated("signed in with the unit's device credentials: there is no "
                                  "shift to sign off")
        shift = roster.sign_off(session=tx, shift_id=who.shift_id, actor=who.username,
                                reason="signed off on the terminal")
        out = roster.shift_json(shift)
    _ended(request, [who.shift_id])
    return {"signed_off": out}


@router.get("/api/crew/roster", summary="The crew roster: who is in which car")
def crew_roster(principal: RosterReader, session: SessionDep,
                region: Annotated[str | None, Query(max_length=16)] = None,
                since: datetime | None = None) -> dict[str, Any]:
    return {"units": roster.roster(session=session, region=principal.scope(region),
                                   since=since)}


@router.post("/api/crew/roster/{shift_id}/sign-off",
             summary="A supervisor signs an officer off the unit")
def crew_roster_sign_off(shift_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
                         principal: RosterKeeper, request: Request, uow: UnitOfWork,
                         body: SignOffBody | None = None) -> dict[str, Any]:
    with transaction(uow) as tx:
        shift = roster.sign_off(session=tx, shift_id=shift_id, actor=principal.username,
                                reason=(body.reason if body else None),
                                region=principal.region)
        out = roster.shift_json(shift)
    _ended(request, [shift_id])
    return {"signed_off": out}


@router.post("/api/crew/position", summary="A GPS fix of a crew app signed in with a shift")
async def crew_position(request: Request) -> Response:
    state = request.app.state
    factory = state.session_factory

    def authenticate() -> Unit:
        with factory() as session:
            return _crew(request, session).unit

    unit = await run_in_threadpool(authenticate)
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k not in ("id", "token")]
    try:
        report = decoders.decode_osmand_query([("id", unit.device_id), *pairs],
                                              received_at=datetime.now(UTC))
    except Rejected as exc:
        return JSONResponse({"reason": exc.reason, "detail": exc.detail}, status_code=400)
    ingest = shared_ingest(state)
    try:
        outcome = await run_in_threadpool(ingest.ingest, unit, [report], members=1)
    except IngestUnavailable as exc:
        return JSONResponse({"reason": "unavailable", "detail": str(exc)[:120]},
                            status_code=503, headers={"Retry-After": "5"})
    if outcome.all_refused:
        _i, reason, detail = outcome.refused[0]
        return JSONResponse({"reason": reason, "detail": detail}, status_code=400)
    return JSONResponse({"stored": outcome.stored, "dropped": sorted(outcome.drops)})


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

    def authenticate() -> CrewAuth:
        # Its own short session: a stream must not hold a pooled connection while it is open.
        with factory() as session:
            return _crew(request, session)

    def screen(unit_id: int) -> dict[str, Any] | None:
        with factory() as session:
            unit = session.get(Unit, unit_id)
            return None if unit is None else crew_view(session=session, unit=unit)

    who = await hub.call(authenticate)
    unit_id = who.unit.id

    async def events() -> AsyncIterator[str]:
        # first: no change after this point is missed
        sub = hub.subscribe(unit_id, who.token_hash, who.shift_id)
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
                    yield _sse("revoked", {"reason": sub.ended, "detail": (
                        "signed off the unit: sign in again" if sub.ended == "signed_off"
                        else "the unit's device token no longer signs in: sign in again")})
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
