"""Device identities: one login namespace, deactivation revokes at once, tokens never logged."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from geodispatch.api.app import create_app
from geodispatch.errors import Conflict
from geodispatch.settings import Settings
from geodispatch.tracking.broker import broker_dir, read_passwd
from geodispatch.tracking.models import Unit
from geodispatch.tracking.service import authenticate_device, create_unit, deactivate_unit
from tests.helpers import free_port, running_server
from tests.tracking.conftest import (
    connect_device,
    count_positions,
    drops,
    mqtt_settings,
    publisher,
    running_worker,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]
OSMAND = "/api/ingest/osmand"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "geodispatch.cli", *args], cwd=ROOT,
                          env=dict(os.environ), capture_output=True, text=True, timeout=60)


def _passwd(settings: Settings) -> dict[str, str]:
    return read_passwd(broker_dir(settings) / "passwd")


def test_owntracks_user_cannot_take_another_units_device_id(new_unit: Any,
                                                            settings: Settings) -> None:
    """`units add --owntracks-user X`, X another unit's device id: refused with a clear error;
    X's broker password is untouched."""
    _uid, victim, _token = new_unit("ns")
    before = _passwd(settings)[victim]
    r = _cli("units", "add", f"NS-{uuid.uuid4().hex[:8]}", "--region", "KV",
             "--owntracks-user", victim)
    assert r.returncode == 1, r.stdout
    assert f"{victim!r} is already the device id of unit" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert _passwd(settings)[victim] == before


def test_device_id_cannot_take_an_owntracks_user(db: Session, settings: Settings) -> None:
    """The other direction, and two units sharing one OwnTracks user: refused too."""
    tag = uuid.uuid4().hex[:8]
    create_unit(session=db, call_sign=f"OT-{tag}", kind="patrol_car", capabilities=[],
                region="KV", owntracks_user=f"alice-{tag}", owntracks_device="phone",
                settings=settings)
    with pytest.raises(Conflict, match="already the OwnTracks user of unit"):
        create_unit(session=db, call_sign=f"DV-{tag}", kind="patrol_car", capabilities=[],
                    region="KV", device_id=f"alice-{tag}", settings=settings)
    with pytest.raises(Conflict, match="already the OwnTracks user"):
        create_unit(session=db, call_sign=f"TB-{tag}", kind="patrol_car", capabilities=[],
                    region="KV", owntracks_user=f"alice-{tag}", owntracks_device="tablet",
                    settings=settings)


