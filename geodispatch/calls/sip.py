"""What the SIP edge (Kamailio) reports about calls, one report or a batch of them at a time.

Kamailio never waits for the project: it queues each call's signalling in memory and its
reporter processes post what has queued, a batch at a time, to ``POST /api/calls/sip/batch``
(one report per line, ``event=invite&call_id=...&at=<epoch s>&...``: fields escaped as SIP
parameters are, i.e. ``%XX`` and a literal ``+``; the INVITE's body hex-encoded as ``body_hex``).
:func:`record_reports` writes a batch in one transaction: every call that rings in it is
recorded first, together (:func:`geodispatch.calls.service.ring_many`, a few statements for the
whole batch), then each report is applied in order in a savepoint of its own, so one report
the project cannot use is answered as such and never holds up the queue behind it.

``at`` is when Kamailio saw the message, so a report delivered late (the project was down, the
queue was long) still gives the call its real ring and hang-up times.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from sqlalchemy.orm import Session

from geodispatch.calls import service
from geodispatch.calls.locations import Refused, receive_pidf
from geodispatch.calls.models import Call
from geodispatch.errors import GeodispatchError, InvalidInput
from geodispatch.settings import Settings

log = logging.getLogger(__name__)

SIP_EVENTS = ("invite", "answered", "cancel", "bye", "failure")
#: A report time this far from the server's clock is not believed (the server's time is used).
MAX_CLOCK_SKEW = timedelta(days=2)


@dataclass(frozen=True)
class SipReport:
    """One piece of a call's signalling as the edge saw it."""

    event: str
    call_id: str
    caller: str | None = None
    line: str | None = None
    operator: str | None = None
    code: str | None = None
    at: datetime | None = None
    body: str = ""


def parse_report(fields: Mapping[str, str], body: str = "") -> SipReport:
    """A report from its fields (a batch line's form, or the single endpoint's query)."""
    event = fields.get("event", "")
    if event not in SIP_EVENTS:
        raise InvalidInput(f"event must be one of {', '.join(SIP_EVENTS)}")
    ext = fields.get("call_id", "")
    if not ext or len(ext) > 255 or "\x00" in ext:
        raise InvalidInput("call_id (the SIP Call-ID) is required, at most 255 characters")
    at = None
    raw_at = fields.get("at")
    if raw_at:
        try:
            epoch = float(raw_at)
        except ValueError:
            raise InvalidInput(f"at must be epoch seconds: {raw_at[:40]!r}") from None
        if not math.isfinite(epoch):
            raise InvalidInput("at must be a finite number of epoch seconds")
        at = datetime.fromtimestamp(epoch, UTC) if abs(epoch) < 1e11 else None
        if at is not None and abs(at - datetime.now(UTC)) > MAX_CLOCK_SKEW:
            at = None  # a broken clock on the edge: the server's time of arrival instead
    text_ = fields.get("body", body)
    if fields.get("body_hex"):
        try:
            text_ = bytes.fromhex(fields["body_hex"]).decode("utf-8", "replace")
        except ValueError:
            raise InvalidInput("body_hex is not hexadecimal") from None
    return SipReport(event=event, call_id=ext, caller=_opt(fields, "from", 128),
                     line=_opt(fields, "line", 64), operator=_opt(fields, "operator", 64),
                     code=_opt(fields, "code", 3), at=at,
                     body="" if text_ in ("", "-") else text_)


def _opt(fields: Mapping[str, str], key: str, limit: int) -> str | None:
    v = fields.get(key)
    if not v:
        return None
    return v.replace("\x00", "")[:limit]


def line_fields(line: str) -> dict[str, str]:
    """``k=v&k=v`` with ``%XX`` escapes. Not a form: ``+`` is a plus (Kamailio's
    ``s.escape.param`` leaves it, and every caller number starts with one)."""
    out: dict[str, str] = {}
    for part in line.split("&"):
        k, _, v = part.partition("=")
        if k:
            out[unquote(k)] = unquote(v)
    return out


def parse_batch(raw: str) -> list[SipReport | InvalidInput]:
    """A batch body: one URL-encoded report a line (empty lines ignored). A line that is not a
    report is given back as its error, in its place, so answers line up with the lines."""
    out: list[SipReport | InvalidInput] = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            out.append(parse_report(line_fields(line.strip())))
        except InvalidInput as exc:
            out.append(exc)
    return out


def apply_report(*, session: Session, report: SipReport, call: Call,
                 settings: Settings) -> dict[str, Any]:
    """One report's effect on its (already recorded) call; what the edge is answered."""
    out: dict[str, Any] = {}
    if report.event == "invite" and "presence" in report.body:
        try:
            receive_pidf(session=session, body=report.body, phone=call.caller_phone, call=call,
                         settings=settings)
        except Refused as exc:
            out["location_refused"] = exc.reason
    elif report.event == "answered":
        call = service.get_call(session=session, call_id=call.id, lock=True)
        service.answer(session=session, call=call, operator=report.operator or "sip",
                       at=report.at, actor="sip")
    elif report.event in ("cancel", "bye", "failure"):
        call = service.get_call(session=session, call_id=call.id, lock=True)
        service.hang_up(session=session, call=call, at=report.at, actor="sip",
                        reason=f"SIP {report.code or ''}" if report.event == "failure"
                        else report.event.upper())
    out["call"] = call
    return out


def record_reports(*, session: Session, reports: Sequence[SipReport | InvalidInput],
                   settings: Settings) -> list[dict[str, Any]]:
    """Record a batch (see the module's docstring); one answer per report, in order:
    ``{"ok": true, "call_id": <id>, "created": bool}`` or ``{"ok": false, "error": "..."}``."""
    good = [r for r in reports if isinstance(r, SipReport)]
    # The first report of a call carries its number and line; a late INVITE (its CANCEL
    # came first in an earlier batch) finds the call already there.
    rings = [service.Ring(external_id=r.call_id, caller=r.caller, line=r.line, at=r.at)
             for r in sorted(good, key=lambda r: r.event != "invite")]
    calls = service.ring_many(session=session, source="sip", rings=rings, actor="sip",
                              settings=settings)
    answers: list[dict[str, Any]] = []
    seen: set[str] = set()
    for r in reports:
        if isinstance(r, InvalidInput):
            answers.append({"ok": False, "error": str(r)})
            continue
        call, created = calls[r.call_id]
        created = created and r.call_id not in seen  # the call's first report made it
        seen.add(r.call_id)
        if r.event == "invite" and "presence" not in r.body:
            # Recorded by ring_many already: nothing more to do (and no savepoint to pay for).
            answers.append({"ok": True, "call_id": call.id, "created": created,
                            "state": call.state})
            continue
        try:
            with session.begin_nested():
                res = apply_report(session=session, report=r, call=call, settings=settings)
        except GeodispatchError as exc:
            answers.append({"ok": False, "call_id": call.id, "error": str(exc)})
            continue
        except Exception as exc:  # noqa: BLE001 - one report must never block the edge's queue
            log.exception("SIP report %s for call %s could not be applied", r.event, call.id)
            answers.append({"ok": False, "call_id": call.id, "error": type(exc).__name__})
            continue
        answer = {"ok": True, "call_id": call.id, "created": created, "state": res["call"].state}
        if "location_refused" in res:
            answer["location_refused"] = res["location_refused"]
        answers.append(answer)
    return answers
