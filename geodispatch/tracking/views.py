"""HTTP endpoints of tracking: tracker ingest (OsmAnd, OwnTracks) and the unit/track queries.

Tracker ingest (no console login; the device authenticates itself):

``GET|POST /api/ingest/osmand``
    The OsmAnd protocol as the Traccar Client app sends it: query string (``?id=..&lat=..``),
    a form body, or the JSON body of Traccar Client 9. Set the app's server URL to
    ``https://host/api/ingest/osmand?token=<device token>`` (the app keeps that query and appends
    its own). The token may also come as HTTP Basic password or an ``X-Device-Token`` header.
    Answers: 200 stored / filtered (a valid message the app must not resend; ``X-Ingest-Dropped``
    names the filter), 200 for a message without a fix (heartbeat), 400 missing ``id`` / unknown
    device / undecodable (with the reason), 401 wrong token, 413 body too large.

``POST /api/ingest/status``
    A crew status (``{"status": "en_route"}`` or the bare word), device credentials as for OsmAnd;
    handed to ``geodispatch.dispatch.workflow.crew_status_report``.

``POST /api/ingest/owntracks``
    OwnTracks HTTP mode: HTTP Basic with the unit's device id (or OwnTracks user) and token; the
    ``X-Limit-U`` / ``X-Limit-D`` headers name user/device. Answers ``[]`` (the app's "delivered");
    401 with ``WWW-Authenticate: Basic`` for unknown devices or wrong tokens.

Console (JWT): ``GET /api/units`` (GeoJSON of the caller's region: latest position, status, stale),
``GET /api/units/{id}``, ``GET /api/units/{id}/track?start=&end=`` (GeoJSON for playback),
``POST /api/units`` (admin: returns the device token once), ``GET /api/tracking/drops``.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

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
from geodispatch.db import transaction
from geodispatch.errors import NotFound, PermissionDenied, Unauthenticated
from geodispatch.settings import Settings
from geodispatch.tracking import decoders
from geodispatch.tracking.fleet import LiveFleet, UnitState
from geodispatch.tracking.ingest import Ingestor
from geodispatch.tracking.models import Unit
from geodispatch.tracking.pipeline import record_drops
from geodispatch.tracking.reports import (
    TOO_LARGE,
    UNKNOWN_DEVICE,
    Rejected,
    Report,
    StatusReport,
)
from geodispatch.tracking.service import (
    authenticate_device,
    create_unit,
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
    basic = _basic(request)
    return (
        request.query_params.get("token")
        or request.headers.get("x-device-token")
        or (basic[1] if basic else None)
    )


def _reason(status: int, reason: str, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": "Ingest refused", "status": status,
         "reason": reason, "detail": detail},
        status_code=status, media_type="application/problem+json", headers=headers or None,
    )


class _HttpIngest:
    """The app's HTTP ingest state: one Ingestor (validator memory) behind a lock."""

    def __init__(self, request: Request) -> None:
        app = request.app
        self.settings: Settings = app.state.settings
        self.factory = app.state.session_factory
        fleet: LiveFleet | None = getattr(app.state, "fleet", None)
        self.ingestor = Ingestor(self.settings, fleet=fleet)
        self.lock = threading.Lock()
        self.loaded = False

    @classmethod
    def of(cls, request: Request) -> _HttpIngest:
        state = request.app.state
        inst: _HttpIngest | None = getattr(state, "tracking_http_ingest", None)
        if inst is None:
            inst = cls(request)
            state.tracking_http_ingest = inst
        return inst

    def count(self, reason: str, device: str, detail: str = "") -> None:
        log.warning("dropped HTTP message from device %s: %s %s", device, reason, detail)
        with transaction(self.factory) as session:
            record_drops(session=session, counts={reason: 1})

    def authenticate(self, device: str, token: str | None) -> Unit:
        with transaction(self.factory) as session:
            return authenticate_device(session=session, device_id=device, token=token)

    def apply_status(self, report: StatusReport) -> None:
        """Hand a crew status to the dispatch workflow in its own transaction; domain refusals
        (unknown status, forbidden transition) propagate to the error table (422 / 409)."""
        with transaction(self.factory) as session:
            self.ingestor.status_handler(session=session, unit_id=report.unit_id,
                                         status=report.status, at=report.at, source="http")
        if self.ingestor.fleet is not None and report.unit_id is not None:
            self.ingestor.fleet.set_status(report.unit_id, report.status)

    def ingest(self, unit: Unit, reports: list[Report]) -> Counter[str]:
        """Store reports of an authenticated unit; return drop counts."""
        for r in reports:
            if r.device not in (unit.device_id, unit.owntracks_user) and r.source != "owntracks":
                raise PermissionDenied(f"device {unit.device_id} may not report as {r.device}")
            r.unit_id = unit.id
        with self.lock:
            if not self.loaded:
                with self.factory() as session:
                    self.ingestor.load(session)
                self.loaded = True
            batch = self.ingestor.prepare(reports)
        try:
            with transaction(self.factory) as session:
                result = self.ingestor.write(session=session, batch=batch)
        except BaseException:
            self.ingestor.abandon(batch)  # not stored: the resent fix must be accepted again
            raise
        self.ingestor.publish(batch, result)
        counts = Counter(batch.drops.counts)
        if result.duplicates:
            counts["duplicate"] += result.duplicates
        return counts


