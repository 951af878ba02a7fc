"""The MQTT worker through the real Mosquitto: topics, formats, ACL, assignments, statuses."""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine

from geodispatch.settings import Settings
from geodispatch.tracking.mqtt import publish_assignment
from tests.tracking.conftest import (
    connect_device,
    count_positions,
    drops,
    mqtt_settings,
    positions_of,
    publisher,
    running_worker,
    wait_for,
)


def _publish(client: Any, topic: str, payload: bytes) -> None:
    """Publish QoS 1 and wait for the broker's PUBACK, riding out a reconnect: the shared broker
    rereads its password file whenever any process adds a unit, and may drop connections then."""
    for _ in range(50):
        try:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
            return
        except RuntimeError:
            time.sleep(0.2)
    raise AssertionError(f"could not publish to {topic}")


def test_native_and_owntracks_stored(settings: Settings, engine: Engine, new_unit: Any) -> None:
    """Single, batch and OwnTracks messages are stored with the right units; lwt -> offline."""
    s = mqtt_settings(settings)
    uid, device, token = new_unit("mq")
    now = int(time.time())
    with running_worker(s):
        pub = connect_device(s, device, token)
        one = {"lat": 50.45, "lon": 30.52, "t": now - 20, "speed": 10, "batt": 80}
        batch = [{"lat": 50.4501, "lon": 30.52, "t": now - 15},
                 {"lat": 50.4502, "lon": 30.52, "t": (now - 10) * 1000}]
        ot = {"_type": "location", "lat": 50.4503, "lon": 30.52, "tst": now - 5, "vel": 36}
        pub.publish(f"geodispatch/units/{device}/position", orjson.dumps(one), qos=1)
        pub.publish(f"geodispatch/units/{device}/position", orjson.dumps(batch), qos=1)
        pub.publish(f"owntracks/{device}/phone", orjson.dumps(ot), qos=1).wait_for_publish()
        assert wait_for(lambda: count_positions(engine, [uid])[0] == 4)
        rows = positions_of(engine, uid)
        assert [r.source for r in rows] == ["native"] * 3 + ["owntracks"]
        assert rows[-1].speed_mps == pytest.approx(10.0)
        pub.loop_stop()


def test_unit_cannot_publish_as_another(settings: Settings, engine: Engine,
                                        new_unit: Any) -> None:
    """The broker ACL drops a device's publish under another unit's topic: never stored."""
    s = mqtt_settings(settings)
    a_id, a_dev, a_tok = new_unit("acl")
    b_id, b_dev, _ = new_unit("acl")
    now = int(time.time())
    with running_worker(s):
        mallory = connect_device(s, a_dev, a_tok)
        fake = {"lat": 50.0, "lon": 30.0, "t": now - 3}
        mallory.publish(f"geodispatch/units/{b_dev}/position", orjson.dumps(fake), qos=1)
        mallory.publish(f"owntracks/{b_dev}/phone", orjson.dumps(
            {"_type": "location", "lat": 50.0, "lon": 30.0, "tst": now - 2}), qos=1)
        # Mosquitto refuses the forged publishes (it may also drop the connection for them).
        time.sleep(1.0)
        mallory.loop_stop()
        mallory.disconnect()
        honest = connect_device(s, a_dev, a_tok)
        own = {"lat": 50.0, "lon": 30.0, "t": now - 1}
        _publish(honest, f"geodispatch/units/{a_dev}/position", orjson.dumps(own))
        # The honest fix was published after the forged ones: once it is stored, they would
        # have been stored too.
        assert wait_for(lambda: count_positions(engine, [a_id])[0] == 1)
        time.sleep(0.5)
        assert count_positions(engine, [b_id])[0] == 0
        honest.loop_stop()


def test_assignment_retained_for_own_device_only(settings: Settings, new_unit: Any) -> None:
    """publish_assignment is retained QoS 1; the crew reads it, another unit cannot."""
    _a, a_dev, a_tok = new_unit("asg")
    _b, b_dev, b_tok = new_unit("asg")
    server = publisher(settings)
    payload = {"incident": "KV-2026-000123", "lat": 50.45, "lon": 30.52}
    publish_assignment(server, a_dev, payload).wait_for_publish()
    got: dict[str, list[bytes]] = {a_dev: [], b_dev: []}
    clients = []
    for dev, tok in ((a_dev, a_tok), (b_dev, b_tok)):
        c = connect_device(settings, dev, tok)
        c.on_message = lambda _c, _u, m, dev=dev: got[dev].append(m.payload)
        c.subscribe(f"geodispatch/units/{a_dev}/assignment", qos=1)
        clients.append(c)
    assert wait_for(lambda: len(got[a_dev]) == 1, timeout=5)
    assert orjson.loads(got[a_dev][0]) == payload
    time.sleep(0.5)
    assert got[b_dev] == []
    publish_assignment(server, a_dev, None).wait_for_publish()  # clears the retained message
    for c in [*clients, server]:
        c.loop_stop()


def test_status_messages_reach_the_workflow(settings: Settings, engine: Engine,
                                            new_unit: Any) -> None:
    """geodispatch/units/{device}/status is handed to the status handler with the unit id."""
    s = mqtt_settings(settings)
    uid, device, token = new_unit("st")
    calls: list[dict[str, Any]] = []
    done = threading.Event()

    def handler(**kw: Any) -> None:
        calls.append(kw)
        if kw["status"] == "bogus":
            raise ValueError("unknown status")
        done.set()

    before = drops(engine).get("status_rejected", 0)
    with running_worker(s, status_handler=handler):
        pub = connect_device(s, device, token)
        pub.publish(f"geodispatch/units/{device}/status", b"bogus", qos=1)
        pub.publish(f"geodispatch/units/{device}/status", b'{"status":"en_route"}', qos=1)
        assert done.wait(10)
        pub.loop_stop()
    assert [c["status"] for c in calls] == ["bogus", "en_route"]
    assert calls[1]["unit_id"] == uid and calls[1]["source"].startswith("mqtt")
    assert wait_for(lambda: drops(engine).get("status_rejected", 0) == before + 1, timeout=5)


def test_acknowledged_assignment_is_cleared(settings: Settings, new_unit: Any) -> None:
    """An ack naming the retained assignment clears it; an ack for an older one does not."""
    s = mqtt_settings(settings)
    _uid, device, token = new_unit("ack")
    server = publisher(s)

    def retained() -> list[bytes]:
        got: list[bytes] = []
        c = publisher(s)
        c.on_message = lambda _c, _u, m: got.append(m.payload)
        c.subscribe(f"geodispatch/units/{device}/assignment", qos=1)
        time.sleep(0.7)
        c.loop_stop()
        return got

    with running_worker(s):
        publish_assignment(server, device, {"id": 7, "incident": "KV-1"}).wait_for_publish()
        crew = connect_device(s, device, token)
        time.sleep(0.3)
        crew.publish(f"geodispatch/units/{device}/assignment/ack", b'{"id": 6}', qos=1)
        time.sleep(0.5)
        assert [orjson.loads(p)["id"] for p in retained()] == [7]
        crew.publish(f"geodispatch/units/{device}/assignment/ack", b'{"id": 7}', qos=1)
        assert wait_for(lambda: retained() == [], timeout=5)
        crew.loop_stop()
    server.loop_stop()
