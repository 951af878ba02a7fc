"""Caller locations in: AML (SMS and HTTPS) and PIDF-LO, stored or refused with the reason.

Whatever arrives ends as a :class:`~geodispatch.calls.models.CallLocation` (matched to a call
or waiting) or a :class:`~geodispatch.calls.models.CallLocationReject` with the reason; nothing
raises past these functions but :class:`Refused` (which the edge turns into a 4xx after the
rejection is stored).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from geodispatch.calls.aml import AmlError, AmlReport, parse_https, parse_sms
from geodispatch.calls.models import Call, CallLocation, CallLocationReject
from geodispatch.calls.pidf import PidfError, parse_pidf
from geodispatch.calls.service import add_location
from geodispatch.errors import InvalidInput
from geodispatch.settings import Settings, get_settings

_RAW_MAX = 8000


class Refused(InvalidInput):
    """A location message was refused; the rejection is stored (``reject_id``)."""

    def __init__(self, reason: str, reject_id: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reject_id = reject_id


def reject(*, session: Session, kind: str, reason: str, raw: str) -> CallLocationReject:
    r = CallLocationReject(kind=kind, reason=reason[:500], raw=raw[:_RAW_MAX],
                           received_at=datetime.now(UTC))
    session.add(r)
    session.flush()
    return r


def _check_age(report: AmlReport, now: datetime, settings: Settings) -> None:
    t = report.time_of_positioning
    if t is None:
        return
    limit = timedelta(seconds=settings.calls_aml_max_age_s)
    if t < now - limit:
        raise AmlError(f"fix time {t.isoformat()} is older than "
                       f"{settings.calls_aml_max_age_s:.0f} s")
    if t > now + limit:
        raise AmlError(f"fix time {t.isoformat()} is in the future")


def _store(session: Session, report: AmlReport, phone: str | None, raw: str, now: datetime,
           settings: Settings) -> CallLocation:
    pos = report.has_position
    return add_location(session=session, kind=report.transport, phone=phone,
                        lat=report.latitude if pos else None,
                        lng=report.longitude if pos else None,
                        radius_m=report.radius_m if pos else None,
                        fix_at=report.time_of_positioning, method=report.positioning_method,
                        confidence=report.level_of_confidence, raw=raw[:_RAW_MAX],
                        received_at=now, actor="aml", settings=settings)


def receive_aml_sms(*, session: Session, sender: str | None, text: str,
                    settings: Settings | None = None) -> CallLocation:
    """An AML SMS from the SMS centre: ``sender`` is the handset's number."""
    settings = settings or get_settings()
    now = datetime.now(UTC)
    raw = f"from={sender or ''}\n{text}"
    try:
        if not sender or not sender.strip():
            raise AmlError("no sender number: the SMS centre must pass the originator")
        report = parse_sms(text)
        _check_age(report, now, settings)
    except AmlError as exc:
        r = reject(session=session, kind="aml-sms", reason=str(exc), raw=raw)
        raise Refused(str(exc), r.id) from None
    return _store(session, report, sender, raw, now, settings)


def receive_aml_https(*, session: Session, form: Mapping[str, str],
                      settings: Settings | None = None) -> CallLocation:
    """An AML HTTPS form POST."""
    settings = settings or get_settings()
    now = datetime.now(UTC)
    raw = "&".join(f"{k}={v}" for k, v in form.items())
    try:
        report = parse_https(form)
        _check_age(report, now, settings)
    except AmlError as exc:
        r = reject(session=session, kind="aml-https", reason=str(exc), raw=raw)
        raise Refused(str(exc), r.id) from None
    return _store(session, report, report.number, raw, now, settings)


def receive_pidf(*, session: Session, body: str, phone: str | None, call: Call | None = None,
                 settings: Settings | None = None) -> CallLocation:
    """A PIDF-LO document (or a SIP body holding one), for ``call`` or the number's call."""
    settings = settings or get_settings()
    try:
        loc = parse_pidf(body)
    except PidfError as exc:
        r = reject(session=session, kind="pidf-lo", reason=str(exc), raw=body)
        raise Refused(str(exc), r.id) from None
    if call is not None:
        # A retransmitted INVITE (or the same body reported twice) is one location, not two;
        # a re-INVITE with a new location body is a later update and is kept.
        raw = body[:_RAW_MAX]
        same = session.execute(select(CallLocation).where(
            CallLocation.call_id == call.id, CallLocation.kind == "pidf-lo",
            CallLocation.raw == raw).limit(1)).scalar_one_or_none()
        if same is not None:
            return same
    return add_location(session=session, kind="pidf-lo", phone=phone, lat=loc.latitude,
                        lng=loc.longitude, radius_m=loc.radius_m, fix_at=loc.timestamp,
                        method=loc.method, confidence=None, raw=body[:_RAW_MAX], call=call,
                        actor="sip", settings=settings)
