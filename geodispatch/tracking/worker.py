"""The MQTT ingest worker (``geodispatch ingest``): lossless, batched, restartable.

How nothing is lost
-------------------
* QoS 1, a persistent session (``clean_start=False`` + session expiry) and an MQTT 5 shared
  subscription: while a worker is down the broker queues its share of the messages.
* Manual acknowledgements: paho's automatic PUBACK is switched off (``manual_ack_set(True)``); a
  message is acknowledged only after the database transaction of the batch that contains it has
  committed, in the order received. A crash (even ``kill -9``) before the commit means the broker
  redelivers; a crash after the commit but before the PUBACK means a redelivered duplicate, which
  ``INSERT .. ON CONFLICT (unit_id, fix_time) DO NOTHING`` absorbs.
* Database outages: the batch write is retried with back-off until it commits (the broker keeps
  the unacknowledged messages in flight meanwhile); acknowledgements from a previous connection
  are never sent on a new one (message ids are per connection).
* Bad input never raises out of the loop: every message becomes reports or counted drops.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import paho.mqtt.client as paho
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from geodispatch.db import app_engine, session_factory, transaction
from geodispatch.settings import Settings
from geodispatch.tracking.decoders import decode_mqtt, parse_topic
from geodispatch.tracking.fleet import LiveFleet
from geodispatch.tracking.ingest import Batch, Ingestor, Item, StatusHandler
from geodispatch.tracking.mqtt import (
    ASSIGNMENT_FILTER,
    INGEST_FILTERS,
    connect_properties,
    make_client,
    publish_assignment,
    shared,
)
from geodispatch.tracking.pipeline import Drops, WriteResult, record_drops
from geodispatch.tracking.reports import STATUS_REJECTED, TOO_LARGE, Rejected

log = logging.getLogger(__name__)

INTERNAL = "internal_error"
DB_REJECTED = "db_rejected"


@dataclass
class WorkerStats:
    """Counters of one worker (logged every ``log_every_s``)."""

    messages: int = 0
    stored: int = 0
    dropped: int = 0
    batches: int = 0
    db_retries: int = 0
    decode_s: float = 0.0
    write_s: float = 0.0
    ack_s: float = 0.0
    lags_ms: list[float] = field(default_factory=list)


# One received message: (connection generation, mid, qos, topic, payload).
Inbound = tuple[int, int, int, str, bytes]


class IngestWorker:
    """One ingest worker: MQTT in, PostGIS out (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        *,
        client_id: str,
        group: str | None = None,
        fleet: LiveFleet | None = None,
        engine: Engine | None = None,
        record_lag: bool = False,
        status_handler: StatusHandler | None = None,
        on_commit: Callable[[Batch, WriteResult], None] | None = None,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self.group = group or settings.mqtt_shared_group
        self._own_engine = engine is None
        self.engine = engine or app_engine(settings.model_copy(update={"db_pool_size": 2}))
        self.factory: sessionmaker[Session] = session_factory(self.engine)
        self.ingestor = Ingestor(
            settings, fleet=fleet, session_factory=self.factory, status_handler=status_handler
        )
        self.record_lag = record_lag
        self.on_commit = on_commit
        self.stats = WorkerStats()
        self.connected = threading.Event()
        self._inbox: queue.SimpleQueue[Inbound] = queue.SimpleQueue()
        self._generation = 0
        self._client: paho.Client | None = None
        self._assignments: dict[str, str] = {}

    # --- MQTT callbacks (paho's network thread) ------------------------------------------------

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any,
                    props: Any) -> None:
        if rc.is_failure:
            log.error("MQTT connection refused: %s", rc)
            return
        client.subscribe([(shared(self.group, f), 1) for f in INGEST_FILTERS]
                         + [(ASSIGNMENT_FILTER, 1)])
        log.info("MQTT connected as %s (session present: %s), group %s", self.client_id,
                 flags.session_present, self.group)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, rcs: Any,
                      props: Any) -> None:
        self.connected.set()

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any,
                       props: Any) -> None:
        # Message ids of the old connection mean nothing on the next one: never ack them there.
        self._generation += 1
        self.connected.clear()
        log.warning("MQTT disconnected (%s); paho reconnects", rc)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        topic = msg.topic
        if topic.endswith("/assignment") or topic.endswith("/assignment/ack"):
            try:
                self._assignment_message(client, topic, bytes(msg.payload))
            except Exception:  # noqa: BLE001 - a bad ack must not stop the network thread
                log.warning("ignored assignment message on %s", topic, exc_info=True)
            if msg.qos:
                client.ack(msg.mid, msg.qos)
            return
        self._inbox.put((self._generation, msg.mid, msg.qos, topic, bytes(msg.payload)))

    def _assignment_message(self, client: paho.Client, topic: str, payload: bytes) -> None:
        """Follow retained assignments; clear one when its crew acknowledges that very one."""
        parts = topic.split("/")
        if len(parts) < 4 or parts[0] != "geodispatch" or parts[1] != "units":
            return
        device = parts[2]
        data = orjson.loads(payload) if payload else None
        ident = _assignment_id(data)
        if len(parts) == 4:
            if ident is None:
                self._assignments.pop(device, None)
            else:
                self._assignments[device] = ident
            return
        current = self._assignments.get(device)
        if ident is not None and ident == current:
            log.info("unit %s acknowledged assignment %s: clearing it", device, ident)
            self._assignments.pop(device, None)
            publish_assignment(client, device, None)

    # --- main loop -----------------------------------------------------------------------------

    def _load(self, stop: threading.Event) -> bool:
        delay = 0.5
        while not stop.is_set():
            try:
                with self.factory() as session:
                    self.ingestor.load(session)
                self._ensure_partitions()
                return True
            except OperationalError as exc:
                log.warning("database unavailable at start (%s); retrying", _first_line(exc))
                stop.wait(delay)
                delay = min(delay * 2, 5.0)
        return False

    def _ensure_partitions(self) -> None:
        try:
            with transaction(self.factory) as session:
                session.execute(text("SELECT ensure_position_partitions(now(), 3)"))
        except DBAPIError as exc:
            log.debug("partitions not ensured (%s); the default partition takes the rest",
                      _first_line(exc))

    def run(self, stop: threading.Event) -> WorkerStats:
        """Consume until ``stop`` is set; return the counters."""
        if not self._load(stop):
            return self.stats
        client = make_client(self.settings, self.client_id, clean_start=False, connect=False)
        client.manual_ack_set(True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.reconnect_delay_set(1, 5)
        from geodispatch.tracking.broker import server_credentials

        _u, _p, host, port = server_credentials(self.settings)
        client.connect_async(host, port, keepalive=30, clean_start=False,
                             properties=connect_properties(self.settings))
        client.loop_start()
        self._client = client
        # Two stages overlap: this thread decodes batch N+1 while the writer thread waits for
        # PostgreSQL to commit batch N. Batches are written and acknowledged in order.
        handoff: queue.Queue[tuple[list[Inbound], Batch] | None] = queue.Queue(maxsize=2)
        writer = threading.Thread(target=self._writer, args=(handoff, stop), name="ingest-writer",
                                  daemon=True)
        writer.start()
        last_log = time.monotonic()
        try:
            while not stop.is_set() and writer.is_alive():
                items = self._collect(stop)
                if items:
                    t0 = time.perf_counter()
                    now = datetime.now(UTC)
                    batch = self.ingestor.prepare(self.decode(items, now), now=now)
                    self.stats.decode_s += time.perf_counter() - t0
                    while not stop.is_set():
                        try:
                            handoff.put((items, batch), timeout=0.2)
                            break
                        except queue.Full:
                            continue
                if time.monotonic() - last_log > 10.0:
                    last_log = time.monotonic()
                    s = self.stats
                    log.info("ingest %s: %d messages, %d stored, %d dropped, %d batches "
                             "(decode %.1f s, write %.1f s, ack %.1f s)", self.client_id,
                             s.messages, s.stored, s.dropped, s.batches, s.decode_s, s.write_s,
                             s.ack_s)
        finally:
            stop.set()
            with contextlib.suppress(queue.Full):
                handoff.put(None, timeout=1.0)
            writer.join(30.0)
            client.disconnect()
            client.loop_stop()
            if self._own_engine:
                self.engine.dispose()
        return self.stats

    def _collect(self, stop: threading.Event) -> list[Inbound]:
        """Up to ``ingest_batch_size`` messages, waiting at most ``ingest_flush_ms`` after the
        first one."""
        inbox = self._inbox
        try:
            first = inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        items = [first]
        limit = self.settings.ingest_batch_size
        deadline = time.monotonic() + self.settings.ingest_flush_ms / 1000.0
        while len(items) < limit:
            try:
                items.append(inbox.get_nowait())
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or stop.is_set():
                    break
                with contextlib.suppress(queue.Empty):
                    items.append(inbox.get(timeout=min(remaining, 0.02)))
        return items

    def decode(self, items: list[Inbound], now: datetime) -> list[Item]:
        """Every message -> reports or ``(device, Rejected)``; never raises."""
        out: list[Item] = []
        max_payload = self.settings.mqtt_max_payload
        for _gen, _mid, _qos, topic, payload in items:
            try:
                if len(payload) > max_payload:
                    raise Rejected(TOO_LARGE, f"{len(payload)} bytes")
                for rep in decode_mqtt(topic, payload, received_at=now):
                    out.append((_device(topic), rep) if isinstance(rep, Rejected) else rep)
            except Rejected as exc:
                out.append((_device(topic), exc))
            except Exception as exc:  # noqa: BLE001 - the worker never crashes on input
                log.exception("decoder failed on topic %s", topic)
                out.append((_device(topic), Rejected(INTERNAL, type(exc).__name__)))
        return out

    def _writer(self, handoff: queue.Queue[tuple[list[Inbound], Batch] | None],
                stop: threading.Event) -> None:
        """Writer stage: commit each prepared batch, then publish and acknowledge it."""
        while True:
            try:
                job = handoff.get(timeout=0.2)
            except queue.Empty:
                if stop.is_set():
                    return
                continue
            if job is None:
                return
            try:
                if not self._commit_and_ack(*job, stop):
                    return  # stopped before this batch committed: it and the rest come back
            except Exception:  # noqa: BLE001 - unacked messages come back on restart
                log.exception("ingest writer failed; stopping so the broker redelivers")
                stop.set()
                return

    def _commit_and_ack(self, items: list[Inbound], batch: Batch, stop: threading.Event) -> bool:
        s = self.stats
        t1 = time.perf_counter()
        result = self._write(batch, stop)
        if result is None:
            return False  # stopping before the commit: the broker redelivers these
        committed = time.time()
        t2 = time.perf_counter()
        self.ingestor.publish(batch, result)
        if self.on_commit is not None:
            self.on_commit(batch, result)
        self._ack(items)
        s.write_s += t2 - t1
        s.ack_s += time.perf_counter() - t2
        s.messages += len(items)
        s.stored += result.inserted
        s.dropped += sum(batch.drops.counts.values()) + result.duplicates
        s.batches += 1
        if self.record_lag:
            s.lags_ms.extend((committed - r.fix_time.timestamp()) * 1000.0 for r in batch.positions)
        return True

    def _ack(self, items: list[Inbound]) -> None:
        client = self._client
        assert client is not None
        gen = self._generation
        for g, mid, qos, _topic, _payload in items:
            if qos > 0 and g == gen:
                client.ack(mid, qos)

    def _write(self, batch: Batch, stop: threading.Event) -> WriteResult | None:
        """Commit the batch, retrying through database outages; None if stopped first.

        Crew statuses commit first, in a short transaction of their own (they lock the
        incident's and the crew's rows); the fixes then commit in another, so the COPY never
        holds a dispatch row nor waits for one.
        """
        if batch.statuses:
            try:
                status_drops = self._retrying(stop, lambda session: self.ingestor.write_statuses(
                    session=session, batch=batch))
            except DBAPIError as exc:  # refused as a whole: counted, the fixes still go in
                status_drops = Drops()
                for st in batch.statuses:
                    status_drops.add(STATUS_REJECTED, unit=st.unit_id, detail=_first_line(exc))
                batch.statuses_applied = []
            if status_drops is None:
                return None
            batch.drops.merge(status_drops)
            batch.statuses = []  # applied: a retry of the fixes must not apply them again
        return self._retrying_positions(batch, stop)

    def _retrying(self, stop: threading.Event, work: Any) -> Any:
        delay = 0.2
        while True:
            try:
                with transaction(self.factory) as session:
                    return work(session)
            except OperationalError as exc:
                self.stats.db_retries += 1
                log.warning("database write failed (%s); retrying in %.1f s",
                            _first_line(exc), delay)
            if stop.wait(delay):
                return None
            delay = min(delay * 2, 5.0)

    def _retrying_positions(self, batch: Batch, stop: threading.Event) -> WriteResult | None:
        delay = 0.2
        while True:
            try:
                with transaction(self.factory) as session:
                    return self.ingestor.write_positions(session=session, batch=batch)
            except OperationalError as exc:
                self.stats.db_retries += 1
                log.warning("database write failed (%s); retrying in %.1f s",
                            _first_line(exc), delay)
            except DBAPIError as exc:
                log.error("batch refused by the database (%s); writing one by one",
                          _first_line(exc))
                return self._write_isolated(batch, stop)
            if stop.wait(delay):
                return None
            delay = min(delay * 2, 5.0)

    def _write_isolated(self, batch: Batch, stop: threading.Event) -> WriteResult | None:
        """Rare path (e.g. a unit deleted meanwhile): each fix alone; refused ones are drops."""
        total = WriteResult()
        head = Batch(statuses=batch.statuses, offline=batch.offline, drops=batch.drops)
        parts: list[Batch] = [head] + [Batch(positions=[p]) for p in batch.positions]
        refused = Drops()
        for part in parts:
            try:
                with transaction(self.factory) as session:
                    r = self.ingestor.write(session=session, batch=part)
            except OperationalError:
                return self._write(batch, stop)
            except DBAPIError as exc:
                unit = part.positions[0].unit_id if part.positions else "?"
                refused.add(DB_REJECTED, unit=unit, detail=_first_line(exc))
                continue
            total.inserted += r.inserted
            total.duplicates += r.duplicates
            total.latest_moved |= r.latest_moved
        if refused:
            with transaction(self.factory) as session:
                record_drops(session=session, counts=refused.counts)
            batch.drops.merge(refused)
        return total


def _assignment_id(data: Any) -> str | None:
    if isinstance(data, dict):
        value = data.get("id", data.get("assignment_id"))
        return None if value is None else str(value)
    return None


def _device(topic: str) -> str:
    try:
        return parse_topic(topic)[1]
    except Rejected:
        return topic[:64]


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(exc).__name__])[0]


def run_worker(settings: Settings, *, index: int = 0, client_id: str | None = None,
               group: str | None = None, stop: threading.Event | None = None,
               record_lag: bool = False) -> WorkerStats:
    """Run one worker in this process until SIGTERM/SIGINT (or ``stop``)."""
    import signal

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    worker = IngestWorker(
        settings, client_id=client_id or f"{settings.mqtt_client_id}-{index}", group=group,
        record_lag=record_lag,
    )
    return worker.run(stop)

