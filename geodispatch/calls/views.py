"""HTTP endpoints of calls: the phone-system webhook and AML intake, and the console's views.

Phone systems authenticate with the centre's shared secret (``X-Phone-System-Token`` or
``Authorization: Bearer``; ``GEODISPATCH_CALLS_WEBHOOK_TOKEN``), or, while that is empty, by
calling from this machine. Bad input is always a 4xx with the reason; a refused location message
is stored in ``call_location_rejects`` (the 422 is returned after the rejection commits).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from geodispatch.api.deps import SessionDep, SettingsDep, require_roles
from geodispatch.api.errors import problem
from geodispatch.api.security import ADMIN, CALL_TAKER, DISPATCHER, SUPERVISOR, Principal
from geodispatch.calls import service
from geodispatch.calls.locations import Refused, receive_aml_https, receive_aml_sms, receive_pidf
from geodispatch.calls.models import Call, CallCallback, CallLocation, CallLocationReject
from geodispatch.calls.present import call_json, location_json
from geodispatch.calls.sip import parse_batch, parse_report, record_reports
from geodispatch.errors import Conflict, InvalidInput, Unauthenticated
from geodispatch.settings import Settings

router = APIRouter(tags=["calls"])

Operators = Annotated[Principal, Depends(require_roles(CALL_TAKER, DISPATCHER, SUPERVISOR,
                                                       ADMIN))]
Supervisors = Annotated[Principal, Depends(require_roles(SUPERVISOR, ADMIN))]
WEBHOOK_EVENTS = ("ring", "answer", "hangup", "transfer", "location")
_MAX_BODY = 256 * 1024


def phone_system(request: Request) -> str:
    """The phone system's credential: the shared token, or loopback while none is set."""
    settings: Settings = request.app.state.settings
    token = settings.calls_webhook_token
    given = request.headers.get("x-phone-system-token") or ""
    auth = request.headers.get("authorization") or ""
    if not given and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if token:
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Unauthenticated("phone system token missing or wrong")
        return "phone"
    host = request.client.host if request.client else ""
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise Unauthenticated("set GEODISPATCH_CALLS_WEBHOOK_TOKEN to accept phone systems "
                              "from other hosts")
    return "phone"


PhoneSystem = Annotated[str, Depends(phone_system)]


def _str(body: dict[str, Any], key: str, limit: int, required: bool = False) -> str | None:
    v = body.get(key)
    if v is None or v == "":
        if required:
            raise InvalidInput(f"{key} is required")
        return None
    if not isinstance(v, str | int) or isinstance(v, bool):
        raise InvalidInput(f"{key} must be a string")
    s = str(v)
    if len(s) > limit or "\x00" in s:
        raise InvalidInput(f"{key} is longer than {limit} characters or holds NUL")
    return s


def _time(body: dict[str, Any]) -> datetime | None:
    raw = _str(body, "at", 64)
    if raw is None:
        return None
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"at is not an ISO-8601 time: {raw[:40]!r}") from None
    if t.tzinfo is None:
        raise InvalidInput("at must carry a time zone (Z or +hh:mm)")
    return t


async def raw_body(request: Request) -> bytes:
    """The request body, read on the event loop so that the endpoint itself can be a plain
    ``def``: its database work then runs in the thread pool. (An ``async def`` endpoint doing
    blocking database calls ran them on the event loop: one call waiting for a row lock held by
    a request whose commit was still to be scheduled froze the whole server.)"""
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        raise InvalidInput(f"body larger than {_MAX_BODY} bytes")
    return raw


RawBody = Annotated[bytes, Depends(raw_body)]


