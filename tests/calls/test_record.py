"""Calls in the signed record: each call's events verify, and a superuser's quiet change to a
call, a callback or a location, or a removed call event, is named."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.calls import service
from geodispatch.calls.locations import receive_pidf
from geodispatch.calls.models import Call
from geodispatch.incidents.verify import verify_record
from geodispatch.ledger.service import public_key
from geodispatch.settings import get_settings
from tests.calls.test_service import PIDF


def _findings(session: Session) -> list[str]:
    report = verify_record(session=session, public_key=public_key(get_settings()))
    return [f.what for f in report.findings if "call" in f.what]


def _call(session: Session, *, abandoned: bool = False) -> Call:
    c, _ = service.ring(session=session, source="test", external_id=uuid.uuid4().hex,
                        caller="+380671112233")
    if abandoned:
        service.hang_up(session=session, call=c)
        return c
    receive_pidf(session=session, body=PIDF, phone=c.caller_phone, call=c)
    service.answer(session=session, call=c, operator="ct1")
    service.set_outcome(session=session, call=c, outcome="information", actor="ct1")
    service.hang_up(session=session, call=c)
    return c


def test_untouched_calls_verify(admin_db: Session) -> None:
    """Calls, callbacks and locations written by the service verify."""
    _call(admin_db)
    _call(admin_db, abandoned=True)
    admin_db.flush()
    assert _findings(admin_db) == []


@pytest.mark.parametrize("table,column,value,key", [
    ("calls", "operator", "'someone-else'", "id"),
    ("calls", "answered_at", "now() - interval '1 hour'", "id"),
    ("calls", "caller_phone", "'+380500000000'", "id"),
    ("call_locations", "lat", "1.0", "call_id"),
])
def test_a_quiet_change_is_named(admin_db: Session, table: str, column: str, value: str,
                                 key: str) -> None:
    """The superuser's UPDATE without an event is named with table and column."""
    c = _call(admin_db)
    admin_db.flush()
    admin_db.execute(text(f"UPDATE {table} SET {column} = {value} WHERE {key} = :i"),
                     {"i": c.id})
    found = _findings(admin_db)
    assert any(f"call {c.id}: {table}.{column}" in f for f in found), found


def test_a_callback_marked_done_quietly_is_named(admin_db: Session) -> None:
    """A callback closed without an event shows."""
    c = _call(admin_db, abandoned=True)
    admin_db.flush()
    admin_db.execute(text("UPDATE call_callbacks SET status = 'done' WHERE call_id = :i"),
                     {"i": c.id})
    assert any(f"call {c.id}: call_callbacks.status" in f for f in _findings(admin_db))


def test_a_deleted_call_event_and_a_call_outside_the_record(admin_db: Session) -> None:
    """A removed event of a call is named; a call row inserted without events is named."""
    c = _call(admin_db)
    admin_db.flush()
    admin_db.execute(text("SET LOCAL session_replication_role = replica"))
    admin_db.execute(text("DELETE FROM log_pending WHERE event_id IN (SELECT id FROM "
                          "incident_events WHERE call_id = :i AND incident_seq = 2)"),
                     {"i": c.id})
    admin_db.execute(text("DELETE FROM incident_events WHERE call_id = :i AND incident_seq = 2"),
                     {"i": c.id})
    admin_db.execute(text(
        "INSERT INTO calls (source, external_id, line, ring_at, queue_position, state, note) "
        "VALUES ('forged', 'x', '102', now(), 1, 'ringing', '') RETURNING id"))
    admin_db.execute(text("SET LOCAL session_replication_role = DEFAULT"))
    found = _findings(admin_db)
    assert any(f"call {c.id}: event #2" in f for f in found), found
    assert any("inserted outside the record" in f for f in found), found


def test_sealed_call_events_verify_with_the_sequencer(engine: object, sequencer: object) -> None:
    """Committed call events are sealed into the signed log and the whole record verifies."""
    from sqlalchemy import Engine

    assert isinstance(engine, Engine)
    with Session(engine) as s, s.begin():
        c = _call(s)
        cid = c.id
    sequencer.drain()  # type: ignore[attr-defined]
    with Session(engine) as s:
        n = s.execute(text("SELECT count(*) FROM log_leaves l JOIN incident_events e "
                           "ON e.id = l.event_id WHERE e.call_id = :i"), {"i": cid}).scalar()
        assert n == 5
        report = verify_record(session=s, public_key=public_key(get_settings()))
        assert report.ok, report.findings
