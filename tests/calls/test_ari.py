"""The Asterisk ARI adapter against a local stand-in that speaks ARI (WebSocket events, REST
channels and bridges, Basic auth): answered, abandoned and transferred calls each get the right
record; a reconnection picks up what happened meanwhile; bad messages are refused and counted."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from geodispatch.api.app import create_app
from geodispatch.calls.ari import AriEventError, Translator, endpoint_of, parse_time
from geodispatch.calls.models import Call, CallCallback
from geodispatch.settings import Settings
from tests.calls.ari_standin import (
    AriStandIn,
    Script,
    abandoned_call,
    answered_call,
    ari_time,
    channel,
    ringing,
    transferred_call,
)
from tests.helpers import running_server

APP = "geodispatch"


def number() -> str:
    return f"+38063{uuid.uuid4().int % 10**7:07d}"


def wait_for(engine: Engine, external_id: str, ok: Callable[[Call], bool],
             timeout: float = 10.0) -> Call:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        with Session(engine) as s:
            last = s.execute(select(Call).where(Call.source == "ari",
                                                Call.external_id == external_id)).scalar()
            if last is not None and ok(last):
                s.expunge(last)
                return last
        time.sleep(0.05)
    raise AssertionError(f"call {external_id}: not as expected in {timeout} s; last: "
                         f"{None if last is None else (last.state, last.operator, last.outcome)}")


@pytest.fixture(scope="module")
def standin() -> Iterator[AriStandIn]:
    with AriStandIn(app=APP) as s:
        yield s


@pytest.fixture(scope="module")
def adapter_app(standin: AriStandIn, settings: Settings) -> Iterator[FastAPI]:
    """The real server with its ARI adapter pointed at the stand-in."""
    app = create_app(settings.model_copy(update={
        "serve_ingest": False, "calls_ari_url": standin.url, "calls_ari_user": standin.user,
        "calls_ari_password": standin.password, "calls_ari_app": APP}))
    with running_server(app):
        deadline = time.monotonic() + 10
        while standin.subscriptions < 1 or not standin.clients:
            assert time.monotonic() < deadline, app.state.ari.last_error
            time.sleep(0.05)
        time.sleep(0.2)  # the first reconciliation's REST calls
        yield app


def t0() -> datetime:
    return (datetime.now(UTC) - timedelta(seconds=90)).replace(microsecond=0)


def test_answered_call(standin: AriStandIn, adapter_app: FastAPI, engine: Engine) -> None:
    """Ring at the channel's creation, answered when the call-taker's phone is mixed with it
    (not when the PBX answered the line for hold music), by that phone's endpoint; hung up."""
    start, phone = t0(), number()
    cid, events = answered_call(APP, phone, start, operator="ct7")
    standin.send(events)
    call = wait_for(engine, cid, lambda c: c.state == "ended")
    assert call.caller_phone == phone and call.line == "102"
    assert call.ring_at == start
    assert call.answered_at == start + timedelta(seconds=6.7)
    assert call.operator == "ct7"
    assert call.ended_at == start + timedelta(seconds=20)
    assert call.outcome is None  # the call-taker still has to say what it was
    assert "/ari/channels" in standin.rest_calls and "/ari/bridges" in standin.rest_calls


def test_abandoned_call(standin: AriStandIn, adapter_app: FastAPI, engine: Engine) -> None:
    """Hung up while in the queue's holding bridge (its line answered by the PBX): abandoned,
    a callback task with the 'we missed your call' SMS."""
    start, phone = t0(), number()
    cid, events = abandoned_call(APP, phone, start)
    standin.send(events)
    call = wait_for(engine, cid, lambda c: c.state == "abandoned")
    assert call.answered_at is None and call.operator is None
    assert call.ended_at == start + timedelta(seconds=9)
    with Session(engine) as s:
        cb = s.execute(select(CallCallback).where(CallCallback.call_id == call.id)).scalar_one()
        assert cb.status == "pending" and cb.phone == phone and cb.sms_id is not None


def test_transferred_call(standin: AriStandIn, adapter_app: FastAPI, engine: Engine) -> None:
    """Answered by ct8, then blind-transferred to 103@agencies: closed with the outcome
    'transferred'; the channel's later destruction changes nothing."""
    start, phone = t0(), number()
    cid, events = transferred_call(APP, phone, start, operator="ct8")
    standin.send(events)
    call = wait_for(engine, cid, lambda c: c.state == "closed")
    assert call.operator == "ct8" and call.answered_at == start + timedelta(seconds=4.2)
    assert call.outcome == "transferred" and call.transferred_to == "103@agencies"
    assert call.closed_at == start + timedelta(seconds=15)