def _json_body(raw: bytes) -> dict[str, Any]:
    if len(raw) > _MAX_BODY:
        raise InvalidInput(f"body larger than {_MAX_BODY} bytes")
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("the body is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    return body


@router.post("/api/calls/events", summary="Phone-system webhook: a call's signalling")
def webhook(raw: RawBody, who: PhoneSystem, session: SessionDep,
            settings: SettingsDep) -> Any:
    """``{"event": "ring"|"answer"|"hangup"|"transfer"|"location", "call_id": "...",
    "from": "+380...", "line": "102", "at": "ISO-8601", "operator": "...", "to": "...",
    "reason": "...", "pidf_lo": "<presence ...>"}``; see the README for examples.

    A report about a call the centre has not seen ring (its ring was lost) creates the call
    first, so no call is ever lost."""
    body = _json_body(raw)
    event = _str(body, "event", 16, required=True)
    if event not in WEBHOOK_EVENTS:
        raise InvalidInput(f"event must be one of {', '.join(WEBHOOK_EVENTS)}")
    ext = _str(body, "call_id", 255, required=True)
    source = _str(body, "source", 16) or "webhook"
    at = _time(body)
    caller = _str(body, "from", 128)
    line = _str(body, "line", 64)
    assert ext is not None
    call, created = service.ring(session=session, source=source, external_id=ext,
                                 caller=caller, line=line, at=at, actor=who, settings=settings)
    pidf = _str(body, "pidf_lo", 64 * 1024)
    location_error = None
    if pidf:
        try:
            receive_pidf(session=session, body=pidf, phone=call.caller_phone, call=call,
                         settings=settings)
        except Refused as exc:
            location_error = exc.reason  # the call is kept; the refusal is stored
    if event in ("answer", "hangup", "transfer"):
        call = service.get_call(session=session, call_id=call.id, lock=True)
    if event == "answer":
        service.answer(session=session, call=call, operator=_str(body, "operator", 64) or who,
                       at=at, actor=who)
    elif event == "hangup":
        service.hang_up(session=session, call=call, at=at, actor=who,
                        reason=_str(body, "reason", 200) or "")
    elif event == "transfer":
        service.transfer(session=session, call=call, to=_str(body, "to", 128) or "?", at=at,
                         actor=who)
    out = {"call": call_json(session, call), "created": created}
    if location_error:
        out["location_refused"] = location_error
    return out


def edge_session(request: Request) -> Iterator[Session]:
    """The request's transaction on the SIP edge's own connections (``calls.lifespan``)."""
    factory = getattr(request.app.state, "calls_edge_factory", None)
    with (factory or request.app.state.session_factory)() as session, session.begin():
        yield session


#: As SessionDep: committed before the response is sent.
EdgeSession = Annotated[Session, Depends(edge_session, scope="function")]


@router.post("/api/calls/sip", summary="The SIP edge (Kamailio) reports a call's signalling")
def sip_report(request: Request, raw: RawBody, who: PhoneSystem, session: EdgeSession,
               settings: SettingsDep) -> Any:
    """One report. Query ``event`` (invite | answered | cancel | bye | failure), ``call_id``
    (SIP Call-ID), ``from``, ``line`` (R-URI user), ``operator``, ``code``, ``at`` (epoch
    seconds when the edge saw it); the body is the INVITE's body as it is (a PIDF-LO location
    in it is read) or ``-``. The project's own Kamailio posts batches instead (below)."""
    report = parse_report(request.query_params, raw.decode("utf-8", "replace"))
    answer = record_reports(session=session, reports=[report], settings=settings)[0]
    if not answer["ok"]:
        raise Conflict(answer["error"])
    call = service.get_call(session=session, call_id=answer["call_id"])
    out: dict[str, Any] = {"created": answer["created"], "call": call_json(session, call)}
    if "location_refused" in answer:
        out["location_refused"] = answer["location_refused"]
    return out


@router.post("/api/calls/sip/batch", summary="The SIP edge reports a batch of signalling")
def sip_batch(raw: RawBody, who: PhoneSystem, session: EdgeSession,
              settings: SettingsDep) -> dict[str, Any]:
    """The body holds one report a line, each the URL-encoded fields of ``/api/calls/sip`` with
    the INVITE's body hex-encoded as ``body_hex``. Answered 200 with one result a line (a report
    the project cannot use is answered ``ok: false`` with the reason, not retried by the edge);
    a body without one report in it is refused (422)."""
    reports = parse_batch(raw.decode("utf-8", "replace"))
    errors = [r for r in reports if isinstance(r, InvalidInput)]
    if len(errors) == len(reports):  # nothing the edge would send: refused (and not retried)
        raise InvalidInput(f"no report in the batch ({errors[0] if errors else 'empty'})")
    results = record_reports(session=session, reports=reports, settings=settings)
    return {"results": results, "recorded": sum(1 for r in results if r.get("created"))}


@router.post("/api/calls/aml/sms", summary="AML SMS (ETSI TS 103 625) from the SMS centre")
def aml_sms(raw: RawBody, who: PhoneSystem, session: SessionDep,
            settings: SettingsDep) -> Any:
    """``{"from": "+380...", "text": "A\\"ML=1;lt=...;ml=..."}``; a refused message is stored
    with its reason and answered 422."""
    body = _json_body(raw)
    sender = _str(body, "from", 64)
    text_ = _str(body, "text", 2000, required=True)
    assert text_ is not None
    try:
        loc = receive_aml_sms(session=session, sender=sender, text=text_, settings=settings)
    except Refused as exc:
        return problem(422, "AML refused", exc.reason, reject_id=exc.reject_id)
    return {"location": location_json(loc)}


@router.post("/api/calls/aml/https", summary="AML HTTPS form POST (ETSI TS 103 625)")
def aml_https(raw: RawBody, who: PhoneSystem, session: SessionDep,
              settings: SettingsDep) -> Any:
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise InvalidInput("the form is not UTF-8") from None
    form = dict(pairs)
    if len(form) != len(pairs):
        return problem(422, "AML refused", "a field is given twice")
    try:
        loc = receive_aml_https(session=session, form=form, settings=settings)
    except Refused as exc:
        return problem(422, "AML refused", exc.reason, reject_id=exc.reject_id)
    return JSONResponse({"location": location_json(loc)})


# --- the console --------------------------------------------------------------------------------

@router.get("/api/calls", summary="Calls (newest first), e.g. ?state=ringing,answered")
def list_calls(principal: Operators, session: SessionDep, state: str | None = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict[str, Any]:
    stmt = select(Call).order_by(Call.id.desc()).limit(limit)
    if state:
        stmt = stmt.where(Call.state.in_(state.split(",")))
    calls = list(session.execute(stmt).scalars())
    latest = service.latest_locations(session=session, call_ids=[c.id for c in calls])
    return {"items": [call_json(session, c, latest=latest) for c in calls]}


@router.get("/api/calls/stats", summary="The live queue and answering figures")
def call_stats(principal: Operators, session: SessionDep, settings: SettingsDep,
               since: datetime | None = None) -> dict[str, Any]:
    return service.stats(session=session, since=since, settings=settings).as_dict()


@router.get("/api/calls/shift-report", summary="End-of-shift report: who left a call without "
                                               "an outcome")
def shift_report(principal: Supervisors, session: SessionDep, settings: SettingsDep,
                 start: datetime, end: datetime) -> dict[str, Any]:
    return service.shift_report(session=session, start=start, end=end, settings=settings)


@router.get("/api/calls/callbacks", summary="Abandoned calls to call back")
def list_callbacks(principal: Operators, session: SessionDep,
                   status: str = "pending") -> dict[str, Any]:
    rows = session.execute(select(CallCallback, Call).join(Call, Call.id == CallCallback.call_id)
                           .where(CallCallback.status.in_(status.split(",")))
                           .order_by(CallCallback.created_at)).all()
    return {"items": [{"id": cb.id, "call_id": cb.call_id, "phone": cb.phone,
                       "status": cb.status, "created_at": cb.created_at.isoformat(),
                       "ring_at": c.ring_at.isoformat(), "sms_id": cb.sms_id,
                       "sms_skipped": cb.sms_skipped, "done_by": cb.done_by, "note": cb.note}
                      for cb, c in rows]}


class CallbackDone(BaseModel):
    status: str = Field(..., pattern="^(done|failed)$")
    note: str = Field("", max_length=2000)


@router.post("/api/calls/callbacks/{callback_id}", summary="A callback was made (done/failed)")
def post_callback(callback_id: int, body: CallbackDone, principal: Operators,
                  session: SessionDep) -> dict[str, Any]:
    cb = service.complete_callback(session=session, callback_id=callback_id, status=body.status,
                                   actor=principal.username, note=body.note)
    return {"id": cb.id, "status": cb.status}


@router.get("/api/calls/locations/unmatched", summary="Locations no call has claimed")
def unmatched(principal: Operators, session: SessionDep,
              limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict[str, Any]:
    rows = session.execute(select(CallLocation).where(CallLocation.call_id.is_(None))
                           .order_by(CallLocation.id.desc()).limit(limit)).scalars()
    return {"items": [location_json(x) for x in rows]}


@router.get("/api/calls/locations/rejects", summary="Refused location messages and why")
def rejects(principal: Supervisors, session: SessionDep,
            limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict[str, Any]:
    rows = session.execute(select(CallLocationReject).order_by(CallLocationReject.id.desc())
                           .limit(limit)).scalars()
    return {"items": [{"id": r.id, "kind": r.kind, "reason": r.reason,
                       "received_at": r.received_at.isoformat(), "raw": r.raw} for r in rows]}


@router.get("/api/calls/{call_id}", summary="One call with its events and locations")
def get_call(call_id: int, principal: Operators, session: SessionDep) -> dict[str, Any]:
    return call_json(session, service.get_call(session=session, call_id=call_id), events=True)


@router.post("/api/calls/{call_id}/answer", summary="Answer a ringing call from the console")
def answer_call(call_id: int, principal: Operators, session: SessionDep) -> dict[str, Any]:
    call = service.get_call(session=session, call_id=call_id, lock=True)
    service.answer(session=session, call=call, operator=principal.username)
    return call_json(session, call)


class OutcomeBody(BaseModel):
    outcome: str = Field(..., max_length=24)
    incident_reference: str | None = Field(None, max_length=32)
    incident_id: int | None = None
    transferred_to: str | None = Field(None, max_length=128)
    note: str = Field("", max_length=2000)


@router.post("/api/calls/{call_id}/outcome", summary="What an answered call was")
def post_outcome(call_id: int, body: OutcomeBody, principal: Operators,
                 session: SessionDep) -> dict[str, Any]:
    call = service.get_call(session=session, call_id=call_id, lock=True)
    service.set_outcome(session=session, call=call, outcome=body.outcome,
                        actor=principal.username, incident_reference=body.incident_reference,
                        incident_id=body.incident_id, transferred_to=body.transferred_to,
                        note=body.note)
    return call_json(session, call)


@router.post("/api/calls/{call_id}/close", summary="Close a call (refused without an outcome)")
def post_close(call_id: int, principal: Operators, session: SessionDep) -> dict[str, Any]:
    call = service.get_call(session=session, call_id=call_id, lock=True)
    service.close_call(session=session, call=call, actor=principal.username)
    return call_json(session, call)


@router.get("/api/calls/{call_id}/nearby", summary="Open incidents this call may be a second "
                                                   "report of (duplicate check)")
def nearby(call_id: int, principal: Operators, session: SessionDep, settings: SettingsDep,
           lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
           lng: Annotated[float | None, Query(ge=-180, le=180)] = None,
           category: Annotated[str | None, Query(max_length=48)] = None) -> dict[str, Any]:
    """Without ``lat``/``lng`` the call's own newest location (AML, PIDF-LO) is used; the
    call's number finds the same caller's open incidents wherever they are."""
    call = service.get_call(session=session, call_id=call_id)
    if lat is None and lng is None:
        loc = service.latest_location(session=session, call_id=call.id)
        if loc is not None:
            lat, lng = loc.lat, loc.lng
    items = service.nearby_for_call(session=session, call=call, lat=lat, lng=lng,
                                    category=category or None, region=principal.region,
                                    settings=settings)
    return {"radius_m": settings.calls_nearby_radius_m,
            "window_s": settings.calls_nearby_window_s,
            "lat": lat, "lng": lng, "items": [n.as_dict() for n in items]}
