"""The SIP edge's batches: many first rings recorded together, with the same rows and events as
one by one; the edge's own times kept; a bad line answered in its place without failing the rest."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from geodispatch.calls import service
from geodispatch.calls.locations import receive_aml_https
from geodispatch.calls.models import Call, CallCallback
from geodispatch.calls.sip import parse_batch, record_reports
from geodispatch.incidents.record import call_events
from geodispatch.incidents.verify import verify_record
from geodispatch.ledger.service import public_key
from geodispatch.settings import get_settings
from tests.calls.test_service import PIDF


def _line(**fields: object) -> str:
    if "body" in fields:  # as Kamailio sends an INVITE's body
        fields["body_hex"] = str(fields.pop("body")).encode().hex()
    return urlencode({k: str(v) for k, v in fields.items()}, quote_via=quote)


def test_a_burst_of_rings_is_recorded_in_one_batch(admin_db: Session) -> None:
    """50 INVITEs in one batch: 50 ringing calls with queue positions 1..50 in ring order, each
    with its 'rang' event; the record verifies."""
    s = get_settings()
    base = time.time() - 5
    ids = [uuid.uuid4().hex for _ in range(50)]
    lines = [_line(event="invite", call_id=c, at=f"{base + k * 0.01:.6f}",
                   **{"from": f"+3806712{k:05d}", "line": "102"}) for k, c in enumerate(ids)]
    answers = record_reports(session=admin_db, reports=parse_batch("\n".join(lines)), settings=s)
    assert [a["ok"] and a["created"] for a in answers] == [True] * 50
    calls = {c.external_id: c for c in admin_db.execute(
        select(Call).where(Call.external_id.in_(ids))).scalars()}
    ahead = min(c.queue_position for c in calls.values()) - 1  # other tests' ringing calls
    for k, ext in enumerate(ids):
        c = calls[ext]
        assert c.state == "ringing" and c.caller_phone == f"+3806712{k:05d}"
        assert c.queue_position == ahead + k + 1
        assert abs(c.ring_at.timestamp() - (base + k * 0.01)) < 1e-5  # the edge's time
        assert [e.kind for e in call_events(session=admin_db, call_id=c.id)] == ["rang"]
    admin_db.flush()
    report = verify_record(session=admin_db, public_key=public_key(s))
    assert [f.what for f in report.findings if "call" in f.what] == []


def test_a_batch_carries_whole_calls_and_bad_lines(admin_db: Session) -> None:
    """INVITE (with PIDF-LO), 200 OK and BYE of one call and INVITE + CANCEL of another in one
    batch; a line that is no report and an answer for an abandoned call are refused in place."""
    s = get_settings()
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    now = time.time()
    raw = "\n".join([
        _line(event="invite", call_id=a, at=now - 3, body=PIDF, **{"from": "+380671234001"}),
        _line(event="invite", call_id=b, at=now - 3, **{"from": "+380671234002"}),
        "event=ring&call_id=x",
        _line(event="answered", call_id=a, at=now - 2, operator="op7"),
        _line(event="cancel", call_id=b, at=now - 1),
        _line(event="answered", call_id=b, at=now, operator="op7"),
        _line(event="bye", call_id=a, at=now),
        "",
    ])
    answers = record_reports(session=admin_db, reports=parse_batch(raw), settings=s)
    assert [x["ok"] for x in answers] == [True, True, False, True, True, False, True]
    assert [x.get("created") for x in answers if x["ok"]] == [True, True, False, False, False]
    ca = admin_db.execute(select(Call).where(Call.external_id == a)).scalar_one()
    cb = admin_db.execute(select(Call).where(Call.external_id == b)).scalar_one()
    assert ca.state == "ended" and ca.operator == "op7"
    assert abs(ca.answered_at.timestamp() - (now - 2)) < 1e-3  # type: ignore[union-attr]
    assert service.latest_location(session=admin_db, call_id=ca.id) is not None
    assert cb.state == "abandoned"
    assert admin_db.execute(select(CallCallback).where(CallCallback.call_id == cb.id)
                            ).scalar_one().status == "pending"
    assert [e.kind for e in call_events(session=admin_db, call_id=ca.id)] == [
        "rang", "located", "answered", "hung_up"]
    admin_db.flush()
    report = verify_record(session=admin_db, public_key=public_key(s))
    assert [f.what for f in report.findings if "call" in f.what] == []


def test_a_resent_batch_changes_nothing(db: Session) -> None:
    """The edge resends a batch whose answer it lost: the same calls, no new events."""
    s = get_settings()
    c = uuid.uuid4().hex
    raw = "\n".join([_line(event="invite", call_id=c, **{"from": "+380671234003"}),
                     _line(event="cancel", call_id=c)])
    record_reports(session=db, reports=parse_batch(raw), settings=s)
    again = record_reports(session=db, reports=parse_batch(raw), settings=s)
    assert [x["created"] for x in again] == [False, False]
    call = db.execute(select(Call).where(Call.external_id == c)).scalar_one()
    assert [e.kind for e in call_events(session=db, call_id=call.id)] == ["rang", "abandoned"]


def test_an_aml_before_the_batch_is_matched(db: Session) -> None:
    """An AML that arrived before its call's INVITE was reported is attached to the call."""
    s = get_settings()
    phone = "+380671234004"
    receive_aml_https(session=db, settings=s, form={
        "v": "1", "emergency_number": "112", "device_number": phone,
        "location_latitude": "50.45", "location_longitude": "30.52", "location_accuracy": "12",
        "location_time": str(int(time.time() * 1000)), "location_source": "gps"})
    c = uuid.uuid4().hex
    record_reports(session=db, settings=s, reports=parse_batch(
        _line(event="invite", call_id=c, at=datetime.now(UTC).timestamp(), **{"from": phone})))
    call = db.execute(select(Call).where(Call.external_id == c)).scalar_one()
    loc = service.latest_location(session=db, call_id=call.id)
    assert loc is not None and loc.kind.startswith("aml")
