"""The SMS outbox: messages are queued in the caller's transaction and delivered by a worker.

Queuing is a plain insert in the same transaction as the incident change, so a message exists
exactly when the change committed. The worker claims due messages with ``FOR UPDATE SKIP
LOCKED`` (several workers never send one twice), retries failures with exponential backoff up
to ``settings.sms_max_attempts`` and records every delivery outcome as an incident event.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from geodispatch.incidents.models import Incident
from geodispatch.notify.gateway import Gateway, GatewayError
from geodispatch.notify.models import SmsMessage, SmsOptOut
from geodispatch.notify.templates import render
from geodispatch.settings import Settings, get_settings

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 5.0
BACKOFF_MAX_S = 3600.0


def backoff_s(attempts: int) -> float:
    """Delay before the next attempt after ``attempts`` failures: 5 s, 10 s, 20 s ... (capped)."""
    return float(min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1)))


def opted_out(session: Session, phone: str) -> bool:
    return session.get(SmsOptOut, phone) is not None


def opt_out(*, session: Session, phone: str) -> None:
    """Record that ``phone`` wants no messages (pending ones are suppressed)."""
    from geodispatch.incidents.service import normalise_phone

    e164 = normalise_phone(phone)
    if session.get(SmsOptOut, e164) is None:
        session.add(SmsOptOut(phone=e164))
    for m in session.execute(select(SmsMessage).where(
            SmsMessage.phone == e164, SmsMessage.status == "pending")).scalars():
        m.status = "suppressed"
    session.flush()


def enqueue_sms(*, session: Session, incident: Incident, template: str,
                **fields: object) -> SmsMessage | None:
    """Queue a message to the incident's caller; None when there is no phone or it opted out."""
    phone = incident.caller_phone
    if not phone or incident.sms_opt_out or opted_out(session, phone):
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


def deliver_due(*, session: Session, gateway: Gateway, settings: Settings | None = None,
                limit: int = 50, now: datetime | None = None) -> int:
    """Send the due messages (claimed with SKIP LOCKED); return how many were attempted."""
    from geodispatch.incidents.record import append_event

    settings = settings or get_settings()
    now = now or datetime.now(UTC)
    due = session.execute(
        select(SmsMessage).where(SmsMessage.status == "pending",
                                 SmsMessage.next_attempt_at <= now)
        .order_by(SmsMessage.next_attempt_at, SmsMessage.id).limit(limit)
        .with_for_update(skip_locked=True)
    ).scalars().all()
    for m in due:
        if opted_out(session, m.phone):
            m.status = "suppressed"
            outcome: dict[str, object] = {"sms_id": m.id, "template": m.template,
                                          "status": "suppressed"}
        else:
            m.attempts += 1
            try:
                m.gateway_id = gateway.send(phone=m.phone, body=m.body, ref=f"sms-{m.id}")
            except GatewayError as exc:
                m.last_error = str(exc)[:500]
                if exc.permanent or m.attempts >= settings.sms_max_attempts:
                    m.status = "failed"
                else:
                    m.next_attempt_at = now + timedelta(seconds=backoff_s(m.attempts))
                outcome = {"sms_id": m.id, "template": m.template, "status": m.status,
                           "attempts": m.attempts, "error": m.last_error}
            else:
                m.status = "sent"
                m.sent_at = now
                outcome = {"sms_id": m.id, "template": m.template, "status": "sent",
                           "attempts": m.attempts, "gateway_id": m.gateway_id}
        if m.incident_id is not None and (m.status != "pending" or m.attempts == 1):
            append_event(session=session, incident_id=m.incident_id, kind="sms_" + str(
                outcome["status"]), actor="sms", data=outcome)
    session.flush()
    return len(due)
