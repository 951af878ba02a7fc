"""Crew statuses that arrive through tracker ingest (the MQTT status topic through the app's
in-process worker, ``POST /api/ingest/status``) reach the crew terminal's stream like a press in
the app, against a real uvicorn, Mosquitto and PostGIS; and an exhausted database pool answers
503 with Retry-After, never 500."""

from __future__ import annotations

import json
import queue
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from tests.helpers import running_server
from tests.tracking.conftest import drops, mqtt_settings, publisher
from tests.web.test_crew_stream import Stream


def _status_screen(stream: Stream, status: str, timeout: float) -> float:
    """Seconds until the stream pushes a screen whose unit has ``status``."""
    t0 = time.monotonic()
    while True:
        left = timeout - (time.monotonic() - t0)
        try:
            ev = stream.next(max(left, 0.01))
        except queue.Empty:
            raise AssertionError(f"no screen with status {status} within {timeout} s") from None
        if ev["event"] == "assignment" and json.loads(ev["data"])["unit"]["status"] == status:
            return time.monotonic() - t0


@pytest.mark.parametrize("via", ["mqtt", "http"])
def test_an_ingested_status_is_pushed_to_the_terminal(settings: Settings, new_unit: Any,
                                                      engine: Engine, via: str) -> None:
    """A status from the MQTT status topic or the HTTP status endpoint is applied and pushed
    to the unit's open crew stream within a second of arriving, as a press in the app is."""
    s = mqtt_settings(settings, serve_ingest=(via == "mqtt"), tile_url="")
    uid, device, token = new_unit("push", status="available")
    app = create_app(s)
    pub = publisher(s) if via == "mqtt" else None
    try:
        with running_server(app) as base:
            if via == "mqtt":
                worker = app.state.tracking_ingest[0]
                assert worker.connected.wait(15), "the app's ingest worker did not subscribe"
            stream = Stream(base, {"X-Device-Id": device, "X-Device-Token": token})
            try:
                first = json.loads(stream.next(5)["data"])
                assert first["unit"]["id"] == uid and first["unit"]["status"] == "available"
                if pub is not None:
                    # (the server account plays the tracker: helpers' worktrees cannot add
                    # device logins to the shared broker; the ACL is tested in test_mqtt.py)
                    pub.publish(f"geodispatch/units/{device}/status",
                                json.dumps({"status": "break"}), qos=1).wait_for_publish(5)
                else:
                    r = httpx.post(f"{base}/api/ingest/status", params={"id": device},
                                   headers={"X-Device-Token": token},
                                   json={"status": "break"})
                    assert r.status_code < 300, r.text
                try:
                    took = _status_screen(stream, "break", 5.0)
                except AssertionError:
                    with engine.connect() as c:
                        now = c.execute(text("SELECT status FROM units WHERE id = :u"),
                                        {"u": uid}).scalar()
                    raise AssertionError(f"not pushed; the unit's status is {now}, drops "
                                         f"{drops(engine)}") from None
                assert took <= 1.5, f"the status took {took:.2f} s to reach the terminal"
                fleet = app.state.fleet.get(uid)
                assert fleet is not None and fleet.status == "break"
            finally:
                stream.close()
    finally:
        if pub is not None:
            pub.loop_stop()


def test_an_exhausted_pool_answers_503_with_retry_after(settings: Settings, new_unit: Any,
                                                        engine: Engine) -> None:
    """With every pooled connection held, crew and console requests wait
    ``db_pool_timeout_s`` and answer 503 with Retry-After (a problem document), never 500;
    once connections are free the same requests succeed."""
    s = settings.model_copy(update={"serve_ingest": False, "tile_url": "", "db_pool_size": 1,
                                    "db_pool_timeout_s": 0.3})
    _uid, device, token = new_unit("pool", status="available")
    crew = {"X-Device-Id": device, "X-Device-Token": token}
    app = create_app(s)
    with running_server(app) as base:
        held = [app.state.engine.connect() for _ in range(2)]  # pool 1 + overflow 1
        try:
            for method, path, kw in (
                    ("GET", "/api/crew/assignment", {"headers": crew}),
                    ("POST", "/api/crew/status", {"headers": crew, "json": {"status": "break"}}),
                    ("GET", "/api/crew/stream", {"headers": crew}),
                    ("POST", "/api/auth/token", {"data": {"username": "x", "password": "y"}})):
                r = httpx.request(method, base + path, timeout=10, **kw)
                assert r.status_code == 503, (path, r.status_code, r.text)
                assert r.headers["retry-after"] == "1", path
                assert r.headers["content-type"].startswith("application/problem+json")
                assert "busy" in r.json()["detail"]
        finally:
            for c in held:
                c.close()
        r = httpx.get(base + "/api/crew/assignment", headers=crew, timeout=10)
        assert r.status_code == 200, r.text
