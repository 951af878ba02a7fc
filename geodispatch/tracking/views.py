"""HTTP endpoints of tracking: tracker ingest (OsmAnd, OwnTracks) and the unit/track queries.

Tracker ingest (no console login; the device authenticates itself):

``GET|POST /api/ingest/osmand``
    The OsmAnd protocol as the Traccar Client app sends it: query string (``?id=..&lat=..``),
    a form body, or the JSON body of Traccar Client 9. Set the app's server URL to
    ``https://host/api/ingest/osmand?token=<device token>`` (the app keeps that query and appends
    its own). The token may also come as an ``X-Device-Token`` header, ``Authorization: Bearer``
    or the HTTP Basic password; the access log never shows ``?token=``.
    Answers: 200 stored / filtered (a valid message the app must not resend; ``X-Ingest-Dropped``
    names the filter), 200 for a message without a fix (heartbeat), 400 missing ``id`` / unknown
    device / undecodable / unstorable (NUL) / implausible (with the reason and a short detail),
    401 wrong token, 413 body too large, 503 the database cannot store now (resend later). A
    JSON body whose ``location`` is a list is stored member by member: 200 with
    ``{"stored": n, "rejected": [{"index", "reason", "detail"}]}`` when any member was valid,
    400 with the same list under ``members`` when none was.

``POST /api/ingest/status``
    A crew status (``{"status": "en_route"}`` or the bare word), device credentials as for OsmAnd;
    handed to ``geodispatch.dispatch.workflow.crew_status_report``.

``POST /api/ingest/owntracks``
    OwnTracks HTTP mode: HTTP Basic with the unit's device id (or OwnTracks user) and token; the
    ``X-Limit-U`` / ``X-Limit-D`` headers name user/device. Answers ``[]`` (the app's "delivered");
    an array of messages is stored member by member, the refused ones named in
    ``X-Ingest-Rejected: <index>:<reason>,...`` (400 when all are refused); 401 with
    ``WWW-Authenticate: Basic`` for unknown devices or wrong tokens.

Console (JWT): ``GET /api/units`` (GeoJSON of the caller's region: latest position, status, stale),
``GET /api/units/{id}``, ``GET /api/units/{id}/track?start=&end=`` (GeoJSON for playback),
``POST /api/units`` (admin: returns the device token once), ``POST /api/units/{id}/deactivate``
(admin), ``GET /api/tracking/drops``.
"""

from __future__ import annotations

import base64
import functools
import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from geodispatch.api.deps import SessionDep, SettingsDep, require_roles
from geodispatch.api.security import (
    ADMIN,
    ANALYST,
    CALL_TAKER,
    DISPATCHER,
    NATIONAL,
    SUPERVISOR,
    Principal,
)
from geodispatch.errors import NotFound, PermissionDenied, Unauthenticated
from geodispatch.settings import Settings
from geodispatch.tracking import decoders
from geodispatch.tracking.fleet import LiveFleet, UnitState
from geodispatch.tracking.http_ingest import (
    HttpIngest,
    IngestUnavailable,
    check_device,
    clip,
    shared_ingest,
)
from geodispatch.tracking.models import Unit
from geodispatch.tracking.reports import (
    TOO_LARGE,
    UNKNOWN_DEVICE,
    Rejected,
    Report,
)
from geodispatch.tracking.service import (
    create_unit,
    deactivate_unit,
    drop_counts,
    track_geojson,
)

log = logging.getLogger(__name__)

router = APIRouter(tags=["tracking"])

VIEWERS = (CALL_TAKER, DISPATCHER, SUPERVISOR, ANALYST, ADMIN, NATIONAL)
Viewer = Annotated[Principal, Depends(require_roles(*VIEWERS))]
Admin = Annotated[Principal, Depends(require_roles(ADMIN))]
UNAUTHENTICATED = "unauthenticated"


# --- helpers ---------------------------------------------------------------------------------


