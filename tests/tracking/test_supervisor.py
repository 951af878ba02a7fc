"""The ingest supervisor: a worker process that dies anyway is restarted and ingest goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine

from geodispatch.settings import Settings
from geodispatch.tracking.mqtt import drop_session
from tests.tracking.conftest import count_positions, mqtt_settings, publisher, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_killed_worker_is_restarted(settings: Settings, engine: Engine, new_unit: Any,
                                    artifacts: Path) -> None:
    """SIGKILL the worker process under `geodispatch ingest`: a new one starts, fixes sent
    meanwhile are stored; SIGKILL of the supervisor takes its worker with it."""
    s = mqtt_settings(settings)
    uid, device, _ = new_unit("sup")
    topic = f"geodispatch/units/{device}/position"
    client_id = f"{s.mqtt_client_id}-sup"
    env = {**os.environ, "GEODISPATCH_MQTT_SHARED_GROUP": s.mqtt_shared_group,
           "GEODISPATCH_INGEST_FLUSH_MS": "50"}
    log = (artifacts / "tracking_supervisor.log").open("wb")
    sup = subprocess.Popen([sys.executable, "-m", "geodispatch.cli", "ingest", "--client-id",
                            client_id], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    pub = publisher(s)
    now = int(time.time()) - 300
    sent = [0]

    def send() -> None:
        i = sent[0]
        body = {"lat": 50.45 + i * 1e-5, "lon": 30.52, "t": now + i}
        pub.publish(topic, orjson.dumps(body), qos=1).wait_for_publish(5)
        sent[0] += 1

    try:
        assert wait_for(lambda: len(_children(sup.pid)) == 1, timeout=30)
        [first] = _children(sup.pid)
        # Until the worker's session exists, fixes may go nowhere: probe until one is stored.
        for _ in range(150):
            send()
            if wait_for(lambda: count_positions(engine, [uid])[0] > 0, timeout=0.2):
                break
        base = count_positions(engine, [uid])[0]
        assert base > 0
        os.kill(first, signal.SIGKILL)
        for _ in range(5):
            send()  # queued in the persistent session while no worker runs
        assert wait_for(lambda: _children(sup.pid) not in ([], [first]), timeout=30)
        [second] = _children(sup.pid)
        assert second != first and _alive(second)
        assert wait_for(lambda: count_positions(engine, [uid])[0] == base + 5, timeout=60)
        sup.send_signal(signal.SIGKILL)
        sup.wait(10)
        assert wait_for(lambda: not _alive(second), timeout=10)
    finally:
        pub.loop_stop()
        if sup.poll() is None:
            sup.terminate()
            sup.wait(30)
        log.close()
        drop_session(s, client_id)
    text = (artifacts / "tracking_supervisor.log").read_text()
    assert "exited with -9" in text and "restart 1" in text
