"""Real SIP: SIPp callers through the project's Kamailio to a SIPp operator phone.

20 calls answered, 10 abandoned while ringing, 5 with a PIDF-LO body and a Geolocation header:
each has a record with the right states and times, the abandoned ones are callback tasks with
an SMS in the outbox, and the PIDF-LO ones carry their location. Kamailio runs with its own
config, ports, pid file and directory under the test's tmp dir.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from geodispatch.api.app import create_app
from geodispatch.calls.kamailio import EdgeConfig, Kamailio
from geodispatch.calls.models import Call, CallCallback, CallLocation
from geodispatch.calls.sipp import numbers_csv, sipp
from geodispatch.notify.models import SmsMessage
from geodispatch.settings import Settings
from tests.helpers import free_port, require_sip_tools, running_server


@pytest.fixture(autouse=True, scope="module")
def _sip_tools() -> None:
    require_sip_tools()


@pytest.fixture(scope="module")
def edge(settings: Settings, engine: Engine, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[int, int, int, Path]]:
    app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))
    work = tmp_path_factory.mktemp("sip")
    sip, op, noans = free_port(), free_port(), free_port()
    with running_server(app) as base:
        k = Kamailio(EdgeConfig("127.0.0.1", sip, f"127.0.0.1:{op}", f"127.0.0.1:{noans}",
                                f"{base}/api/calls/sip"), work / "kamailio")
        k.start()
        try:
            yield sip, op, noans, work
        finally:
            k.stop()


def _wait(procs: list[subprocess.Popen[bytes]], timeout: float, work: Path) -> None:
    deadline = time.monotonic() + timeout
    for p in procs:
        left = max(1.0, deadline - time.monotonic())
        try:
            rc = p.wait(timeout=left)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = -1
        if rc != 0:
            logs = "\n".join(f.read_text(errors="replace")[-1500:] for f in work.glob("*.out"))
            raise AssertionError(f"sipp {p.args} exited {rc}\n{logs}")


def _records(engine: Engine, numbers: list[str], timeout: float) -> dict[str, Call]:
    """The SIP calls from ``numbers`` once each has ended (or ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        with Session(engine) as s:
            calls = {c.caller_phone: c for c in s.execute(select(Call).where(
                Call.source == "sip", Call.caller_phone.in_(numbers))).scalars()}
        if (all(n in calls and calls[n].ended_at is not None for n in numbers)
                or time.monotonic() > deadline):
            return calls
        time.sleep(0.2)


def test_sipp_calls_through_kamailio(edge: tuple[int, int, int, Path], engine: Engine) -> None:
    """Answered, abandoned and PIDF-LO calls each leave the right record."""
    sip, op, noans, work = edge
    answered = [f"+38067100{n:04d}" for n in range(20)]
    abandoned = [f"+38067200{n:04d}" for n in range(10)]
    located = [(f"+38067300{n:04d}", 50.45 + n / 1000, 30.52 + n / 1000, 10 + n)
               for n in range(5)]
    phone = sipp("uas_operator.xml", port=op, workdir=work, calls=25)
    ringer = sipp("uas_ringing.xml", port=noans, workdir=work, calls=10)
    time.sleep(0.5)
    t0 = time.time()
    callers = [
        sipp("uac_answered.xml", port=free_port(), workdir=work, target=f"127.0.0.1:{sip}",
             calls=20, rate=10, inject=numbers_csv(work / "a.csv", [[n] for n in answered])),
        sipp("uac_abandoned.xml", port=free_port(), workdir=work, target=f"127.0.0.1:{sip}",
             service="noanswer", calls=10, rate=10,
             inject=numbers_csv(work / "b.csv", [[n] for n in abandoned])),
        sipp("uac_pidf.xml", port=free_port(), workdir=work, target=f"127.0.0.1:{sip}",
             calls=5, rate=5, inject=numbers_csv(work / "c.csv", [list(r) for r in located])),
    ]
    _wait(callers, 90, work)
    _wait([phone, ringer], 30, work)
    # Kamailio reports from its queue: the last hang-ups arrive a moment after the calls end.
    _records(engine, answered + abandoned + [r[0] for r in located], 20)
    with Session(engine) as s:
        calls = {c.caller_phone: c for c in s.execute(
            select(Call).where(Call.source == "sip")).scalars()}
        for n in answered + [r[0] for r in located]:
            c = calls[n]
            assert c.state == "ended", (n, c.state)
            assert c.answered_at is not None and c.ended_at is not None
            assert c.ring_at <= c.answered_at <= c.ended_at
            assert c.operator == "102" and c.outcome is None  # waiting for the call-taker
            assert c.recorded_at.timestamp() >= t0 - 1
        for n in abandoned:
            c = calls[n]
            assert c.state == "abandoned" and c.answered_at is None and c.ended_at is not None
            cb = s.execute(select(CallCallback).where(CallCallback.call_id == c.id)
                           ).scalar_one()
            assert cb.status == "pending" and cb.sms_id is not None
            sms = s.get(SmsMessage, cb.sms_id)
            assert sms is not None and sms.phone == n and sms.template == "missed_call"
        for n, lat, lng, radius in located:
            loc = s.execute(select(CallLocation).where(
                CallLocation.call_id == calls[n].id)).scalar_one()
            assert (loc.kind, loc.lat, loc.lng, loc.radius_m) == ("pidf-lo", lat, lng, radius)
        assert len([c for c in calls if c and c.startswith("+380")]) >= 35


def test_calls_ring_while_the_project_is_down_and_are_recorded_when_it_returns(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    """With nothing listening at the report URL the edge still connects the calls; its
    reporters keep the reports and retry, and once the server comes up every call is recorded
    with the times the edge saw (ringing before the server started)."""
    port, sip, op, noans = free_port(), free_port(), free_port(), free_port()
    k = Kamailio(EdgeConfig("127.0.0.1", sip, f"127.0.0.1:{op}", f"127.0.0.1:{noans}",
                            f"http://127.0.0.1:{port}/api/calls/sip", retry_ms=100),
                 tmp_path / "kamailio")
    answered = [f"+38067400{n:04d}" for n in range(4)]
    abandoned = [f"+38067500{n:04d}" for n in range(3)]
    k.start()
    try:
        phone = sipp("uas_operator.xml", port=op, workdir=tmp_path, calls=4)
        ringer = sipp("uas_ringing.xml", port=noans, workdir=tmp_path, calls=3)
        time.sleep(0.5)
        _wait([
            sipp("uac_answered.xml", port=free_port(), workdir=tmp_path,
                 target=f"127.0.0.1:{sip}", calls=4, rate=10,
                 inject=numbers_csv(tmp_path / "a.csv", [[n] for n in answered])),
            sipp("uac_abandoned.xml", port=free_port(), workdir=tmp_path,
                 target=f"127.0.0.1:{sip}", service="noanswer", calls=3, rate=10,
                 inject=numbers_csv(tmp_path / "b.csv", [[n] for n in abandoned])),
        ], 60, tmp_path)  # the calls went through with the project down
        _wait([phone, ringer], 30, tmp_path)
        assert _records(engine, answered + abandoned, 0) == {}
        assert "reports not delivered" in k.log.read_text()
        started = time.time()
        app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))
        with running_server(app, port=port):
            calls = _records(engine, answered + abandoned, 30)
    finally:
        k.stop()
    assert sorted(calls) == sorted(answered + abandoned)
    for n in answered:
        c = calls[n]
        assert c.state == "ended" and c.answered_at is not None and c.operator == "102"
        assert c.ring_at.timestamp() < started < c.recorded_at.timestamp()
    with Session(engine) as s:
        for n in abandoned:
            c = calls[n]
            assert c.state == "abandoned" and c.ring_at.timestamp() < started
            assert s.execute(select(CallCallback).where(CallCallback.call_id == c.id)
                             ).scalar_one().status == "pending"