class _BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge(f"body of {declared} bytes exceeds {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge(f"body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, pw = base64.b64decode(value).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, pw


def _token(request: Request) -> str | None:
    """The device token: ``X-Device-Token``, ``Authorization: Bearer``, the HTTP Basic password,
    or (for apps that can only set a URL, like Traccar Client) ``?token=``. The access log
    never shows the last one (``geodispatch.api.logs``)."""
    basic = _basic(request)
    scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
    return (
        request.headers.get("x-device-token")
        or (bearer.strip() if scheme.lower() == "bearer" and bearer.strip() else None)
        or (basic[1] if basic else None)
        or request.query_params.get("token")
    )


def _reason(status: int, reason: str, detail: str, *, members: list[dict[str, Any]] | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": "Ingest refused", "status": status,
                            "reason": reason, "detail": clip(detail)}
    if members is not None:
        body["members"] = members
    return JSONResponse(body, status_code=status, media_type="application/problem+json",
                        headers=headers or None)


def _state(request: Request) -> HttpIngest:
    return shared_ingest(request.app.state)


async def _authenticated(
    state: HttpIngest, device: str, token: str | None, *, owntracks: bool
) -> Unit | JSONResponse:
    try:
        return await run_in_threadpool(state.authenticate, device, token)
    except NotFound as exc:
        await run_in_threadpool(state.count, UNKNOWN_DEVICE, device)
        if owntracks:
            return _reason(401, UNKNOWN_DEVICE, str(exc), headers={"WWW-Authenticate": "Basic"})
        return _reason(400, UNKNOWN_DEVICE, str(exc))
    except Unauthenticated as exc:
        await run_in_threadpool(state.count, UNAUTHENTICATED, device)
        return _reason(401, UNAUTHENTICATED, str(exc),
                       headers={"WWW-Authenticate": "Basic"} if owntracks else None)


async def _store(state: HttpIngest, unit: Unit, items: list[Report | Rejected], *,
                 members: int, batched: bool, owntracks: bool) -> Response:
    """Store the members and answer: 200 when anything was valid (stored or filtered; refused
    members listed per index), 400 when every member was refused, 503 during an outage."""
    try:
        outcome = await run_in_threadpool(
            functools.partial(state.ingest, unit, items, members=members))
    except IngestUnavailable as exc:
        return _reason(503, "unavailable", f"the database cannot store fixes now ({exc}); "
                       "resend later", headers={"Retry-After": "5"})
    refused = outcome.refused
    if outcome.all_refused:
        _i, reason, detail = refused[0]
        return _reason(400, reason, detail if not batched else f"every member was refused "
                       f"(first: {detail})", members=outcome.members_json() if batched else None)
    headers: dict[str, str] = {}
    if outcome.drops:
        headers["X-Ingest-Dropped"] = ",".join(sorted(outcome.drops))
    if refused:
        headers["X-Ingest-Rejected"] = clip(",".join(f"{i}:{r}" for i, r, _d in refused), 400)
    if owntracks:
        return Response(b"[]", status_code=200, headers=headers, media_type="application/json")
    if batched or outcome.rejected:
        return JSONResponse({"stored": outcome.stored, "rejected": outcome.members_json()},
                            headers=headers)
    return Response(status_code=200, headers=headers or None)


def _refused(state: HttpIngest, exc: Rejected, device: str) -> Any:
    return run_in_threadpool(state.count, exc.reason, device, exc.detail)


# --- tracker ingest --------------------------------------------------------------------------


@router.api_route("/api/ingest/osmand", methods=["GET", "POST"], include_in_schema=True)
async def ingest_osmand(request: Request) -> Response:
    """OsmAnd protocol (Traccar Client): query string, form or JSON body (``location`` may be a
    list: each member is stored or reported on its own)."""
    state = _state(request)
    now = datetime.now(UTC)
    try:
        body = await _read_body(request, state.settings.http_max_body)
    except _BodyTooLarge as exc:
        await run_in_threadpool(state.count, TOO_LARGE, request.query_params.get("id", "?"))
        return _reason(413, TOO_LARGE, str(exc))
    ctype = request.headers.get("content-type", "")
    device = "?"
    batched = False
    try:
        if body and ("json" in ctype or body.lstrip()[:1] in (b"{", b"[")):
            data = decoders.parse_json(body)
            device = check_device(decoders.osmand_json_device(data))
            items: list[Report | Rejected] = list(
                decoders.decode_osmand_json_items(data, received_at=now))
            batched = isinstance(data.get("location"), list)
            members = len(data["location"]) if batched else 1
        else:
            pairs = list(request.query_params.multi_items())
            if body:
                pairs += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
            device = check_device(decoders.osmand_device(dict(pairs)))
            items = [decoders.decode_osmand_query(pairs, received_at=now)]
            members = 1
    except Rejected as exc:
        await _refused(state, exc, device)
        return _reason(400, exc.reason, exc.detail or exc.reason)
    unit = await _authenticated(state, device, _token(request), owntracks=False)
    if isinstance(unit, JSONResponse):
        return unit
    return await _store(state, unit, items, members=members, batched=batched, owntracks=False)


@router.post("/api/ingest/owntracks")
async def ingest_owntracks(request: Request) -> Response:
    """OwnTracks HTTP mode: the app's JSON message (or an array of them), HTTP Basic device
    credentials; answers ``[]`` (refused members are named in ``X-Ingest-Rejected``)."""
    state = _state(request)
    now = datetime.now(UTC)
    basic = _basic(request)
    user = request.headers.get("x-limit-u") or (basic[0] if basic else None)
    dev = request.headers.get("x-limit-d") or "phone"
    login = basic[0] if basic else user
    if not login:
        await run_in_threadpool(state.count, UNAUTHENTICATED, "?")
        return _reason(401, UNAUTHENTICATED, "HTTP Basic credentials are required",
                       headers={"WWW-Authenticate": "Basic"})
    try:
        check_device(login)
        body = await _read_body(request, state.settings.http_max_body)
    except Rejected as exc:
        await _refused(state, exc, login)
        return _reason(400, exc.reason, exc.detail)
    except _BodyTooLarge as exc:
        await run_in_threadpool(state.count, TOO_LARGE, login)
        return _reason(413, TOO_LARGE, str(exc))
    unit = await _authenticated(state, login, _token(request), owntracks=True)
    if isinstance(unit, JSONResponse):
        return unit
    try:
        data = decoders.parse_json(body)
        items = decoders.owntracks_items(data, device=f"{clip(user or login, 64)}/{clip(dev, 64)}",
                                         received_at=now)
    except Rejected as exc:
        await _refused(state, exc, login)
        return _reason(400, exc.reason, exc.detail or exc.reason)
    batched = isinstance(data, list)
    return await _store(state, unit, items, members=len(data) if batched else 1,
                        batched=batched, owntracks=True)


@router.post("/api/ingest/status")
async def ingest_status(request: Request) -> Response:
    """A crew status from a terminal without MQTT: ``{"status": ..., "t": ...}`` or a bare word,
    device id and token as for OsmAnd (``?id=`` and a token header, HTTP Basic, or ``?token=``).
    200 applied, 400 bad message or unknown device, 401 wrong token, 409 a transition the
    workflow forbids."""
    state = _state(request)
    basic = _basic(request)
    device = request.query_params.get("id") or (basic[0] if basic else "")
    try:
        body = await _read_body(request, state.settings.http_max_body)
    except _BodyTooLarge as exc:
        await run_in_threadpool(state.count, TOO_LARGE, device or "?")
        return _reason(413, TOO_LARGE, str(exc))
    if not device:
        return _reason(400, "missing_field", "id (device id) is required")
    try:
        check_device(device)
        report = decoders.decode_status(body, device=device, received_at=datetime.now(UTC))
    except Rejected as exc:
        await _refused(state, exc, device)
        return _reason(400, exc.reason, exc.detail or exc.reason)
    unit = await _authenticated(state, device, _token(request), owntracks=False)
    if isinstance(unit, JSONResponse):
        return unit
    report.unit_id = unit.id
    report.source = "http"
    await run_in_threadpool(state.apply_status, report)
    return Response(status_code=200)


# --- console ---------------------------------------------------------------------------------


def _visible_unit(session: SessionDep, principal: Principal, unit_id: int) -> Unit:
    unit = session.get(Unit, unit_id)
    if unit is None or not principal.can_see_region(unit.region):
        raise NotFound(f"unit {unit_id} not found")
    return unit


def _fleet_states(request: Request, session: SessionDep, settings: Settings) -> list[UnitState]:
    fleet: LiveFleet | None = getattr(request.app.state, "fleet", None)
    if fleet is None:
        fleet = LiveFleet(settings)
        fleet.refresh(session)
    return fleet.snapshot()


@router.get("/api/units")
def list_units(
    request: Request, session: SessionDep, settings: SettingsDep, principal: Viewer,
    status: str | None = None, region: str | None = None,
) -> dict[str, Any]:
    """Every unit of the caller's region as GeoJSON: latest position, status, stale flag."""
    features = [
        s.to_feature()
        for s in _fleet_states(request, session, settings)
        if principal.can_see_region(s.region)
        and (status is None or s.status == status)
        and (region is None or s.region == region)
    ]
    return {"type": "FeatureCollection", "features": features}


@router.get("/api/units/{unit_id}")
def get_unit_view(
    unit_id: int, request: Request, session: SessionDep, settings: SettingsDep, principal: Viewer
) -> dict[str, Any]:
    """One unit as a GeoJSON Feature."""
    _visible_unit(session, principal, unit_id)
    for s in _fleet_states(request, session, settings):
        if s.unit_id == unit_id:
            return s.to_feature()
    raise NotFound(f"unit {unit_id} not found")


@router.get("/api/units/{unit_id}/track")
def unit_track(
    unit_id: int, session: SessionDep, principal: Viewer,
    start: Annotated[datetime | None, Query(description="ISO-8601; default end - 1 h")] = None,
    end: Annotated[datetime | None, Query(description="ISO-8601; default now")] = None,
) -> dict[str, Any]:
    """The unit's fixes between two times as GeoJSON (a LineString plus one Point per fix)."""
    _visible_unit(session, principal, unit_id)
    end = end or datetime.now(UTC)
    start = start or end - timedelta(hours=1)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    return track_geojson(session=session, unit_id=unit_id, start=start, end=end)


class UnitCreate(BaseModel):
    """A new unit; the response carries its device token once."""

    call_sign: str = Field(min_length=1, max_length=32)
    kind: str = "patrol_car"
    capabilities: list[str] = Field(default_factory=list)
    region: str = Field(min_length=1, max_length=16)
    home_zone_id: int | None = None
    device_id: str | None = None
    owntracks_user: str | None = None
    owntracks_device: str | None = None


@router.post("/api/units", status_code=201)
def create_unit_view(
    data: UnitCreate, session: SessionDep, settings: SettingsDep, principal: Admin
) -> dict[str, Any]:
    """Create a unit (admin); the device token is in this response only."""
    if not principal.can_see_region(data.region):
        raise PermissionDenied(f"region {data.region} is not yours")
    unit, token = create_unit(
        session=session, call_sign=data.call_sign, kind=data.kind,
        capabilities=data.capabilities, region=data.region, home_zone_id=data.home_zone_id,
        device_id=data.device_id, owntracks_user=data.owntracks_user,
        owntracks_device=data.owntracks_device, settings=settings,
    )
    return {"id": unit.id, "call_sign": unit.call_sign, "device_id": unit.device_id,
            "token": token}


@router.post("/api/units/{unit_id}/deactivate")
def deactivate_unit_view(
    unit_id: int, session: SessionDep, settings: SettingsDep, principal: Admin
) -> dict[str, Any]:
    """Take a unit out of service (admin): its device token and broker logins stop working at
    once; `geodispatch units activate` brings it back with a new token."""
    unit = _visible_unit(session, principal, unit_id)
    deactivate_unit(session=session, unit=unit, settings=settings)
    return {"id": unit.id, "call_sign": unit.call_sign, "active": False}


@router.get("/api/tracking/drops")
def ingest_drops(
    session: SessionDep,
    principal: Annotated[Principal, Depends(require_roles(SUPERVISOR, ADMIN, NATIONAL))],
) -> dict[str, int]:
    """Dropped ingest messages per reason."""
    return drop_counts(session=session)

