"""Live fleet in the app lifespan (in-process ingest), the CLI, and the dispatch status hand-off."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from geodispatch.tracking.fleet import UnitState
from geodispatch.tracking.mqtt import drop_session
from geodispatch.users.service import upsert_user
from tests.helpers import login, running_server
from tests.tracking.conftest import (
    count_positions,
    drops,
    mqtt_settings,
    publisher,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]


def test_lifespan_fleet_follows_in_process_ingest(settings: Settings, engine: Engine,
                                                  new_unit: Any) -> None:
    """serve_ingest: an MQTT fix moves the unit in app.state.fleet and in GET /api/units."""
    s = mqtt_settings(settings, serve_ingest=True)
    uid, device, _token = new_unit("life")
    app = create_app(s)
    seen: list[UnitState] = []
    name = f"sup_{uuid.uuid4().hex[:6]}"
    with Session(engine) as db, db.begin():
        upsert_user(session=db, username=name, password="pw-123456", role="supervisor",
                    region=None)
    try:
        with running_server(app) as base:
            app.state.fleet.subscribe(seen.append)
            worker = app.state.tracking_ingest[0]
            assert worker.connected.wait(15)
            assert wait_for(lambda: app.state.fleet.get(uid) is not None, timeout=5)
            pub = publisher(s)
            fix = {"lat": 50.45, "lon": 30.52, "t": int(time.time() * 1000) - 500}
            pub.publish(f"geodispatch/units/{device}/position", orjson.dumps(fix), qos=1)
            assert wait_for(lambda: any(x.unit_id == uid and x.position for x in seen), timeout=10)
            state = app.state.fleet.get(uid)
            assert state.position.lat == 50.45 and state.stale is False
            headers = login(base, name, "pw-123456")
            feature = httpx.get(f"{base}/api/units/{uid}", headers=headers).json()
            assert feature["geometry"]["coordinates"] == [30.52, 50.45]
            pub.loop_stop()
    finally:
        drop_session(s, f"{s.mqtt_client_id}-serve")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "geodispatch.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_units_add_and_import_gpx(engine: Engine, data_dir: Path) -> None:
    """`units add` prints a token once; `tracking import-gpx` stores the Višnjan track."""
    call_sign = f"CLI-{uuid.uuid4().hex[:8]}"
    added = _cli("units", "add", call_sign, "--region", "KV", "--capability", "k9")
    assert added.returncode == 0, added.stderr
    assert "token" in added.stdout
    gpx = data_dir / "traces" / "visnjan_car.gpx"
    imported = _cli("tracking", "import-gpx", str(gpx), "--unit", call_sign)
    assert imported.returncode == 0, imported.stderr
    assert "104 points, 104 stored" in imported.stdout
    with engine.connect() as c:
        uid = c.execute(text("SELECT id FROM units WHERE call_sign = :c"),
                        {"c": call_sign}).scalar()
    assert count_positions(engine, [uid]) == (104, 104)
    listed = _cli("units", "list", "--region", "KV")
    assert call_sign in listed.stdout


def test_status_over_mqtt_reaches_dispatch_workflow(settings: Settings, engine: Engine,
                                                    new_unit: Any) -> None:
    """A crew status published over MQTT goes through dispatch.workflow.crew_status_report; a
    transition the workflow forbids is a counted drop, not a failed batch."""
    from tests.tracking.conftest import running_worker

    s = mqtt_settings(settings)
    uid, device, token = new_unit("wf")
    with engine.begin() as c:
        c.execute(text("UPDATE units SET status = 'off_duty' WHERE id = :u"), {"u": uid})
    before = drops(engine).get("status_rejected", 0)
    with running_worker(s):
        pub = publisher(s, username=device, password=token)
        pub.publish(f"geodispatch/units/{device}/status", b"transporting", qos=1)
        pub.publish(f"geodispatch/units/{device}/status", b'{"status": "available"}', qos=1)

        def status() -> str:
            with engine.connect() as c:
                return str(c.execute(text("SELECT status FROM units WHERE id = :u"),
                                     {"u": uid}).scalar())

        assert wait_for(lambda: status() == "available", timeout=15)
        pub.loop_stop()
    assert drops(engine).get("status_rejected", 0) == before + 1
