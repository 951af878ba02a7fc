"""Assignment delivery across a real broker restart: a Mosquitto of the test's own (its own
config, password file, ACL, persistence and free port; the shared brokers are never touched) is
stopped while a dispatcher assigns a crew over HTTP, and started again. The assignment reaches
the crew terminal after the restart, is recorded as sent, and, left unacknowledged, raises the
supervisor's ``not_acknowledged`` alert and is sent again; a second restart keeps the retained
message (persistence) and the crew's acknowledgement then ends the resending."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, text

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from geodispatch.tracking.broker import server_credentials, write_config
from tests.helpers import bearer, free_port, running_server
from tests.tracking.conftest import mqtt_settings, running_worker, wait_for


class Broker:
    """A Mosquitto process on the test's own config; ``stop()`` and ``start()`` restart it on
    the same port with the same persistence file."""

    def __init__(self, settings: Settings) -> None:
        self.var = Path(tempfile.mkdtemp(prefix="gd-restart-"))
        self.var.chmod(0o755)  # the broker drops root for its own user: it must reach this
        self.port = free_port()
        self.settings = settings.model_copy(update={
            "var_dir": self.var, "mqtt_tls_port": None,
            "mqtt_url": f"mqtt://srv-{uuid.uuid4().hex[:6]}:{uuid.uuid4().hex}"
                        f"@127.0.0.1:{self.port}"})
        self.conf = write_config(self.settings)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import socket

        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the test broker exited at start"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.3).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"the test broker does not listen on {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # a clean stop saves the persistence file
            assert self.proc.wait(15) == 0
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.var, ignore_errors=True)


@pytest.fixture()
def broker(settings: Settings) -> Iterator[Broker]:
    b = Broker(settings)
    b.start()
    try:
        yield b
    finally:
        b.close()


class Terminal:
    """The crew's MQTT terminal: subscribed to its assignment topic again at every connection
    (so it sees the retained message after a restart), each message kept with its time.
    Played by the server account: helpers' worktrees cannot add device logins to the shared
    setup, and this broker's ACL is the project's (the device ACL is tested in test_mqtt.py)."""

    def __init__(self, s: Settings, device: str) -> None:
        self.got: list[tuple[float, Any]] = []
        self.topic = f"geodispatch/units/{device}/assignment"
        user, pw, host, port = server_credentials(s)
        self.client = paho.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"term-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv5)
        self.client.username_pw_set(user, pw)
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.25)  # type: ignore[arg-type]
        self.up = threading.Event()
        self.client.on_connect = self._connected
        self.client.on_disconnect = lambda *_a: self.up.clear()
        self.client.on_message = lambda _c, _u, m: self.got.append(
            (time.monotonic(), orjson.loads(m.payload) if m.payload else None))
        self.client.connect(host, port)
        self.client.loop_start()
        assert self.up.wait(10), "the terminal did not connect"

    def _connected(self, client: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not rc.is_failure:
            client.subscribe(self.topic, qos=1)
            self.up.set()

    def messages_for(self, aid: int) -> list[float]:
        return [t for t, m in self.got if isinstance(m, dict) and m.get("id") == aid]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _row(engine: Engine, aid: int) -> Any:
    with engine.connect() as c:
        return c.execute(text("SELECT sent_at, send_count, acknowledged_at, status "
                              "FROM assignments WHERE id = :a"), {"a": aid}).one()


def _alerts(base: str, h: dict[str, str]) -> set[tuple[str, int | None]]:
    r = httpx.get(f"{base}/api/dispatch/alerts", headers=h, timeout=10)
    assert r.status_code == 200, r.text
    return {(a["kind"], a.get("unit_id")) for a in r.json()["items"]}


def test_an_assignment_in_flight_survives_a_broker_restart(
    broker: Broker, settings: Settings, engine: Engine, new_unit: Any
) -> None:
    """Assigned while the broker is down: nothing is sent; after the restart the terminal gets
    it and it is recorded as sent once; unacknowledged past the timeout it raises the alert and
    is sent again; a second restart keeps the retained message; the acknowledgement (through
    the ingest worker) stops the resending."""
    ack_timeout = 3.0
    # The app keeps its own var folder (keys, JWT secret); only its broker is the test's.
    s = mqtt_settings(settings, mqtt_url=broker.settings.mqtt_url, serve_ingest=False,
                      tile_url="", assignment_retry_s=0.3, assignment_ack_timeout_s=ack_timeout)
    uid, device, _token = new_unit("rst", status="available")
    disp, sup = bearer("dispatcher", "KV"), bearer("supervisor", "KV")
    app = create_app(s)
    term = Terminal(s, device)
    try:
        with running_server(app) as base:
            assert wait_for(lambda: app.state.mqtt is not None
                            and app.state.mqtt.is_connected(), timeout=10)
            r = httpx.post(f"{base}/api/incidents", headers=disp, json={
                "lat": 50.45, "lng": 30.52, "category": "theft",
                "idempotency_key": uuid.uuid4().hex})
            assert r.status_code == 201, r.text
            inc = r.json()["id"]

            broker.stop()
            assert wait_for(lambda: not app.state.mqtt.is_connected(), timeout=10)
            r = httpx.post(f"{base}/api/incidents/{inc}/assignments", headers=disp,
                           json={"unit_id": uid, "override_reason": "broker restart test"})
            assert r.status_code == 201, r.text  # dispatch works with the broker down
            aid = int(r.json()["id"])
            time.sleep(1.0)
            assert _row(engine, aid).sent_at is None, "recorded as sent with no broker"
            assert term.messages_for(aid) == []

            broker.start()
            t_up = time.monotonic()
            assert wait_for(lambda: term.messages_for(aid), timeout=15), \
                "the assignment never reached the terminal after the restart"
            took = term.messages_for(aid)[0] - t_up
            assert wait_for(lambda: _row(engine, aid).sent_at is not None, timeout=10)
            assert _row(engine, aid).send_count == 1
            assert took < 5.0, f"delivered {took:.1f} s after the broker came back"

            # Not acknowledged: the supervisor is alerted and it is sent again.
            assert wait_for(lambda: ("not_acknowledged", uid) in _alerts(base, sup),
                            timeout=ack_timeout + 10)
            assert wait_for(lambda: _row(engine, aid).send_count >= 2, timeout=ack_timeout + 10)
            assert wait_for(lambda: len(term.messages_for(aid)) >= 2, timeout=10)

            # A second restart: the retained assignment is still there for a terminal that
            # subscribes again (the broker's persistence), before any resend.
            broker.stop()
            before = len(term.messages_for(aid))
            broker.start()
            assert wait_for(lambda: len(term.messages_for(aid)) > before, timeout=15)

            # The crew acknowledges on MQTT; the worker stores it and the resending stops.
            with running_worker(s):
                ack = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5,
                                  client_id=f"ack-{uuid.uuid4().hex[:8]}")
                user, pw, host, port = server_credentials(s)
                ack.username_pw_set(user, pw)
                ack.connect(host, port)
                ack.loop_start()
                try:
                    ack.publish(f"{term.topic}/ack", orjson.dumps(
                        {"id": aid, "key": uuid.uuid4().hex}), qos=1).wait_for_publish(10)
                    assert wait_for(lambda: _row(engine, aid).acknowledged_at is not None,
                                    timeout=15)
                finally:
                    ack.loop_stop()
                    ack.disconnect()
            sends = _row(engine, aid).send_count
            time.sleep(ack_timeout * (sends + 1) + 1)
            assert _row(engine, aid).send_count == sends, "sent again after the ack"
            assert ("not_acknowledged", uid) not in _alerts(base, sup)
    finally:
        term.close()
    with engine.connect() as c:
        kinds = list(c.execute(text(
            "SELECT kind FROM incident_events WHERE incident_id = :i ORDER BY incident_seq"),
            {"i": inc}).scalars())
    assert kinds.count("assignment_sent") == sends >= 2
    assert kinds.count("assignment_acknowledged") == 1
