"""The SMS outbox: messages are queued in the caller's transaction and delivered by a worker.

Queuing is a plain insert in the same transaction as the incident change, so a message exists
exactly when the change committed. Delivery is three steps, and the gateway is never called
inside a transaction (a slow gateway holds no row anyone else needs):

1. :func:`claim_due` takes due messages with ``FOR UPDATE SKIP LOCKED`` (several workers never
   take one twice), marks them ``sending`` under a lease of :data:`LEASE_S` and commits;
2. :func:`send_claims` hands them to the gateway, each with the stable reference
   ``sms-<id>`` (a gateway can drop a duplicate after a worker died mid-send);
3. :func:`record_outcomes` stores sent / failed / retry-later (exponential backoff up to
   ``settings.sms_max_attempts``) and records each outcome as an incident event.

The outbox sits below the domains that send messages (intake, dispatch, calls): it knows an
incident only as a :class:`Recipient`, and the incident record's event writer is handed to it as
an :class:`OutcomeRecorder` by the composition root (``api/app.py``, the CLI).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from geodispatch.notify.gateway import Gateway, GatewayError
from geodispatch.notify.models import SmsMessage, SmsOptOut
from geodispatch.notify.templates import render
from geodispatch.phone import is_e164, normalise_phone
from geodispatch.settings import Settings, get_settings

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 5.0
BACKOFF_MAX_S = 3600.0
#: How long a claimed message stays with its worker before another may try it.
LEASE_S = 120.0


class Recipient(Protocol):
    """What a message needs of the incident whose caller it goes to (an ``Incident`` row)."""

    @property
    def id(self) -> int: ...
    @property
    def reference(self) -> str: ...
    @property
    def caller_phone(self) -> str | None: ...
    @property
    def caller_lang(self) -> str | None: ...
    @property
    def sms_opt_out(self) -> bool: ...


class OutcomeRecorder(Protocol):
    """Writes a delivery outcome into the incident's record
    (:func:`geodispatch.incidents.record.record_sms_outcome`)."""

    def __call__(self, *, session: Session, incident_id: int, kind: str,
                 data: dict[str, object]) -> None: ...


def backoff_s(attempts: int) -> float:
    """Delay before the next attempt after ``attempts`` failures: 5 s, 10 s, 20 s ... (capped)."""
    return float(min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1)))


def opted_out(session: Session, phone: str) -> bool:
    return session.get(SmsOptOut, phone) is not None


def opt_out(*, session: Session, phone: str) -> None:
    """Record that ``phone`` wants no messages (pending ones are suppressed)."""
    e164 = normalise_phone(phone)
    if session.get(SmsOptOut, e164) is None:
        session.add(SmsOptOut(phone=e164))
    for m in session.execute(select(SmsMessage).where(
            SmsMessage.phone == e164, SmsMessage.status == "pending")).scalars():
        m.status = "suppressed"
    session.flush()


def enqueue_sms(*, session: Session, incident: Recipient, template: str, once: bool = True,
                **fields: object) -> SmsMessage | None:
    """Queue a message to the incident's caller; None when there is no phone, it opted out, or
    the caller was already told this (one message per template per incident: close, reopen,
    close sends one "closed"; two crews on the way, one "assigned"). Which stages a category
    notifies at all is the callers' decision (the classification file's ``sms``). ``once=False``
    skips the look for an earlier message (a registration: the incident is new)."""
    phone = incident.caller_phone
    if not phone or not is_e164(phone) or incident.sms_opt_out or opted_out(session, phone):
        return None
    if once:
        told = session.execute(select(SmsMessage.id).where(
            SmsMessage.incident_id == incident.id, SmsMessage.template == template,
            SmsMessage.status.in_(("pending", "sending", "sent"))).limit(1)).first()
        if told is not None:
            return None
    fields.setdefault("reference", incident.reference)
    body, lang = render(template, incident.caller_lang or get_settings().sms_default_lang,
                        **fields)
    msg = SmsMessage(incident_id=incident.id, phone=phone, lang=lang, template=template,
                     body=body, status="pending", attempts=0,
                     next_attempt_at=datetime.now(UTC))
    session.add(msg)
    session.flush()
    return msg


def enqueue_sms_to(*, session: Session, phone: str | None, template: str,
                   lang: str | None = None, **fields: object) -> tuple[SmsMessage | None, str]:
    """Queue a message to a number that is not (yet) an incident's caller (a missed call).

    Returns the message and ``"queued"``, or None and why not: ``no_number``, ``not_e164``,
    ``opted_out``.
    """
    if not phone:
        return None, "no_number"
    if not is_e164(phone):
        return None, "not_e164"
    if opted_out(session, phone):
        return None, "opted_out"
    body, used = render(template, lang or get_settings().sms_default_lang, **fields)
    msg = SmsMessage(incident_id=None, phone=phone, lang=used, template=template, body=body,
                     status="pending", attempts=0, next_attempt_at=datetime.now(UTC))
    session.add(msg)
    session.flush()
    return msg, "queued"


@dataclass(frozen=True)
class Claim:
    """A message taken for one delivery attempt (held by its lease, not by a transaction)."""

    id: int
    incident_id: int | None
    template: str
    phone: str
    body: str
    attempts: int


@dataclass(frozen=True)
class Outcome:
    """What the gateway said about one claimed message."""

    claim: Claim
    gateway_id: str | None = None
    error: str | None = None
    permanent: bool = False


def claim_due(*, session: Session, record: OutcomeRecorder, limit: int = 50,
              now: datetime | None = None, lease_s: float = LEASE_S) -> list[Claim]:
    """Take due messages for delivery (``FOR UPDATE SKIP LOCKED``; the caller commits at once).

    A claimed message is ``sending`` until its lease ends; a worker that dies mid-send leaves
    it to be claimed again then. Messages to numbers that opted out are suppressed here.
    """
    now = now or datetime.now(UTC)
    due = session.execute(
        select(SmsMessage).where(SmsMessage.status.in_(("pending", "sending")),
                                 SmsMessage.next_attempt_at <= now)
        .order_by(SmsMessage.next_attempt_at, SmsMessage.id).limit(limit)
        .with_for_update(skip_locked=True)
    ).scalars().all()
    claims = []
    for m in due:
        if opted_out(session, m.phone):
            m.status = "suppressed"
            _record(session, record, m,
                    {"sms_id": m.id, "template": m.template, "status": "suppressed"})
            continue
        m.status = "sending"
        m.attempts += 1
        m.next_attempt_at = now + timedelta(seconds=lease_s)
        claims.append(Claim(m.id, m.incident_id, m.template, m.phone, m.body, m.attempts))
    session.flush()
    return claims


def send_claims(claims: Sequence[Claim], gateway: Gateway) -> list[Outcome]:
    """Hand the claimed messages to the gateway (outside any transaction: it may be slow)."""
    out = []
    for c in claims:
        try:
            out.append(Outcome(c, gateway_id=gateway.send(phone=c.phone, body=c.body,
                                                          ref=f"sms-{c.id}")))
        except GatewayError as exc:
            out.append(Outcome(c, error=str(exc)[:500], permanent=exc.permanent))
    return out


def record_outcomes(*, session: Session, outcomes: Sequence[Outcome], record: OutcomeRecorder,
                    settings: Settings | None = None, now: datetime | None = None) -> int:
    """Store what the gateway said; return how many outcomes were recorded.

    An outcome whose lease was overtaken (the message was claimed again meanwhile) is not
    recorded over the newer attempt.
    """
    settings = settings or get_settings()
    now = now or datetime.now(UTC)
    done = 0
    for o in sorted(outcomes, key=lambda o: o.claim.id):
        m = session.get(SmsMessage, o.claim.id, with_for_update=True)
        if m is None or m.status != "sending" or m.attempts != o.claim.attempts:
            log.info("SMS %s: outcome of attempt %s overtaken", o.claim.id, o.claim.attempts)
            continue
        if o.error is None:
            m.status, m.sent_at, m.gateway_id = "sent", now, o.gateway_id
            outcome: dict[str, object] = {"sms_id": m.id, "template": m.template,
                                          "status": "sent", "attempts": m.attempts,
                                          "gateway_id": m.gateway_id}
        else:
            m.last_error = o.error
            if o.permanent or m.attempts >= settings.sms_max_attempts:
                m.status = "failed"
            else:
                m.status = "pending"
                m.next_attempt_at = now + timedelta(seconds=backoff_s(m.attempts))
            outcome = {"sms_id": m.id, "template": m.template, "status": m.status,
                       "attempts": m.attempts, "error": m.last_error}
        if m.status != "pending" or m.attempts == 1:
            _record(session, record, m, outcome)
        done += 1
    session.flush()
    return done


def _record(session: Session, record: OutcomeRecorder, m: SmsMessage,
            outcome: dict[str, object]) -> None:
    if m.incident_id is not None:
        record(session=session, incident_id=m.incident_id, kind="sms_" + str(outcome["status"]),
               data=outcome)


def deliver_due(*, session: Session, gateway: Gateway, record: OutcomeRecorder,
                settings: Settings | None = None, limit: int = 50,
                now: datetime | None = None) -> int:
    """Claim, send and record in one session (tests and one-off use); return how many were
    attempted. The worker (:mod:`geodispatch.notify.worker`) runs the same three steps with a
    transaction of its own for the claim and for the outcome, and none while it sends."""
    claims = claim_due(session=session, record=record, limit=limit, now=now)
    record_outcomes(session=session, outcomes=send_claims(claims, gateway), record=record,
                    settings=settings, now=now)
    return len(claims)
