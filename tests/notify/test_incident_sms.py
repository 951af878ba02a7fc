"""The per-incident "do not SMS" switch: queued messages are suppressed, none are queued after."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.incidents.schemas import IncidentCreate
from geodispatch.incidents.service import register_incident, set_incident_sms
from geodispatch.notify.outbox import enqueue_sms
from tests.helpers import record_findings


def _statuses(db: Session, incident_id: int) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in db.execute(text(
        "SELECT template, status FROM sms_outbox WHERE incident_id = :i ORDER BY id"),
        {"i": incident_id})]


def test_do_not_sms_suppresses_and_stops(db: Session) -> None:
    """Off: the queued registration SMS is suppressed and no new one is queued; on again: the
    next one is queued. Both switches are events and the record verifies."""
    inc = register_incident(session=db, data=IncidentCreate(
        lat=50.45, lng=30.52, category="theft", caller_phone="+380671112233",
        idempotency_key=uuid.uuid4().hex), actor="ct")
    assert _statuses(db, inc.id) == [("registered", "pending")]
    set_incident_sms(session=db, incident_id=inc.id, enabled=False, actor="ct",
                     reason="domestic violence: the abuser may read the phone")
    assert inc.sms_opt_out and _statuses(db, inc.id) == [("registered", "suppressed")]
    assert enqueue_sms(session=db, incident=inc, template="closed") is None
    before = inc.event_count
    set_incident_sms(session=db, incident_id=inc.id, enabled=False, actor="ct")
    assert inc.event_count == before  # already off: nothing recorded
    set_incident_sms(session=db, incident_id=inc.id, enabled=True, actor="d1")
    assert enqueue_sms(session=db, incident=inc, template="closed") is not None
    events = db.execute(text("SELECT kind, data FROM incident_events WHERE incident_id = :i "
                             "AND kind LIKE 'sms_%abled' ORDER BY incident_seq"),
                        {"i": inc.id}).all()
    assert [k for k, _ in events] == ["sms_disabled", "sms_enabled"]
    assert events[0][1]["suppressed"] == 1 and "abuser" in events[0][1]["reason"]
    assert record_findings(db, inc.id) == []
