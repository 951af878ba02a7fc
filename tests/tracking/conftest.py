"""Tracking fixtures: the real tracker vectors, committed units with tokens, MQTT helpers."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geodispatch.settings import Settings
from geodispatch.tracking.models import Unit
from geodispatch.tracking.service import create_unit, rotate_token


@pytest.fixture(scope="session")
def vectors(data_dir: Path) -> list[dict[str, Any]]:
    data = json.loads((data_dir / "protocols" / "tracker_vectors.json").read_text())
    return list(data["vectors"])


def ensure_unit(engine: Engine, settings: Settings, device_id: str, *, region: str = "KV",
                **kw: Any) -> tuple[int, str]:
    """A committed unit for ``device_id`` (reused across runs) with a fresh token and no history."""
    with Session(engine, expire_on_commit=False) as s, s.begin():
        unit = s.query(Unit).filter_by(device_id=device_id).one_or_none()
        if unit is None:
            unit, token = create_unit(session=s, call_sign=device_id[:32], kind="patrol_car",
                                      capabilities=[], region=region, device_id=device_id,
                                      settings=settings, **kw)
        else:
            token = rotate_token(session=s, unit=unit, settings=settings)
        s.execute(text("DELETE FROM positions WHERE unit_id = :u"), {"u": unit.id})
        s.execute(text("DELETE FROM unit_latest WHERE unit_id = :u"), {"u": unit.id})
        return unit.id, token


@pytest.fixture()
def new_unit(engine: Engine, settings: Settings) -> Iterator[Any]:
    """Factory of fresh committed units: ``new_unit(prefix) -> (unit_id, device_id, token)``."""

    def make(prefix: str = "T", **kw: Any) -> tuple[int, str, str]:
        device = f"{prefix}-{uuid.uuid4().hex[:10]}"
        uid, token = ensure_unit(engine, settings, device, **kw)
        return uid, device, token

    yield make


def positions_of(engine: Engine, unit_id: int) -> list[Any]:
    with engine.connect() as c:
        return list(c.execute(text(
            "SELECT fix_time, ST_Y(geom) AS lat, ST_X(geom) AS lng, h3, speed_mps, heading, "
            "accuracy_m, altitude_m, battery, source, attributes FROM positions "
            "WHERE unit_id = :u ORDER BY fix_time"), {"u": unit_id}))


def drops(engine: Engine) -> dict[str, int]:
    with engine.connect() as c:
        return {r: int(n) for r, n in c.execute(text("SELECT reason, count FROM ingest_drops"))}


# --- MQTT helpers ------------------------------------------------------------------------------


def mqtt_settings(settings: Settings, **kw: Any) -> Settings:
    """Settings with a private shared-subscription group, so tests never share a session."""
    tag = uuid.uuid4().hex[:8]
    return settings.model_copy(update={"mqtt_shared_group": f"test{tag}",
                                       "mqtt_client_id": f"test-ingest-{tag}",
                                       "ingest_flush_ms": 50, **kw})


@contextmanager
def running_worker(settings: Settings, **kw: Any) -> Iterator[Any]:
    """An in-process ingest worker thread, subscribed before this yields; session dropped after.

    Crew statuses go to the dispatch workflow, as the app and the CLI wire them."""
    from geodispatch.dispatch.workflow import crew_status_report
    from geodispatch.tracking.mqtt import drop_session
    from geodispatch.tracking.worker import IngestWorker

    kw.setdefault("status_handler", crew_status_report)
    stop = threading.Event()
    client_id = f"{settings.mqtt_client_id}-0"
    worker = IngestWorker(settings, client_id=client_id, **kw)
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert worker.connected.wait(15), "worker did not subscribe"
        yield worker
    finally:
        stop.set()
        thread.join(20)
        drop_session(settings, client_id)


def publisher(settings: Settings, *, username: str | None = None,
              password: str | None = None) -> Any:
    """A connected MQTT 5 client (the server account unless credentials are given)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from geodispatch.tracking.broker import server_credentials

    user, pw, host, port = server_credentials(settings)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}",
                         protocol=paho.MQTTv5)
    client.username_pw_set(username or user, password if password is not None else pw)
    client.max_inflight_messages_set(1000)
    connected = threading.Event()
    refused: list[Any] = []

    def on_connect(c: Any, u: Any, f: Any, rc: Any, p: Any) -> None:
        (refused.append(rc) if rc.is_failure else connected.set())

    client.on_connect = on_connect
    client.connect(host, port)
    client.loop_start()
    deadline = time.monotonic() + 10
    while not connected.is_set() and not refused and time.monotonic() < deadline:
        time.sleep(0.02)
    if not connected.is_set():
        client.loop_stop()
        raise ConnectionRefusedError(f"MQTT connect refused: {refused}")
    return client


def connect_device(settings: Settings, device: str, token: str) -> Any:
    """A device's connected MQTT client. The broker rereads its password file on SIGHUP,
    asynchronously, so a just-created login is retried briefly."""
    for _ in range(50):
        try:
            return publisher(settings, username=device, password=token)
        except ConnectionRefusedError:
            time.sleep(0.1)
    raise AssertionError(f"device {device} cannot connect")


def wait_for(predicate: Any, timeout: float = 30.0, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def count_positions(engine: Engine, unit_ids: list[int]) -> tuple[int, int]:
    """(rows, distinct (unit, fix_time)) of the units' history."""
    with engine.connect() as c:
        row = c.execute(text("SELECT count(*), count(DISTINCT (unit_id, fix_time)) FROM positions "
                             "WHERE unit_id = ANY(:u)"), {"u": unit_ids}).one()
    return int(row[0]), int(row[1])