def test_reconnection_records_what_happened_meanwhile(
    standin: AriStandIn, adapter_app: FastAPI, engine: Engine
) -> None:
    """A call ringing when the WebSocket drops and gone when it is back is hung up (abandoned,
    a callback); one that started ringing meanwhile is recorded from GET /ari/channels."""
    before = standin.subscriptions
    s1 = Script(APP, t0())
    ringing(s1, number())
    gone_id = s1.events[0]["channel"]["id"]
    standin.send(s1.events)
    wait_for(engine, gone_id, lambda c: c.state == "ringing")
    standin.refusing = True  # nothing reconnects until the world below has changed
    standin.drop_clients()
    standin.send([{**s1.events[-1], "type": "ChannelDestroyed", "cause": 16,
                   "cause_txt": "Normal Clearing", "channel": s1.events[0]["channel"]}],
                 broadcast=False)
    s2 = Script(APP, t0())
    phone = number()
    ringing(s2, phone)
    new_id = s2.events[0]["channel"]["id"]
    standin.send(s2.events, broadcast=False)
    standin.refusing = False
    deadline = time.monotonic() + 10
    while standin.subscriptions <= before:
        assert time.monotonic() < deadline, "the adapter did not reconnect"
        time.sleep(0.05)
    gone = wait_for(engine, gone_id, lambda c: c.state == "abandoned")
    assert gone.ended_at is not None
    new = wait_for(engine, new_id, lambda c: c.state == "ringing")
    assert new.caller_phone == phone and new.ring_at == s2.t0


def test_bad_messages_are_refused_and_counted(
    standin: AriStandIn, adapter_app: FastAPI, engine: Engine
) -> None:
    """Not JSON, not an object, a StasisStart without a channel id: counted, and the next call
    is still recorded."""
    adapter = adapter_app.state.ari
    bad = adapter.bad_events
    standin.send_raw("not json")
    standin.send_raw("[1, 2]")
    standin.send_raw('{"type": "StasisStart", "application": "geodispatch", "channel": {}}')
    start, phone = t0(), number()
    cid, events = abandoned_call(APP, phone, start)
    standin.send(events)
    wait_for(engine, cid, lambda c: c.state == "abandoned")
    assert adapter.bad_events == bad + 3


def test_wrong_password_is_refused(standin: AriStandIn, settings: Settings) -> None:
    """ARI answers 401 to a wrong password; the adapter says so and keeps retrying."""
    app = create_app(settings.model_copy(update={
        "serve_ingest": False, "calls_ari_url": standin.url, "calls_ari_user": standin.user,
        "calls_ari_password": "wrong", "calls_ari_app": APP}))
    rejected = len(standin.rejected)
    with running_server(app):
        deadline = time.monotonic() + 10
        while len(standin.rejected) < rejected + 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert "401" in (app.state.ari.last_error or "")


# --- the translator alone -----------------------------------------------------------------------

def test_translator_dial_answer_and_odd_shapes() -> None:
    """A Dial answered for the caller answers it by the peer's endpoint; operator legs never
    ring; events of shapes ARI does not send are refused with the reason."""
    tr = Translator(APP)
    now = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    caller = channel("c1", "PJSIP/trunk-1", "+380631234567", "Ring", now)
    peer = channel("o1", "PJSIP/ct3-0000001a", "102", "Up", now)
    ring = tr.feed({"type": "StasisStart", "timestamp": ari_time(now), "args": [],
                    "channel": caller})
    assert [(s.kind, s.channel, s.caller, s.line, s.at) for s in ring] == \
        [("ring", "c1", "+380631234567", "102", now)]
    assert tr.feed({"type": "StasisStart", "args": ["dialed"], "channel": peer}) == []
    assert tr.feed({"type": "Dial", "caller": caller, "peer": peer, "dialstatus": "RINGING"}) \
        == []
    ans = tr.feed({"type": "Dial", "caller": caller, "peer": peer, "dialstatus": "ANSWER",
                   "timestamp": "2026-12-05T10:00:04.500+0000"})
    assert [(s.kind, s.operator, s.at) for s in ans] == \
        [("answer", "ct3", now + timedelta(seconds=4.5))]
    assert tr.feed({"type": "ChannelHangupRequest", "cause": 17, "channel": caller})[0].reason \
        == "User busy"
    assert tr.feed({"type": "ChannelDestroyed", "cause": 16, "channel": caller}) == []
    assert tr.feed({"type": "PlaybackStarted", "playback": {}}) == []
    for bad, why in [({}, "type"), ({"type": "StasisStart", "channel": {"id": ""}}, "channel"),
                     ({"type": "StasisStart", "channel": caller, "args": "x"}, "args"),
                     ({"type": "ChannelEnteredBridge"}, "bridge"),
                     ({"type": "Dial", "timestamp": "yesterday"}, "time")]:
        with pytest.raises(AriEventError, match=why):
            tr.feed(bad)


@pytest.mark.parametrize(("name", "endpoint"), [
    ("PJSIP/ct7-0000001a", "ct7"), ("SIP/operator-12-00000002", "operator-12"),
    ("Local/ct9@agents-00000001;1", "ct9"), ("PJSIP/ct5", "ct5")])
def test_endpoint_of(name: str, endpoint: str) -> None:
    """The call-taker's name is the channel's endpoint."""
    assert endpoint_of(name) == endpoint


def test_parse_time() -> None:
    """ARI's +0000 offset form; a time without a zone is refused."""
    assert parse_time("2026-12-05T10:00:00.123+0000") == \
        datetime(2026, 12, 5, 10, 0, 0, 123000, tzinfo=UTC)
    assert parse_time(None) is None
    with pytest.raises(AriEventError, match="zone"):
        parse_time("2026-12-05T10:00:00")
