"""Tracked delivery: sent / delivered / acknowledged as events, idempotency keys, the resend
schedule and the supervisor's "not acknowledged" alert."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.dispatch.alerts import supervisor_alerts
from geodispatch.dispatch.models import Assignment
from geodispatch.dispatch.workflow import (
    assign,
    crew_status_report,
    due_for_sending,
    record_sent,
)
from geodispatch.errors import Conflict, InvalidInput, NotFound
from geodispatch.incidents.models import Incident
from geodispatch.settings import Settings
from tests.helpers import record_findings


def _kinds(db: Session, inc: Incident) -> list[str]:
    return list(db.execute(text("SELECT kind FROM incident_events WHERE incident_id = :i "
                                "ORDER BY incident_seq"), {"i": inc.id}).scalars())


def _assigned(db: Session, crew: Callable[..., int], incident: Callable[..., Incident]
              ) -> tuple[int, Incident, Assignment]:
    uid = crew()
    inc = incident()
    a = assign(session=db, incident_id=inc.id, unit_id=uid, actor="d1", override_reason="near")
    db.flush()
    return uid, inc, a


def test_sent_delivered_acknowledged_are_events(db: Session, crew: Callable[..., int],
                                                incident: Callable[..., Incident]) -> None:
    """Each delivery step sets its time on the assignment with its own event; the record
    verifies and the unit's status is untouched by delivery steps."""
    uid, inc, a = _assigned(db, crew, incident)
    assert record_sent(session=db, assignment_id=a.id, at=datetime.now(UTC), actor="delivery")
    t1 = datetime.now(UTC)
    assert crew_status_report(session=db, unit_id=uid, status="delivered", at=t1,
                              source="crew", assignment_id=a.id) == "applied"
    t2 = datetime.now(UTC)
    assert crew_status_report(session=db, unit_id=uid, status="acknowledged", at=t2,
                              source="crew", assignment_id=a.id, key=uuid.uuid4().hex) == "applied"
    db.refresh(a)
    assert a.sent_at is not None and a.send_count == 1
    assert a.delivered_at == t1 and a.acknowledged_at == t2 and a.status == "acknowledged"
    assert db.execute(text("SELECT status FROM units WHERE id = :u"), {"u": uid}).scalar() \
        == "dispatched"
    assert crew_status_report(session=db, unit_id=uid, status="acknowledged", at=None,
                              source="crew") == "repeated"
    assert crew_status_report(session=db, unit_id=uid, status="en_route", at=None,
                              source="crew") == "applied"
    kinds = _kinds(db, inc)
    for k in ("assignment_sent", "assignment_delivered", "assignment_acknowledged"):
        assert kinds.count(k) == 1, kinds
    assert "amended" not in kinds
    db.commit()
    assert record_findings(db, inc.id) == []


def test_idempotency_key_stores_a_press_once(db: Session, crew: Callable[..., int],
                                             incident: Callable[..., Incident]) -> None:
    """The same key twice (a resend after a lost answer) is one stored status."""
    uid, inc, _a = _assigned(db, crew, incident)
    key = uuid.uuid4().hex
    t = datetime.now(UTC)
    assert crew_status_report(session=db, unit_id=uid, status="en_route", at=t, source="crew",
                              key=key) == "applied"
    assert crew_status_report(session=db, unit_id=uid, status="en_route", at=t, source="crew",
                              key=key) == "duplicate"
    assert _kinds(db, inc).count("crew_status") == 1
    with pytest.raises(InvalidInput):
        crew_status_report(session=db, unit_id=uid, status="en_route", at=t, source="crew",
                           key="k" * 129)


def test_ack_of_an_old_or_foreign_assignment(db: Session, crew: Callable[..., int],
                                             incident: Callable[..., Incident]) -> None:
    """An acknowledgement for another crew's assignment is NotFound; without any assignment it
    is a Conflict; one for the crew's previous assignment is recorded there as late."""
    uid, _inc, a = _assigned(db, crew, incident)
    other, _inc2, b = _assigned(db, crew, incident)
    with pytest.raises(NotFound):
        crew_status_report(session=db, unit_id=uid, status="acknowledged", at=None,
                           source="crew", assignment_id=b.id)
    for st in ("en_route", "on_scene", "cleared", "available"):
        crew_status_report(session=db, unit_id=uid, status=st, at=None, source="crew")
    with pytest.raises(Conflict):
        crew_status_report(session=db, unit_id=uid, status="acknowledged", at=None,
                           source="crew")
    third = incident()
    assign(session=db, incident_id=third.id, unit_id=uid, actor="d1", override_reason="r")
    assert crew_status_report(session=db, unit_id=uid, status="acknowledged", at=None,
                              source="crew", assignment_id=a.id) == "late"
    db.refresh(a)
    assert a.acknowledged_at is None
    assert other != uid


def test_unacknowledged_is_resent_and_alerts(db: Session, crew: Callable[..., int],
                                             incident: Callable[..., Incident],
                                             settings: Settings) -> None:
    """Never sent -> due; sent -> due again after the ack timeout, with a supervisor alert;
    acknowledged -> neither."""
    uid, _inc, a = _assigned(db, crew, incident)
    now = datetime.now(UTC)
    timeout = settings.assignment_ack_timeout_s
    due = {x.id for x in due_for_sending(session=db, now=now, ack_timeout_s=timeout)}
    assert a.id in due
    record_sent(session=db, assignment_id=a.id, at=now, actor="delivery")
    due = {x.id for x in due_for_sending(session=db, now=now, ack_timeout_s=timeout)}
    assert a.id not in due
    later = now + timedelta(seconds=timeout + 5)
    due = {x.id for x in due_for_sending(session=db, now=later, ack_timeout_s=timeout)}
    assert a.id in due
    kinds = {(al.kind, al.unit_id) for al in supervisor_alerts(
        session=db, region=None, settings=settings, now=later)}
    assert ("not_acknowledged", uid) in kinds
    crew_status_report(session=db, unit_id=uid, status="acknowledged", at=None, source="crew")
    due = {x.id for x in due_for_sending(session=db, now=later, ack_timeout_s=timeout)}
    assert a.id not in due
    kinds = {(al.kind, al.unit_id) for al in supervisor_alerts(
        session=db, region=None, settings=settings, now=later)}
    assert ("not_acknowledged", uid) not in kinds


def test_a_send_recorded_after_the_assignment_ended_is_refused(
        db: Session, crew: Callable[..., int], incident: Callable[..., Incident]) -> None:
    """The delivery pass holds the assignment it read before the lock; if the call was closed
    meanwhile (here: the row changed behind that copy), no assignment_sent is recorded."""
    _, inc, a = _assigned(db, crew, incident)
    due = due_for_sending(session=db, now=datetime.now(UTC), ack_timeout_s=60)
    assert a.id in [d.id for d in due] and a.status == "dispatched"
    db.execute(text("UPDATE assignments SET status = 'cleared', cleared_at = now() "
                    "WHERE id = :a"), {"a": a.id})
    assert record_sent(session=db, assignment_id=a.id, at=datetime.now(UTC),
                       actor="delivery") is False
    assert "assignment_sent" not in _kinds(db, inc)
