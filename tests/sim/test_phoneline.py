"""The demo's phone line: ``geodispatch phoneline`` places real SIP calls through the project's
Kamailio; they ring on the call-taker's list with their AML points and, unanswered, become
callbacks."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from geodispatch.api.app import create_app
from geodispatch.calls.models import Call, CallCallback, CallLocation
from geodispatch.settings import Settings
from tests.helpers import require_sip_tools, running_server


@pytest.fixture(autouse=True, scope="module")
def _sip_tools() -> None:
    require_sip_tools()

BBOX = (39.28, -76.63, 39.30, -76.60)  # downtown Baltimore, the demo's default city


def test_phoneline_rings_calls_with_aml(settings: Settings, engine: Engine, tmp_path: Path
                                        ) -> None:
    """Three callers ring (line 102) and hang up unanswered: three abandoned calls, each a
    callback, each with its AML point inside the box; the command exits 0."""
    app = create_app(settings.model_copy(update={"serve_ingest": False}))
    t0 = datetime.now(UTC)
    with running_server(app) as base:
        proc = subprocess.run(
            [sys.executable, "-m", "geodispatch.cli", "phoneline", "--base-url", base,
             "--calls", "3", "--every-s", "0.3", "--ring-s", "3.5", "4.0", "--aml-share", "1",
             "--bbox", ",".join(map(str, BBOX)), "--seed", "3", "--work-dir", str(tmp_path)],
            env={**os.environ}, capture_output=True, text=True, timeout=90)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    with Session(engine) as s:
        calls = s.execute(select(Call).where(Call.source == "sip", Call.recorded_at >= t0)
                          ).scalars().all()
        assert len(calls) == 3
        for c in calls:
            assert c.line == "102" and c.state == "abandoned", (c.line, c.state)
            assert (c.ended_at - c.ring_at).total_seconds() >= 3.0
            assert s.execute(select(CallCallback).where(CallCallback.call_id == c.id)
                             ).scalar_one().status == "pending"
            loc = s.execute(select(CallLocation).where(CallLocation.call_id == c.id)).scalar_one()
            assert loc.kind == "aml-https" and loc.lat is not None and loc.lng is not None
            assert BBOX[0] <= loc.lat <= BBOX[2] and BBOX[1] <= loc.lng <= BBOX[3]
            assert loc.radius_m is not None and 10 <= loc.radius_m <= 80


def test_stopping_the_line_leaves_no_call_ringing(settings: Settings, engine: Engine,
                                                  tmp_path: Path) -> None:
    """Stopped (SIGINT, as the demo stops it) while a caller still rings: the call is reported
    hung up (abandoned, a callback), not left ringing."""
    import signal
    import time

    app = create_app(settings.model_copy(update={"serve_ingest": False}))
    t0 = datetime.now(UTC)
    with running_server(app) as base:
        proc = subprocess.Popen(
            [sys.executable, "-m", "geodispatch.cli", "phoneline", "--base-url", base,
             "--calls", "1", "--every-s", "0.1", "--ring-s", "120", "121", "--aml-share", "0",
             "--work-dir", str(tmp_path)], env={**os.environ}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                with Session(engine) as s:
                    ringing = s.execute(select(Call).where(
                        Call.source == "sip", Call.recorded_at >= t0,
                        Call.state == "ringing")).scalars().all()
                if ringing:
                    break
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    with Session(engine) as s:
        call = s.get(Call, ringing[0].id)
        assert call is not None and call.state == "abandoned"