async def _authenticated(
    state: _HttpIngest, device: str, token: str | None, *, owntracks: bool
) -> Unit | JSONResponse:
    try:
        return await run_in_threadpool(state.authenticate, device, token)
    except NotFound as exc:
        await run_in_threadpool(state.count, UNKNOWN_DEVICE, device)
        if owntracks:
            return _reason(401, UNKNOWN_DEVICE, str(exc), **{"WWW-Authenticate": "Basic"})
        return _reason(400, UNKNOWN_DEVICE, str(exc))
    except Unauthenticated as exc:
        await run_in_threadpool(state.count, UNAUTHENTICATED, device)
        return _reason(401, UNAUTHENTICATED, str(exc),
                       **({"WWW-Authenticate": "Basic"} if owntracks else {}))


def _ok(counts: Counter[str], body: bytes = b"") -> Response:
    headers = {"X-Ingest-Dropped": ",".join(sorted(counts))} if counts else None
    return Response(body, status_code=200, headers=headers,
                    media_type="application/json" if body else None)


# --- tracker ingest --------------------------------------------------------------------------


@router.api_route("/api/ingest/osmand", methods=["GET", "POST"], include_in_schema=True)
async def ingest_osmand(request: Request) -> Response:
    """OsmAnd protocol (Traccar Client): query string, form or JSON body."""
    state = _HttpIngest.of(request)
    now = datetime.now(UTC)
    try:
        body = await _read_body(request, state.settings.http_max_body)
    except _BodyTooLarge as exc:
        await run_in_threadpool(state.count, TOO_LARGE, request.query_params.get("id", "?"))
        return _reason(413, TOO_LARGE, str(exc))
    ctype = request.headers.get("content-type", "")
    device = "?"
    try:
        if body and ("json" in ctype or body.lstrip()[:1] in (b"{", b"[")):
            data = decoders.parse_json(body)
            device = decoders.osmand_json_device(data)
            reports: list[Report] = list(decoders.decode_osmand_json(data, received_at=now))
        else:
            pairs = list(request.query_params.multi_items())
            if body:
                from urllib.parse import parse_qsl

                pairs += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
            device = decoders.osmand_device(dict(pairs))
            reports = [decoders.decode_osmand_query(pairs, received_at=now)]
    except Rejected as exc:
        await run_in_threadpool(state.count, exc.reason, device, exc.detail)
        return _reason(400, exc.reason, exc.detail or exc.reason)
    unit = await _authenticated(state, device, _token(request), owntracks=False)
    if isinstance(unit, JSONResponse):
        return unit
    counts = await run_in_threadpool(state.ingest, unit, reports)
    return _ok(counts)


@router.post("/api/ingest/owntracks")
async def ingest_owntracks(request: Request) -> Response:
    """OwnTracks HTTP mode: the app's JSON message, HTTP Basic device credentials; answers []."""
    state = _HttpIngest.of(request)
    now = datetime.now(UTC)
    basic = _basic(request)
    user = request.headers.get("x-limit-u") or (basic[0] if basic else None)
    dev = request.headers.get("x-limit-d") or "phone"
    login = basic[0] if basic else user
    if not login:
        await run_in_threadpool(state.count, UNAUTHENTICATED, "?")
        return _reason(401, UNAUTHENTICATED, "HTTP Basic credentials are required",
                       **{"WWW-Authenticate": "Basic"})
    try:
        body = await _read_body(request, state.settings.http_max_body)
    except _BodyTooLarge as exc:
        await run_in_threadpool(state.count, TOO_LARGE, login)
        return _reason(413, TOO_LARGE, str(exc))
    unit = await _authenticated(state, login, _token(request), owntracks=True)
    if isinstance(unit, JSONResponse):
        return unit
    try:
        reports = decoders.decode_owntracks(body, device=f"{user or login}/{dev}", received_at=now)
    except Rejected as exc:
        await run_in_threadpool(state.count, exc.reason, login, exc.detail)
        return _reason(400, exc.reason, exc.detail or exc.reason)
    counts = await run_in_threadpool(state.ingest, unit, reports)
    return _ok(counts, b"[]")


@router.post("/api/ingest/status")
async def ingest_status(request: Request) -> Response:
    """A crew status from a terminal without MQTT: ``{"status": ..., "t": ...}`` or a bare word,
    device id and token as for OsmAnd (``?id=&token=`` or HTTP Basic). 200 applied, 400 bad
    message or unknown device, 401 wrong token, 409 a transition the workflow forbids."""
    state = _HttpIngest.of(request)
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
        report = decoders.decode_status(body, device=device, received_at=datetime.now(UTC))
    except Rejected as exc:
        await run_in_threadpool(state.count, exc.reason, device, exc.detail)
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


@router.get("/api/tracking/drops")
def ingest_drops(
    session: SessionDep,
    principal: Annotated[Principal, Depends(require_roles(SUPERVISOR, ADMIN, NATIONAL))],
) -> dict[str, int]:
    """Dropped ingest messages per reason."""
    return drop_counts(session=session)

