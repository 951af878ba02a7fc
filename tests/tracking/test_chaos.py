"""Chaos: 2,000 units streaming with 1% junk while the ingest worker is SIGKILLed (twice),
PostgreSQL is restarted and the broker is restarted. Every valid fix is stored exactly once,
every junk message is a counted drop, and the worker is still running at the end.

The stream is paced so that a run takes about ``GEODISPATCH_CHAOS_SECONDS`` (default 75) plus
the catch-up after the last fault.

Mosquitto 2.0.11 (Debian 12) restores an MQTT 5 session after a restart but not its
subscriptions (shared ones not even for MQTT 3.1.1 sessions), so what reaches the broker between
its restart and the ingest worker's new SUBSCRIBE has no subscriber and is dropped by the broker.
The worker reconnects within 0.1 s; the fleet's publisher uses paho's default back-off (1 s), as a
tracker app does. That ordering is what makes this run exact; see the README's ingest section.

The publisher behaves as a tracker app does: QoS 1, and a fix
whose PUBACK never came (the broker went away with it in flight) is sent again at the end; the
pipeline's (unit, fix time) key turns any such resend into a duplicate it does not store twice.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import IO, Any

import orjson
import pytest
from sqlalchemy import Engine, text

from geodispatch.settings import Settings
from geodispatch.tracking.mqtt import drop_session
from tests.tracking.conftest import drops, mqtt_settings, publisher, wait_for

ROOT = Path(__file__).resolve().parents[2]
UNITS = 2000
FIXES_PER_UNIT = 25
JUNK_SHARE = 0.01
SECONDS = float(os.environ.get("GEODISPATCH_CHAOS_SECONDS", "75"))

#: Junk a tracker or an attacker might send on a unit's own topic, and the drop reason it gets.
JUNK: list[tuple[bytes, str]] = [
    (b"{broken", "bad_json"),
    (b"\xff\xfe\x00garbage", "bad_json"),
    (b'{"lat": 95.0, "lon": 30.5, "t": 1}', "out_of_range"),
    (b'{"lat": "north", "lon": 30.5, "t": 1}', "bad_type"),
    (b'{"lat": 50.4}', "missing_field"),
    (b'{"lat": 0, "lon": 0, "t": 1}', "null_island"),
]


def _worker(s: Settings, client_id: str, log: IO[bytes]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "GEODISPATCH_MQTT_SHARED_GROUP": s.mqtt_shared_group,
           "GEODISPATCH_INGEST_FLUSH_MS": "100"}
    return subprocess.Popen(
        [sys.executable, "-m", "geodispatch.cli", "ingest", "--client-id", client_id],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _broker_port(s: Settings) -> int:
    from geodispatch.tracking.broker import server_credentials

    return int(server_credentials(s)[3])


def _restart_broker(s: Settings) -> None:
    """Stop the project's Mosquitto gracefully (it saves its sessions) and start it again."""
    conf = s.var_dir / "mosquitto" / "mosquitto.conf"
    pid = int((s.var_dir / "mosquitto" / "mosquitto.pid").read_text().strip())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists(), "the broker did not stop"
    subprocess.run(["mosquitto", "-c", str(conf), "-d"], check=True, timeout=20)
    port = _broker_port(s)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the broker did not come back")


def _units(engine: Engine, tag: str) -> list[tuple[int, str]]:
    with engine.begin() as c:
        rows = c.execute(text(
            "INSERT INTO units (call_sign, kind, capabilities, region, status, device_id, "
            "device_token_hash, active) SELECT 'C' || :t || '-' || g, 'patrol_car', '{}', 'KV', "
            "'available', 'chaos-' || :t || '-' || g, 'x', true "
            "FROM generate_series(1, :n) AS g RETURNING id, device_id"),
            {"t": tag, "n": UNITS}).all()
    return [(int(r[0]), str(r[1])) for r in rows]


