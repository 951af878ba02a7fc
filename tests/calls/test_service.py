"""The life of a call: ring, answer, hang-up, outcome, callbacks, stats, the shift report."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from geodispatch.calls import service
from geodispatch.calls.locations import Refused, receive_aml_https, receive_aml_sms, receive_pidf
from geodispatch.calls.models import Call, CallCallback, CallLocationReject
from geodispatch.errors import Conflict, InvalidInput
from geodispatch.incidents.models import Incident
from geodispatch.incidents.record import call_events
from geodispatch.notify.models import SmsMessage
from geodispatch.notify.outbox import opt_out

PIDF = """<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10"
  xmlns:gml="http://www.opengis.net/gml" xmlns:gs="http://www.opengis.net/pidflo/1.0"
  entity="pres:caller@example.net">
 <tuple id="t1"><status><gp:geopriv><gp:location-info>
   <gs:Circle srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>50.4501 30.5234</gml:pos>
   <gs:radius uom="urn:ogc:def:uom:EPSG::9001">25</gs:radius></gs:Circle>
 </gp:location-info><gp:method>GPS</gp:method></gp:geopriv></status>
 <timestamp>2026-12-05T10:00:00Z</timestamp></tuple></presence>"""


def _aml(lat: str = "+50.45010", lng: str = "+30.52340") -> str:
    top = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    body = f'A"ML=1;lt={lat};lg={lng};rd=12;top={top};lc=68;pm=G;mcc=255;mnc=01;ml='
    for n in range(len(body) + 1, len(body) + 5):
        if len(body + str(n)) == n:
            return body + str(n)
    raise AssertionError


def test_ring_records_before_answer_with_queue_position(db: Session, ring: Callable[..., Call]
                                                        ) -> None:
    """A call has a record at its first ring: E.164 number, line, ring time, queue place."""
    a = ring("067 111 22 33", line="102-1")
    b = ring("+380671112234")
    assert a.caller_phone == "+380671112233" and a.line == "102-1" and a.state == "ringing"
    assert b.queue_position == a.queue_position + 1
    again, created = service.ring(session=db, source="test", external_id=a.external_id,
                                  caller="+380671112233")
    assert again.id == a.id and not created
    assert [e.kind for e in call_events(session=db, call_id=a.id)] == ["rang"]


def test_anonymous_and_odd_numbers_are_recorded(ring: Callable[..., Call]) -> None:
    """A call is never refused for its number."""
    assert ring(None).caller_phone is None
    assert ring("anonymous").caller_phone == "anonymous"


def test_answered_call_needs_an_outcome_to_close(db: Session, ring: Callable[..., Call]) -> None:
    """Answered, hung up: not closed until the outcome; close is refused without one."""
    c = ring()
    service.answer(session=db, call=c, operator="ct1")
    service.hang_up(session=db, call=c)
    assert c.state == "ended"
    with pytest.raises(Conflict, match="no outcome"):
        service.close_call(session=db, call=c, actor="ct1")
    service.set_outcome(session=db, call=c, outcome="prank", actor="ct1")
    assert c.state == "closed" and c.closed_at is not None
    kinds = [e.kind for e in call_events(session=db, call_id=c.id)]
    assert kinds == ["rang", "answered", "hung_up", "outcome"]


def test_outcome_with_incident(db: Session, ring: Callable[..., Call],
                               make_incident: Callable[..., Incident]) -> None:
    """new_incident / additional_caller link the call to the incident named by reference."""
    inc = make_incident()
    c = ring()
    service.answer(session=db, call=c, operator="ct1")
    with pytest.raises(InvalidInput):
        service.set_outcome(session=db, call=c, outcome="new_incident", actor="ct1")
    with pytest.raises(InvalidInput):
        service.set_outcome(session=db, call=c, outcome="nonsense", actor="ct1")
    service.set_outcome(session=db, call=c, outcome="additional_caller", actor="ct1",
                        incident_reference=inc.reference)
    assert c.incident_id == inc.id and c.state == "answered"
    service.close_call(session=db, call=c, actor="ct1")
    assert c.state == "closed"


def test_abandoned_call_is_a_callback_with_sms(db: Session, ring: Callable[..., Call]) -> None:
    """Hung up while ringing: a callback task and the missed-call SMS in the outbox."""
    c = ring("+380671119999")
    service.hang_up(session=db, call=c)
    assert c.state == "abandoned"
    cb = db.execute(select(CallCallback).where(CallCallback.call_id == c.id)).scalar_one()
    assert cb.status == "pending" and cb.sms_id is not None
    sms = db.get(SmsMessage, cb.sms_id)
    assert sms is not None and sms.phone == "+380671119999" and sms.template == "missed_call"
    assert "передзвонимо" in sms.body
    with pytest.raises(Conflict):
        service.set_outcome(session=db, call=c, outcome="silent", actor="ct1")
    service.complete_callback(session=db, callback_id=cb.id, status="done", actor="ct1")
    with pytest.raises(Conflict):
        service.complete_callback(session=db, callback_id=cb.id, status="done", actor="ct1")
    assert [e.kind for e in call_events(session=db, call_id=c.id)] == \
        ["rang", "abandoned", "callback_done"]


def test_opted_out_number_gets_no_sms(db: Session, ring: Callable[..., Call]) -> None:
    """An opted-out number still gets a callback task, but no SMS."""
    opt_out(session=db, phone="+380671118888")
    c = ring("+380671118888")
    service.hang_up(session=db, call=c)
    cb = db.execute(select(CallCallback).where(CallCallback.call_id == c.id)).scalar_one()
    assert cb.sms_id is None and cb.sms_skipped == "opted_out"


def test_aml_before_and_after_the_ring_is_matched(db: Session, ring: Callable[..., Call]) -> None:
    """AML arriving before the ring is attached at the ring; after it, at once."""
    before = receive_aml_sms(session=db, sender="+380671117777", text=_aml())
    assert before.call_id is None
    c = ring("+380671117777")
    db.refresh(before)
    assert before.call_id == c.id
    after = receive_aml_https(session=db, form={
        "v": "1", "device_number": "+380671117777", "location_latitude": "50.46",
        "location_longitude": "30.53", "location_accuracy": "8",
        "location_time": str(int(datetime.now(UTC).timestamp() * 1000)),
        "location_source": "wifi"})
    assert after.call_id == c.id
    latest = service.latest_location(session=db, call_id=c.id)
    assert latest is not None and latest.id == after.id
    bare = ring("+380671115555")
    many = service.latest_locations(session=db, call_ids=[c.id, bare.id])
    assert {k: v.id for k, v in many.items()} == {c.id: after.id}  # the newest; none for bare
    other = receive_aml_sms(session=db, sender="+380671116666", text=_aml())
    assert other.call_id is None  # unmatched: listed


def test_aml_outside_the_window_is_not_matched(db: Session, ring: Callable[..., Call],
                                               settings: object) -> None:
    """A call that rang long before the AML does not claim it."""
    ring("+380671115555", at=datetime.now(UTC) - timedelta(hours=2))
    loc = receive_aml_sms(session=db, sender="+380671115555", text=_aml())
    assert loc.call_id is None


def test_refused_aml_is_kept_with_reason(db: Session) -> None:
    """A bad ml, an unknown method, an unparseable time: refused, kept in the rejects table."""
    for text, why in ((_aml().rsplit("=", 1)[0] + "=999", "ml="),
                      (_aml().replace("pm=G", "pm=Z"), "positioning method")):
        with pytest.raises(Refused, match=why) as err:
            receive_aml_sms(session=db, sender="+380671114444", text=text)
        r = db.get(CallLocationReject, err.value.reject_id)
        assert r is not None and why in r.reason and text in r.raw
    with pytest.raises(Refused, match="not a time"):
        receive_aml_https(session=db, form={
            "v": "1", "device_number": "+380671114444", "location_latitude": "50",
            "location_longitude": "30", "location_time": "soon"})


def test_pidf_lo_attaches_to_its_call(db: Session, ring: Callable[..., Call]) -> None:
    """A PIDF-LO circle gives the point and radius of the call that carried it."""
    c = ring("+380671113333")
    loc = receive_pidf(session=db, body="--b\r\nContent-Type: application/pidf+xml\r\n\r\n"
                       + PIDF + "\r\n--b--", phone=c.caller_phone, call=c)
    assert (loc.lat, loc.lng, loc.radius_m, loc.method, loc.call_id) == \
        (50.4501, 30.5234, 25.0, "GPS", c.id)
    with pytest.raises(Refused):
        receive_pidf(session=db, body="<presence>broken", phone=None)


def test_stats_and_shift_report(db: Session, ring: Callable[..., Call]) -> None:
    """Queue, answered-within-15-s share, callbacks waiting, and who left a call without an
    outcome."""
    t0 = datetime.now(UTC) - timedelta(days=3)
    fast = ring(at=t0)
    service.answer(session=db, call=fast, operator="ct1", at=t0 + timedelta(seconds=5))
    slow = ring(at=t0)
    service.answer(session=db, call=slow, operator="ct2", at=t0 + timedelta(seconds=40))
    service.set_outcome(session=db, call=slow, outcome="information", actor="ct2")
    gone = ring(at=t0)
    service.hang_up(session=db, call=gone, at=t0 + timedelta(seconds=3))
    ring(at=t0 + timedelta(minutes=9))
    s = service.stats(session=db, since=t0 - timedelta(seconds=1), until=t0 + timedelta(hours=1))
    assert s.ringing >= 1 and s.longest_wait_s is not None and s.longest_wait_s >= 50
    assert s.answered == 2 and s.answered_within_target == 1
    assert s.answered_within_target_share == 0.5
    assert s.awaiting_callback >= 1 and s.answered_without_outcome >= 1
    rep = service.shift_report(session=db, start=t0 - timedelta(seconds=1),
                               end=t0 + timedelta(hours=1))
    assert not rep["ok"]
    assert [m["operator"] for m in rep["without_outcome"]] == ["ct1"]
    assert rep["operators"]["ct2"]["without_outcome"] == 0


def test_transfer_while_ringing_closes_the_call(db: Session, ring: Callable[..., Call]) -> None:
    """A call the phone system moves elsewhere is closed as transferred."""
    c = ring(external_id=uuid.uuid4().hex)
    service.transfer(session=db, call=c, to="ambulance-103")
    assert (c.state, c.outcome, c.transferred_to) == ("closed", "transferred", "ambulance-103")
    assert db.get(Call, c.id) is c


def test_nearby_incidents_for_the_duplicate_check(db: Session, make_incident: Callable[..., Any],
                                                  ring: Callable[..., Call]) -> None:
    """Open, recent incidents within the radius of the same category, and the same number's
    anywhere; not another category once one is chosen, not old, not far, not closed."""
    tag = uuid.uuid4().int % 10_000_000
    me, other = f"+38067{tag:07d}", f"+38050{tag:07d}"
    lat, lng = 49.8397, 24.0297  # Lviv: far from the other tests' incidents
    near = make_incident(lat=lat + 0.001, lng=lng, category="theft", caller_phone=other)
    noise = make_incident(lat=lat, lng=lng + 0.001, category="noise", caller_phone=other)
    far_same = make_incident(lat=lat + 0.1, lng=lng, category="noise", caller_phone=me)
    far = make_incident(lat=lat + 0.01, lng=lng, category="theft", caller_phone=other)
    old = make_incident(lat=lat, lng=lng, category="theft", caller_phone=other,
                        received_at=datetime.now(UTC) - timedelta(minutes=45))
    done = make_incident(lat=lat, lng=lng, category="theft", caller_phone=other)
    done.status = "closed"
    db.flush()
    mine = {near.id, noise.id, far_same.id, far.id, old.id, done.id}
    call, anonymous = ring(me), ring(None)

    def found(c: Call = call, **kw: Any) -> list[Any]:
        kw = {"lat": lat, "lng": lng, "region": None, "category": None, **kw}
        return [n for n in service.nearby_for_call(session=db, call=c, **kw) if n.id in mine]

    assert [n.id for n in found(category="theft")] == [far_same.id, near.id]  # number first
    assert [n.id for n in found()] == [far_same.id, noise.id, near.id]  # noise 72 m, theft 111 m
    by_id = {n.id: n for n in found(category="theft")}
    assert by_id[near.id].distance_m == pytest.approx(111.2, abs=1.0)
    assert by_id[far_same.id].same_number and not by_id[near.id].same_number
    assert "caller_phone" not in by_id[near.id].as_dict()
    assert found(anonymous, lat=None, lng=None) == []
    assert [n.id for n in found(lat=None, lng=None)] == [far_same.id]
    assert found(region="ZZ") == []  # another region's console sees none
    with pytest.raises(InvalidInput):
        found(lng=None)
