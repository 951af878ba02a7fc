"""Poison messages: nothing a message contains stops ingest; what breaks a stage is kept whole."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from geodispatch.settings import Settings
from geodispatch.tracking.mqtt import drop_session
from geodispatch.tracking.pipeline import is_transient
from geodispatch.tracking.worker import Inbound, IngestWorker
from tests.tracking.conftest import (
    count_positions,
    drops,
    mqtt_settings,
    positions_of,
    publisher,
    wait_for,
)


def dead_letters(engine: Engine, topic: str) -> list[Any]:
    with engine.connect() as c:
        return list(c.execute(text(
            "SELECT transport, topic, payload, reason, detail, unit_id FROM ingest_dead_letters "
            "WHERE topic = :t ORDER BY id"), {"t": topic}))


def _nested(depth: int) -> bytes:
    return b'{"n": ' * depth + b'"bottom"' + b"}" * depth


@contextmanager
def worker_thread(s: Settings, client_id: str) -> Iterator[tuple[IngestWorker, threading.Thread]]:
    """An ingest worker thread with a persistent session that outlives it (not dropped here)."""
    stop = threading.Event()
    worker = IngestWorker(s, client_id=client_id)
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert worker.connected.wait(15), "worker did not subscribe"
        yield worker, thread
    finally:
        stop.set()
        thread.join(20)


def test_nul_poison_replayed_after_restart(settings: Settings, engine: Engine,
                                           new_unit: Any) -> None:
    """Poison queued in the persistent session while the worker is down (the issue's case): after
    the restart ingest goes on, the poison is dead-lettered, the valid fixes around it stored."""
    s = mqtt_settings(settings)
    uid, device, _ = new_unit("poison")
    topic = f"geodispatch/units/{device}/position"
    client_id = f"{s.mqtt_client_id}-poison"
    now = int(time.time()) - 100
    nul = b'{"lat": 50.45, "lon": 30.52, "t": %d, "note": "a\\u0000b"}' % (now + 1)
    nul_key = b'{"lat": 50.45, "lon": 30.52, "t": %d, "extra": {"k\\u0000": 1}}' % (now + 2)
    # Nesting orjson reads (up to 1024) but cannot write back (over 254): unstorable as JSONB.
    deep = b'{"lat": 50.45, "lon": 30.52, "t": %d, "x": %s}' % (now + 3, _nested(300))
    poisons = [nul, nul_key, deep]
    try:
        with worker_thread(s, client_id):
            pass  # the session and its subscription now exist; the worker is down after this
        pub = publisher(s)
        for i, poison in enumerate(poisons):
            good = {"lat": 50.45 + i * 1e-5, "lon": 30.52, "t": now + 10 + i}
            pub.publish(topic, orjson.dumps(good), qos=1).wait_for_publish(5)
            pub.publish(topic, poison, qos=1).wait_for_publish(5)
        last = {"lat": 50.4504, "lon": 30.52, "t": now + 20}
        pub.publish(topic, orjson.dumps(last), qos=1).wait_for_publish(5)
        before = drops(engine).get("unstorable", 0)
        with worker_thread(s, client_id) as (worker, thread):
            assert wait_for(lambda: count_positions(engine, [uid])[0] == 4, timeout=30)
            # Still running: a fix sent now is stored too.
            pub.publish(topic, orjson.dumps({"lat": 50.4505, "lon": 30.52, "t": now + 30}),
                        qos=1).wait_for_publish(5)
            assert wait_for(lambda: count_positions(engine, [uid])[0] == 5, timeout=30)
            assert thread.is_alive()
            assert worker.stats.dead_letters == 3
        pub.loop_stop()
        letters = dead_letters(engine, topic)
        assert [bytes(d.payload) for d in letters] == poisons
        assert {d.reason for d in letters} == {"unstorable"}
        assert all(d.unit_id == uid and d.transport == "mqtt" for d in letters)
        assert drops(engine).get("unstorable", 0) == before + 3
        # Acknowledged: a third start gets nothing redelivered (no new dead letters).
        with worker_thread(s, client_id) as (worker, _t):
            time.sleep(1.0)
            assert worker.stats.dead_letters == 0
        assert len(dead_letters(engine, topic)) == 3
    finally:
        drop_session(s, client_id)


def _inbound(topic: str, bodies: list[bytes]) -> list[Inbound]:
    return [(0, i + 1, 1, topic, b) for i, b in enumerate(bodies)]


def test_database_refusal_is_isolated_and_dead_lettered(settings: Settings, engine: Engine,
                                                        new_unit: Any) -> None:
    """A write the database refuses (here: text with U+0000 slipping past the checks) is split
    down to the message at fault; every other message's fixes commit, the culprit is kept whole
    in the dead letters with the database's error, and the call returns normally."""
    uid, device, _ = new_unit("bisect")
    topic = f"geodispatch/units/{device}/position"
    now = int(time.time()) - 200
    bodies = [orjson.dumps({"lat": 50.45 + i * 1e-5, "lon": 30.52, "t": now + i, "tag": i})
              for i in range(9)]
    # Message 4 is an array of two fixes; only the second one will be refused.
    bodies[4] = orjson.dumps([{"lat": 50.4, "lon": 30.5, "t": now + 100, "tag": "ok"},
                              {"lat": 50.4, "lon": 30.5, "t": now + 101, "tag": "bad"}])
    worker = IngestWorker(settings, client_id="unused", engine=engine)
    with worker.factory() as session:
        worker.ingestor.load(session)
    items = _inbound(topic, bodies)
    batch = worker._prepare(items)
    assert len(batch.positions) == 10 and not batch.drops
    culprit = next(r for r in batch.positions if r.attributes == {"tag": "bad"})
    culprit.attrs_json = '{"tag": "\\u0000"}'  # what a missed check would have let through
    result = worker._store(items, batch, threading.Event())
    assert result is not None
    worker.ingestor.publish(batch, result)
    assert result.inserted == 9
    assert worker.stats.isolations == 1 and worker.stats.dead_letters == 1
    assert len(positions_of(engine, uid)) == 9
    [letter] = dead_letters(engine, topic)
    assert bytes(letter.payload) == bodies[4] and letter.reason == "db_rejected"
    assert letter.detail.startswith("22P05") and "1 of 2 reports refused" in letter.detail
    # The validator remembers exactly what was stored: the refused fix is accepted if resent.
    assert worker.ingestor.validator.check(culprit, now=culprit.received_at) is None


def test_transient_or_data(settings: Settings, engine: Engine) -> None:
    """Real errors are classified: data errors isolate the message, outages are retried."""
    with engine.connect() as c:
        with pytest.raises(DBAPIError) as data:
            c.execute(text("SELECT 1 / 0"))
        c.rollback()
        with pytest.raises(DBAPIError) as missing:
            c.execute(text("SELECT * FROM no_such_table_here"))
        c.rollback()
    assert not is_transient(data.value)
    assert is_transient(missing.value)  # a deployment problem: wait, do not dead-letter
    down = create_engine("postgresql+psycopg://x:y@127.0.0.1:9/none")
    with pytest.raises(DBAPIError) as refused:
        down.connect()
    down.dispose()
    assert is_transient(refused.value)
    assert is_transient(psycopg.OperationalError("server closed the connection"))
    assert not is_transient(TypeError("a value the COPY could not encode"))