class Stream:
    """The fleet's publisher: valid fixes and junk, paced, with every PUBACK tracked."""

    def __init__(self, s: Settings, units: list[tuple[int, str]], seconds: float) -> None:
        self.s = s
        self.units = units
        self.seconds = seconds
        self.acked: set[int] = set()
        self.sent: dict[int, tuple[str, bytes]] = {}  # mid -> valid message
        self.valid = 0
        self.junk: dict[str, int] = {}
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        rnd = random.Random(7)
        pub = publisher(self.s)
        # (paho's default reconnect back-off, 1 s at first: a tracker app is not faster)
        pub.on_publish = self._acked
        start = time.time() - FIXES_PER_UNIT * 10 - 600  # recent past, 10 s apart per unit
        total = UNITS * FIXES_PER_UNIT
        pace = self.seconds / total
        t0 = time.monotonic()
        for i in range(total):
            k, dev = i // UNITS, self.units[i % UNITS][1]
            topic = f"geodispatch/units/{dev}/position"
            if rnd.random() < JUNK_SHARE:
                body, reason = JUNK[rnd.randrange(len(JUNK))]
                pub.publish(topic, body, qos=1)
                self.junk[reason] = self.junk.get(reason, 0) + 1
            lat = 50.40 + (i % UNITS) * 1e-4 + k * 2e-5
            body = orjson.dumps({"lat": lat, "lon": 30.52, "t": round((start + k * 10) * 1000)})
            # No lock of ours around publish(): paho calls on_publish holding its own.
            info = pub.publish(topic, body, qos=1)
            self.sent[info.mid] = (topic, body)
            self.valid += 1
            behind = t0 + i * pace - time.monotonic()
            if behind > 0:
                time.sleep(behind)
        self.pub = pub

    def _acked(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        self.acked.add(mid)  # (a set add is atomic under the GIL)

    def resend_unacked(self) -> int:
        """Send again every valid fix whose PUBACK never came; the number resent."""
        time.sleep(2.0)  # the last PUBACKs in flight
        missing = [m for m in list(self.sent) if m not in self.acked]
        for mid in missing:
            topic, body = self.sent[mid]
            self.pub.publish(topic, body, qos=1).wait_for_publish(30)
        return len(missing)


@pytest.mark.slow
def test_chaos_kill_restart_postgres_and_broker(settings: Settings, engine: Engine,
                                                artifacts: Path) -> None:
    s = mqtt_settings(settings)
    tag = uuid.uuid4().hex[:6]
    units = _units(engine, tag)
    ids = [u for u, _ in units]
    client_id = f"{s.mqtt_client_id}-chaos"
    log = (artifacts / "tracking_chaos_worker.log").open("wb")
    before = drops(engine)
    proc = _worker(s, client_id, log)
    stream = Stream(s, units, SECONDS)

    def stored() -> tuple[int, int]:
        try:
            with engine.connect() as c:
                row = c.execute(text(
                    "SELECT count(*), count(DISTINCT (unit_id, fix_time)) FROM positions "
                    "WHERE unit_id = ANY(:u)"), {"u": ids}).one()
            return int(row[0]), int(row[1])
        except Exception:  # noqa: BLE001  (PostgreSQL may be restarting)
            engine.dispose()
            return -1, -1

    try:
        # The worker's session must exist before the stream starts (the broker keeps nothing
        # for a shared group nobody has joined yet): a probe fix, counted as sent, gets stored.
        probe = publisher(s)
        dev = units[0][1]
        body = orjson.dumps({"lat": 50.39, "lon": 30.52, "t": int((time.time() - 3600) * 1000)})
        for _ in range(100):
            probe.publish(f"geodispatch/units/{dev}/position", body, qos=1)
            if wait_for(lambda: stored()[0] > 0, timeout=0.3):
                break
        probe.loop_stop()
        assert stored()[0] == 1, "the worker never subscribed"
        stream.valid += 1
        stream.thread.start()
        faults = [
            (0.15, "SIGKILL the worker"), (0.35, "restart PostgreSQL"),
            (0.55, "restart the broker"), (0.75, "SIGKILL the worker"),
        ]
        t0 = time.monotonic()
        for at, what in faults:
            time.sleep(max(0.0, t0 + at * SECONDS - time.monotonic()))
            if what == "SIGKILL the worker":
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                time.sleep(1.0)
                proc = _worker(s, client_id, log)
            elif what == "restart PostgreSQL":
                subprocess.run(["pg_ctlcluster", "15", "main", "restart", "-m", "fast"],
                               check=True, timeout=60)
                engine.dispose()
            else:
                _restart_broker(s)
        stream.thread.join(SECONDS * 3)
        assert not stream.thread.is_alive(), "the publisher did not finish"
        resent = stream.resend_unacked()
        assert wait_for(lambda: stored()[1] >= stream.valid, timeout=240, step=0.5), \
            (stored(), stream.valid, resent)
        time.sleep(2.0)  # redelivered duplicates, if any, would land now
        rows, distinct = stored()
        assert rows == distinct == stream.valid, (rows, distinct, stream.valid, resent)
        assert proc.poll() is None, "the ingest worker is not running at the end"
        after = drops(engine)
        for reason, n in stream.junk.items():
            assert after.get(reason, 0) - before.get(reason, 0) >= n, (reason, n, after)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        stream_pub = getattr(stream, "pub", None)
        if stream_pub is not None:
            stream_pub.loop_stop()
        drop_session(s, client_id)
        with engine.begin() as c:
            c.execute(text("DELETE FROM positions WHERE unit_id = ANY(:u)"), {"u": ids})
            c.execute(text("DELETE FROM unit_latest WHERE unit_id = ANY(:u)"), {"u": ids})
            c.execute(text("DELETE FROM units WHERE id = ANY(:u)"), {"u": ids})