def test_kamailio_down_with_the_project_its_log_is_replayed(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    """The project is unreachable and then Kamailio stops too: what it had queued is gone from
    its memory, but `calls replay-edge-log` posts the reports from its log and every call is
    recorded with its real states; replaying the log again records nothing twice."""
    from geodispatch.calls.cli import edge_log_reports, replay

    port, sip, op, noans = free_port(), free_port(), free_port(), free_port()
    k = Kamailio(EdgeConfig("127.0.0.1", sip, f"127.0.0.1:{op}", f"127.0.0.1:{noans}",
                            f"http://127.0.0.1:{port}/api/calls/sip", retry_ms=100),
                 tmp_path / "kamailio")
    answered = [f"+38067600{n:04d}" for n in range(3)]
    abandoned = [f"+38067700{n:04d}" for n in range(2)]
    k.start()
    try:
        phone = sipp("uas_operator.xml", port=op, workdir=tmp_path, calls=3)
        ringer = sipp("uas_ringing.xml", port=noans, workdir=tmp_path, calls=2)
        time.sleep(0.5)
        _wait([
            sipp("uac_answered.xml", port=free_port(), workdir=tmp_path,
                 target=f"127.0.0.1:{sip}", calls=3, rate=10,
                 inject=numbers_csv(tmp_path / "a.csv", [[n] for n in answered])),
            sipp("uac_abandoned.xml", port=free_port(), workdir=tmp_path,
                 target=f"127.0.0.1:{sip}", service="noanswer", calls=2, rate=10,
                 inject=numbers_csv(tmp_path / "b.csv", [[n] for n in abandoned])),
        ], 60, tmp_path)
        _wait([phone, ringer], 30, tmp_path)
    finally:
        k.stop()  # with its queue
    app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))
    with running_server(app, port=port) as base:
        time.sleep(0.5)
        assert _records(engine, answered + abandoned, 0) == {}  # nothing left to deliver them
        reports = list(edge_log_reports(k.log.read_text().splitlines()))
        assert len(reports) >= 5 * 2 + 3  # INVITE and BYE/CANCEL of each, 200 OK of 3
        first = replay(reports, url=f"{base}/api/calls/sip/batch")
        again = replay(reports, url=f"{base}/api/calls/sip/batch")
        calls = _records(engine, answered + abandoned, 5)
    assert first["created"] == 5 and first["refused"] == 0
    assert again["created"] == 0 and again["reports"] == first["reports"]
    assert all(calls[n].state == "ended" and calls[n].operator == "102" for n in answered)
    assert all(calls[n].state == "abandoned" for n in abandoned)
