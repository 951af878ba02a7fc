"""End to end: `geodispatch demo --headless --auto` on Baltimore, then the record is checked.

The demo runs as a subprocess, exactly as `make demo` starts it, against a throwaway database
created for this test (the test database's name + ``_demo``: the demo commits crews, incidents and
an append-only event log, which must not leak into other tests), on a free port, with its own
MQTT client id and shared-subscription group. After ``--duration`` it stops by itself; then the
test reads the database: incidents registered, crews recommended by drive time and assigned,
closing in on their incidents and reporting arrival, SMS for registration, assignment and
arrival, every event log verifying, and a heatmap rendered from the run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from geodispatch.settings import Settings
from tests.helpers import free_port, require_sip_tools

pytestmark = pytest.mark.slow

DURATION_S = 75
UNITS = 150
PREFIX = "E2E"


@dataclass
class DemoRun:
    app_url: str
    admin_url: str
    output: str
    returncode: int
    elapsed_s: float
    work_dir: Path
    port: int
    anchors: Path


def _with_db(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def demo_db(settings: Settings) -> Iterator[tuple[str, str]]:
    """A fresh, empty PostGIS database for the demo; dropped afterwards."""
    name = f"{make_url(settings.database_url).database}_demo"
    server = create_engine(_with_db(settings.admin_database_url, "postgres"),
                           isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}" OWNER geodispatch'))
    admin_url = _with_db(settings.admin_database_url, name)
    eng = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    eng.dispose()
    yield _with_db(settings.database_url, name), admin_url
    with server.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    server.dispose()


@pytest.fixture(scope="module")
def demo_run(demo_db: tuple[str, str], settings: Settings, artifacts: Path,
             tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    app_url, admin_url = demo_db
    # The database is recreated for every run: its tree heads must not meet the last run's.
    anchors = tmp_path_factory.mktemp("demo") / "tree-heads.jsonl"
    port = free_port()
    tag = uuid.uuid4().hex[:8]
    var_dir = settings.var_dir
    env = {
        **os.environ,
        "GEODISPATCH_DATABASE_URL": app_url,
        "GEODISPATCH_ADMIN_DATABASE_URL": admin_url,
        "GEODISPATCH_MQTT_CLIENT_ID": f"e2e-ingest-{tag}",
        "GEODISPATCH_MQTT_SHARED_GROUP": f"e2e{tag}",
        "GEODISPATCH_GRAPH_PATH": str(var_dir / "e2e" / "graph.npz"),
        "GEODISPATCH_TILE_URL": "",
        "GEODISPATCH_LOG_TREE_HEAD_FILE": str(anchors),
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [sys.executable, "-m", "geodispatch.cli", "demo", "--headless", "--auto",
           "--duration", str(DURATION_S), "--port", str(port), "--units", str(UNITS),
           "--prefix", PREFIX, "--speedup", "40", "--report-s", "2", "--on-scene-s", "10", "20",
           "--dropouts-per-h", "20", "--phone-every-s", "4"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=DURATION_S + 240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail("the demo did not stop after --duration:\n" + out.decode(errors="replace"))
    text_out = out.decode(errors="replace")
    (artifacts / "demo_e2e.log").write_text(text_out)
    return DemoRun(app_url=app_url, admin_url=admin_url, output=text_out,
                   returncode=proc.returncode, elapsed_s=time.monotonic() - t0,
                   work_dir=var_dir / "demo" / str(make_url(app_url).database), port=port,
                   anchors=anchors)


@pytest.fixture(scope="module")
def demo_engine(demo_run: DemoRun) -> Iterator[Engine]:
    eng = create_engine(demo_run.app_url)
    yield eng
    eng.dispose()


def _scalar(engine: Engine, sql: str, **params: object) -> object:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def _logs(run: DemoRun) -> str:
    logs = run.work_dir / "logs"
    parts = [run.output]
    for name in ("api", "simulate", "callgen", "phoneline"):
        f = logs / f"{name}.log"
        if f.exists():
            parts.append(f"--- {name}.log (tail)\n" + f.read_text(errors="replace")[-4000:])
    return "\n".join(parts)


def test_demo_runs_and_stops_cleanly(demo_run: DemoRun) -> None:
    """The demo starts everything, prints the users, and stops by itself with status 0."""
    assert demo_run.returncode == 0, _logs(demo_run)
    assert "dispatcher" in demo_run.output and "stopped cleanly" in demo_run.output
    # A crew sign-in a person can open: the app's URL, the officer's credentials and a car.
    assert f"http://127.0.0.1:{demo_run.port}/crew" in demo_run.output
    line = next(x for x in demo_run.output.splitlines() if "Officer tab:" in x)
    assert f"call sign {PREFIX}" in line and "officer / " in line
    # No child outlived the demo (the API server was started with this port).
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"--port {demo_run.port}" not in ps


def test_crews_and_positions(demo_engine: Engine, demo_run: DemoRun) -> None:
    """Every simulated crew exists and its positions arrived over MQTT (both payload kinds)."""
    n = _scalar(demo_engine, "SELECT count(*) FROM units WHERE call_sign LIKE :p", p=f"{PREFIX}-%")
    assert n == UNITS
    sources = dict(_rows(demo_engine, "SELECT source, count(*) FROM positions GROUP BY source"))
    assert sources.get("native", 0) > UNITS and sources.get("owntracks", 0) > 10, _logs(demo_run)
    latest = _scalar(demo_engine, "SELECT count(*) FROM unit_latest")
    assert latest >= UNITS * 0.9  # type: ignore[operator]
    # Fixes buffered out of coverage arrived later as batches, stored with their own fix times.
    late = _scalar(demo_engine, "SELECT count(*) FROM positions "
                                "WHERE received_at - fix_time > interval '15 seconds'")
    assert late > 0  # type: ignore[operator]


def _rows(engine: Engine, sql: str, **params: object) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def test_incidents_registered(demo_engine: Engine, demo_run: DemoRun) -> None:
    """The call generator registered replayed calls with references and caller phones."""
    rows = _rows(demo_engine, "SELECT reference, caller_phone, category FROM incidents")
    assert len(rows) >= 5, _logs(demo_run)
    assert all(r[0] and str(r[1]).startswith("+1202555") for r in rows)


def test_crews_recommended_by_drive_time_and_assigned(demo_engine: Engine,
                                                      demo_run: DemoRun) -> None:
    """Incidents got crews from the recommendation, with a road ETA and distance."""
    rows = _rows(demo_engine, "SELECT was_recommended, eta_s, distance_m FROM assignments")
    assert len(rows) >= 3, _logs(demo_run)
    assert all(r[0] for r in rows)
    # A road ETA and distance on every one: positive, or both zero for a crew already standing
    # at the incident's road point (a crew parked at the junction a spur's incident is placed at).
    bad = [r for r in rows if r[1] is None or r[2] is None or r[1] < 0 or r[2] < 0
           or (r[1] == 0) != (r[2] == 0)]
    assert not bad, f"assignments without a road ETA and distance: {bad}"
    # Each assignment took a top crew of the recommendation recorded just before it, ranked by
    # road drive time (the zone rules may put an in-sector crew ahead of a slightly faster one).
    recos = _rows(demo_engine, """
        SELECT DISTINCT ON (a.id) a.unit_id, a.eta_s, e.data
        FROM assignments a JOIN incident_events e
          ON e.incident_id = a.incident_id AND e.kind = 'recommended' AND e.at <= a.dispatched_at
        ORDER BY a.id, e.id DESC""")
    assert len(recos) == len(rows)
    for unit_id, eta_s, data in recos:
        assert data["straight_line_fallback"] is False  # type: ignore[index]
        top = {r["unit_id"]: r["eta_s"] for r in data["ranked"][:3]}  # type: ignore[index]
        assert unit_id in top and abs(top[unit_id] - eta_s) < 1e-6  # type: ignore[operator]


def test_crews_converge_and_report_arrival(demo_engine: Engine, demo_run: DemoRun) -> None:
    """Assigned crews' fixes close in on the incident, and they report on scene there."""
    arrived = _rows(demo_engine, """
        SELECT a.unit_id, a.dispatched_at, a.on_scene_at, i.location
        FROM assignments a JOIN incidents i ON i.id = a.incident_id
        WHERE a.on_scene_at IS NOT NULL""")
    assert arrived, "no crew reported arrival\n" + _logs(demo_run)
    converged = 0
    for unit_id, t_from, t_to, _loc in arrived:
        d = _rows(demo_engine, """
            SELECT ST_Distance(p.geom::geography, i.location::geography)
            FROM positions p, assignments a JOIN incidents i ON i.id = a.incident_id
            WHERE a.unit_id = :u AND a.dispatched_at = :f AND p.unit_id = :u
              AND p.fix_time BETWEEN :f AND :t + interval '1 second'
            ORDER BY p.fix_time""", u=unit_id, f=t_from, t=t_to)
        dists = [float(r[0]) for r in d]  # type: ignore[arg-type]
        if len(dists) >= 2 and dists[-1] < 150.0 and dists[-1] <= dists[0]:
            converged += 1
    assert converged >= max(1, len(arrived) // 2), arrived


def test_sms_for_registration_assignment_and_arrival(demo_engine: Engine,
                                                     demo_run: DemoRun) -> None:
    """The outbox holds the caller's registration, assignment and arrival messages."""
    templates = {str(r[0]) for r in _rows(demo_engine, "SELECT DISTINCT template FROM sms_outbox")}
    joined = " ".join(sorted(templates))
    assert any("regist" in t for t in templates), joined
    assert any("assign" in t for t in templates), joined
    assert any("arriv" in t or "on_scene" in t for t in templates), joined


def test_every_event_log_verifies(demo_engine: Engine, demo_run: DemoRun) -> None:
    """The record verifies against the signed log the demo's sequencer kept."""
    from geodispatch.incidents.verify import verify_record
    from geodispatch.ledger.service import public_key
    from geodispatch.settings import get_settings

    key = public_key(get_settings())
    with Session(demo_engine) as session:
        report = verify_record(session=session, public_key=key)
        assert report.ok, report.findings[:5]
        assert report.events > 0 and report.sealed > 0


def test_heatmap_from_the_run(demo_engine: Engine, demo_run: DemoRun, artifacts: Path) -> None:
    """The demo rendered an H3 heatmap of the run; the analytics API renders one here too."""
    from datetime import UTC, datetime, timedelta

    from geodispatch.analytics.heatmap import render_heatmap
    from geodispatch.analytics.intervals import refresh_intervals

    made = demo_run.work_dir / "heatmap.html"
    assert made.exists() and "OpenStreetMap" in made.read_text(), _logs(demo_run)
    out = artifacts / "demo_heatmap.html"
    with Session(demo_engine) as session, session.begin():
        assert refresh_intervals(session=session) >= 0
        now = datetime.now(UTC)
        path = render_heatmap(session=session, metric="median_response", res=9,
                              start=now - timedelta(days=1), end=now + timedelta(hours=1), out=out)
    assert path.exists() and path.stat().st_size > 1000
    assert "OpenStreetMap" in path.read_text()


def test_simulator_stats(demo_run: DemoRun, demo_engine: Engine) -> None:
    """The simulator's own counters: fixes sent, dropout batches, statuses, assignments.

    Crews received no assignment but this run's (none left retained by an earlier run).
    """
    stats = json.loads((demo_run.work_dir / "simulate.json").read_text())
    assert stats["crews"] == UNITS and stats["fixes"] > UNITS and stats["batches"] > 0
    assert stats["assignments"] >= 1 and stats["statuses"].get("en_route", 0) >= 1
    # The crews acknowledge through the delivery path (MQTT ack topic -> ingest -> workflow).
    assert stats["acks"].get("acknowledged", 0) >= 1, stats
    acked = _scalar(demo_engine, "SELECT count(*) FROM assignments "
                                 "WHERE acknowledged_at IS NOT NULL AND delivered_at IS NOT NULL")
    assert acked >= 1, _logs(demo_run)  # type: ignore[operator]
    events = _scalar(demo_engine, "SELECT count(*) FROM incident_events "
                                  "WHERE kind = 'assignment_acknowledged' AND actor LIKE 'mqtt:%'")
    assert events == acked, (events, acked)
    assigned = _scalar(demo_engine, "SELECT count(*) FROM assignments")
    assert stats["assignments"] <= assigned, (stats, assigned)


def test_phone_line_rang(demo_engine: Engine, demo_run: DemoRun) -> None:
    """The simulated phone line's SIP calls came through Kamailio: each has a record on line
    102, most with their AML point; the unanswered ones are callbacks."""
    require_sip_tools()
    n = _scalar(demo_engine, "SELECT count(*) FROM calls WHERE source = 'sip' AND line = '102'")
    assert n >= 5, _logs(demo_run)  # type: ignore[operator]
    located = _scalar(demo_engine, "SELECT count(DISTINCT call_id) FROM call_locations "
                                   "WHERE kind = 'aml-https' AND call_id IS NOT NULL")
    assert located >= 2, _logs(demo_run)  # type: ignore[operator]
    abandoned = _scalar(demo_engine, "SELECT count(*) FROM calls c JOIN call_callbacks b "
                                     "ON b.call_id = c.id WHERE c.state = 'abandoned'")
    assert abandoned >= 1, _logs(demo_run)  # type: ignore[operator]