def _connect_refused_at(settings: Settings, device: str, token: str) -> float | None:
    """``time.monotonic()`` when the broker refused a connect with these credentials (a refusing
    CONNACK, or the connection closed before any), None when it accepted or never answered."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from geodispatch.tracking.broker import server_credentials

    _u, _p, host, port = server_credentials(settings)
    outcome: list[tuple[bool, float]] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:8]}",
                         protocol=paho.MQTTv5)
    client.username_pw_set(device, token)
    client.on_connect = lambda _c, _u, _f, rc, _p: outcome.append(
        (bool(rc.is_failure), time.monotonic()))
    client.on_disconnect = lambda *_a: outcome.append((True, time.monotonic()))
    client.connect(host, port)
    client.loop_start()
    try:
        wait_for(lambda: bool(outcome), timeout=5.0, step=0.005)
    finally:
        client.disconnect()
        client.loop_stop()
    return outcome[0][1] if outcome and outcome[0][0] else None


def test_deactivated_unit_is_refused_within_a_second(settings: Settings, engine: Engine,
                                                     new_unit: Any) -> None:
    """Deactivate a unit: within a second its live MQTT connection is dropped, its next connect
    and its next HTTP fix are refused, and a fix already queued for it is not stored."""
    s = mqtt_settings(settings)
    uid, device, token = new_unit("deact")
    topic = f"geodispatch/units/{device}/position"
    now = int(time.time()) - 60
    app = create_app(settings.model_copy(update={"serve_ingest": False}))
    with running_worker(s), running_server(app) as base:
        crew = connect_device(s, device, token)
        dropped = threading.Event()
        crew.on_disconnect = lambda *_a: dropped.set()
        crew.publish(topic, orjson.dumps({"lat": 50.45, "lon": 30.52, "t": now}),
                     qos=1).wait_for_publish(5)
        assert wait_for(lambda: count_positions(engine, [uid])[0] == 1, timeout=15)
        ok = httpx.get(base + OSMAND, params={"id": device, "lat": "50.4501", "lon": "30.52",
                                              "timestamp": str(now + 1)},
                       headers={"X-Device-Token": token})
        assert ok.status_code == 200
        with Session(engine) as session, session.begin():
            unit = session.get(Unit, uid)
            assert unit is not None
            deactivate_unit(session=session, unit=unit, settings=s)
        t0 = time.monotonic()
        assert dropped.wait(1.0), "the live connection was not dropped"
        t_drop = time.monotonic() - t0
        r = httpx.get(base + OSMAND, params={"id": device, "lat": "50.4502", "lon": "30.52",
                                             "timestamp": str(now + 2)},
                      headers={"X-Device-Token": token})
        t_http = time.monotonic() - t0
        assert r.status_code in (400, 401) and r.json()["reason"] == "unknown_device"
        refused_at = _connect_refused_at(s, device, token)
        assert refused_at is not None, "the broker accepted a deactivated unit"
        t_mqtt = refused_at - t0
        logging.getLogger(__name__).info(
            "deactivation: connection dropped %.3f s, HTTP refused %.3f s, connect refused "
            "%.3f s after the commit", t_drop, t_http, t_mqtt)
        assert t_drop < 1.0 and t_http < 1.0 and t_mqtt < 1.0
        crew.loop_stop()
        # A fix on its topic that is already in the broker (here sent by the server account)
        # is dropped by the ingest worker once its directory has reloaded.
        before = drops(engine).get("unknown_device", 0)
        time.sleep(1.0)
        server = publisher(s)
        server.publish(topic, orjson.dumps({"lat": 50.4503, "lon": 30.52, "t": now + 3}),
                       qos=1).wait_for_publish(5)
        assert wait_for(lambda: drops(engine).get("unknown_device", 0) > before, timeout=10)
        server.loop_stop()
        assert count_positions(engine, [uid])[0] == 2
    assert device not in _passwd(settings)
    with Session(engine) as session, pytest.raises(Exception, match="unknown device"):
        authenticate_device(session=session, device_id=device, token=token)


def test_query_token_not_in_access_log(settings: Settings, new_unit: Any) -> None:
    """`?token=` (Traccar Client's only way) is masked in uvicorn's access log."""
    _uid, device, token = new_unit("log")
    app = create_app(settings.model_copy(update={"serve_ingest": False}))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info",
                                           access_log=True, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Keep()
    try:
        assert wait_for(lambda: server.started, timeout=30)
        access = logging.getLogger("uvicorn.access")
        access.addHandler(handler)
        r = httpx.get(f"http://127.0.0.1:{port}{OSMAND}?id={device}&lat=50.45&lon=30.52"
                      f"&timestamp={int(time.time())}&token={token}")
        assert r.status_code == 200
        assert wait_for(lambda: any(OSMAND in line for line in lines), timeout=5)
    finally:
        logging.getLogger("uvicorn.access").removeHandler(handler)
        server.should_exit = True
        thread.join(15)
    line = next(x for x in lines if OSMAND in x)
    assert token not in line and "token=***" in line and f"id={device}" in line


def test_rotation_covers_every_login_and_sync_prunes(db: Session, settings: Settings,
                                                     tmp_path: Path) -> None:
    """A new token replaces the broker password of the device id and the OwnTracks user; a
    full sync keeps active units' logins (and the server's) and drops everything else."""
    from geodispatch.tracking.broker import change_passwd, write_passwd
    from geodispatch.tracking.service import active_logins, rotate_token

    s = settings.model_copy(update={"var_dir": tmp_path})
    tag = uuid.uuid4().hex[:8]
    unit, _token = create_unit(session=db, call_sign=f"RT-{tag}", kind="patrol_car",
                               capabilities=[], region="KV", owntracks_user=f"rt-ot-{tag}",
                               settings=s)
    db.commit()  # the savepoint: the broker file changes after a commit only
    first = _passwd(s)
    assert {unit.device_id, f"rt-ot-{tag}"} <= set(first)
    rotate_token(session=db, unit=unit, settings=s)
    db.commit()
    second = _passwd(s)
    assert second[unit.device_id] != first[unit.device_id]
    assert second[f"rt-ot-{tag}"] != first[f"rt-ot-{tag}"]
    write_passwd(broker_dir(s) / "passwd", {**second, "stale-device": "$7$x"})
    removed = change_passwd(s, keep_only=active_logins(session=db), reload=False)
    after = _passwd(s)
    assert removed == 1 and "stale-device" not in after
    assert {unit.device_id, f"rt-ot-{tag}"} <= set(after)
