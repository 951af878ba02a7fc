"""The MQTT ingest worker (``geodispatch ingest``): lossless, batched, restartable, poison-proof.

How nothing is lost
-------------------
* QoS 1, a persistent session (``clean_start=False`` + session expiry) and an MQTT 5 shared
  subscription: while a worker is down the broker queues its share of the messages.
* Manual acknowledgements: paho's automatic PUBACK is switched off (``manual_ack_set(True)``); a
  message is acknowledged only after the database transaction of the batch that contains it has
  committed, in the order received. A crash (even ``kill -9``) before the commit means the broker
  redelivers; a crash after the commit but before the PUBACK means a redelivered duplicate, which
  ``INSERT .. ON CONFLICT (unit_id, fix_time) DO NOTHING`` absorbs.
* Database outages: a write that fails for a reason outside the data (connection lost, server
  restarting, deadlock, disk full: :func:`is_transient`) is retried with back-off until it
  commits; the broker keeps the unacknowledged messages in flight meanwhile. Acknowledgements
  from a previous connection are never sent on a new one (message ids are per connection).

How no message can stop it
--------------------------
* Every stage is total. The network callback only queues bytes; decoding turns every message
  into reports or ``Rejected`` drops; preparing a batch drops an item on which a step raises as
  ``internal_error``; text PostgreSQL cannot store is dropped as ``unstorable`` before the write.
* A write the database refuses for a reason in the data (class 21/22/23/54/XX, a trigger's
  exception, or any Python error while writing) is isolated: the batch is split in halves and
  each half retried, down to the single message at fault; that message's fixes are tried one by
  one, and the message itself is kept whole in ``ingest_dead_letters`` (raw bytes, topic, reason,
  error) and acknowledged, so a redelivery cannot fail again. ``unstorable`` and
  ``internal_error`` messages are dead-lettered the same way. Every drop is counted in
  ``ingest_drops`` and logged.
* Nothing raised by a message leaves :meth:`IngestWorker.run`; ``geodispatch ingest`` also runs
  each worker under a supervisor (``geodispatch.tracking.supervisor``) that restarts it if the
  process dies anyway.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
import paho.mqtt.client as paho
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from geodispatch.db import app_engine, session_factory, transaction
from geodispatch.settings import Settings
from geodispatch.tracking.broker import server_credentials
from geodispatch.tracking.decoders import decode_mqtt, parse_topic
from geodispatch.tracking.fleet import LiveFleet
from geodispatch.tracking.ingest import Batch, Ingestor, Item, StatusHandler
from geodispatch.tracking.mqtt import (
    ASSIGNMENT_FILTER,
    INGEST_FILTERS,
    connect_properties,
    make_client,
    publish_assignment,
    reconnect_fast,
    shared,
)
from geodispatch.tracking.pipeline import (
    DeadLetter,
    Drops,
    WriteResult,
    is_transient,
    record_dead_letters,
    record_drops,
)
from geodispatch.tracking.reports import (
    DB_REJECTED,
    INTERNAL,
    STATUS_REJECTED,
    TOO_LARGE,
    OfflineReport,
    PositionReport,
    Rejected,
    StatusReport,
)
from geodispatch.tracking.scheduled import PartitionJob

log = logging.getLogger(__name__)

T = TypeVar("T")

@dataclass
class WorkerStats:
    """Counters of one worker (logged every ``log_every_s``)."""

    messages: int = 0
    stored: int = 0
    dropped: int = 0
    batches: int = 0
    db_retries: int = 0
    dead_letters: int = 0
    isolations: int = 0
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
        # paho's network thread dies with an exception raised here: nothing may escape.
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # the broker checks UTF-8; never trust it blindly
            topic = bytes(msg._topic).decode("utf-8", "replace")  # noqa: SLF001
        try:
            if topic.endswith("/assignment") or topic.endswith("/assignment/ack"):
                try:
                    self._assignment_message(client, topic, bytes(msg.payload))
                except Exception:  # noqa: BLE001 - a bad ack must not stop the network thread
                    log.warning("ignored assignment message on %s", topic[:120], exc_info=True)
                if topic.endswith("/assignment"):
                    if msg.qos:
                        client.ack(msg.mid, msg.qos)
                    return
                # An acknowledgement is also stored (decoded like a status, acked after commit).
            self._inbox.put((self._generation, msg.mid, msg.qos, topic, bytes(msg.payload)))
        except Exception:  # noqa: BLE001
            log.exception("MQTT message on %r not queued; it comes back on reconnect", topic[:120])

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
        delivered_only = isinstance(data, dict) and data.get("state") == "delivered"
        if ident is not None and ident == current and not delivered_only:
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
            except Exception as exc:  # noqa: BLE001 - wait for the database, never die
                level = logging.WARNING if isinstance(exc, OperationalError) else logging.ERROR
                log.log(level, "database unavailable at start (%s); retrying", _first_line(exc))
                stop.wait(delay)
                delay = min(delay * 2, 5.0)
        return False

    def _ensure_partitions(self) -> None:
        PartitionJob(self.factory, self.settings).run_once()  # logs at ERROR when it fails

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
        reconnect_fast(client)
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
            while not stop.is_set():
                if not writer.is_alive():
                    log.error("ingest writer thread ended unexpectedly; starting a new one")
                    writer = threading.Thread(target=self._writer, args=(handoff, stop),
                                              name="ingest-writer", daemon=True)
                    writer.start()
                items = self._collect(stop)
                if items:
                    t0 = time.perf_counter()
                    batch = self._prepare(items)
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
        """Every message -> reports or ``(device, Rejected)``, each carrying its message's index
        in ``items``; never raises."""
        out: list[Item] = []
        max_payload = self.settings.mqtt_max_payload
        for i, (_gen, _mid, _qos, topic, payload) in enumerate(items):
            try:
                if len(payload) > max_payload:
                    raise Rejected(TOO_LARGE, f"{len(payload)} bytes")
                for rep in decode_mqtt(topic, payload, received_at=now):
                    rep.msg = i
                    out.append((_device(topic), rep) if isinstance(rep, Rejected) else rep)
            except Rejected as exc:
                exc.msg = i
                out.append((_device(topic), exc))
            except Exception as exc:  # noqa: BLE001 - the worker never crashes on input
                log.exception("decoder failed on topic %s", topic[:120])
                out.append((_device(topic), Rejected(INTERNAL, _describe(exc), msg=i)))
        return out

    def _prepare(self, items: list[Inbound]) -> Batch:
        """Decode and prepare; if that raises anyway (a bug), every message of the batch is
        dead-lettered whole, so the batch is acknowledged and never comes back to fail again."""
        now = datetime.now(UTC)
        try:
            return self.ingestor.prepare(self.decode(items, now), now=now)
        except Exception as exc:  # noqa: BLE001
            log.exception("preparing a batch of %d messages failed; dead-lettering them",
                          len(items))
            batch = Batch()
            detail = _describe(exc)
            for i in range(len(items)):
                batch.drops.add(INTERNAL, unit=_device(items[i][3]), detail=detail)
                batch.rejected.append((i, INTERNAL, detail, None))
            return batch

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
            except Exception:  # noqa: BLE001 - never leaves the loop (see _commit_and_ack)
                log.exception("ingest writer failed on a batch of %d messages; they stay "
                              "unacknowledged and come back on the next connection", len(job[0]))

    def _commit_and_ack(self, items: list[Inbound], batch: Batch, stop: threading.Event) -> bool:
        s = self.stats
        t1 = time.perf_counter()
        result = self._store(items, batch, stop)
        if result is None:
            self.ingestor.abandon(batch)
            return False  # stopping before the commit: the broker redelivers these
        committed = time.time()
        t2 = time.perf_counter()
        self.ingestor.publish(batch, result)
        if self.on_commit is not None:
            try:
                self.on_commit(batch, result)
            except Exception:  # noqa: BLE001 - the batch is committed: acknowledge it anyway
                log.exception("on_commit callback failed")
        self._ack(items)
        s.write_s += t2 - t1
        s.ack_s += time.perf_counter() - t2
        s.messages += len(items)
        s.stored += result.inserted
        s.dropped += sum(batch.drops.counts.values()) + result.duplicates
        s.batches += 1
        if self.record_lag:
            s.lags_ms.extend((committed - r.fix_time.timestamp()) * 1000.0 for r in result.written)
        return True

    def _ack(self, items: list[Inbound]) -> None:
        client = self._client
        assert client is not None
        gen = self._generation
        for g, mid, qos, _topic, _payload in items:
            if qos > 0 and g == gen:
                client.ack(mid, qos)

    # --- writing -------------------------------------------------------------------------------

    def _attempt(self, work: Callable[[Session], T], stop: threading.Event) -> T | Exception | None:
        """Run ``work`` in one transaction, retrying transient failures with back-off.

        Returns its result, the exception when the failure is about the data (see
        :func:`is_transient`), or None when ``stop`` was set while waiting to retry.
        """
        delay = 0.2
        failures = 0
        while True:
            try:
                with transaction(self.factory) as session:
                    return work(session)
            except Exception as exc:  # noqa: BLE001 - classified just below
                if not is_transient(exc):
                    return exc
                failures += 1
                self.stats.db_retries += 1
                # A long outage (or a deployment problem: a missing table or grant) is an error
                # somebody must see; the first few retries of a restart are not.
                level = logging.WARNING if failures < 10 else logging.ERROR
                log.log(level, "database write failed (%s); retrying in %.1f s",
                        _first_line(exc), delay)
            if stop.wait(delay):
                return None
            delay = min(delay * 2, 5.0)

    def _write_part(self, session: Session, part: Batch,
                    letters: list[DeadLetter]) -> WriteResult:
        result = self.ingestor.write_positions(session=session, batch=part)
        record_dead_letters(session=session, letters=letters)
        return result

    def _write_statuses(self, batch: Batch, stop: threading.Event) -> bool:
        """Crew statuses commit first, in a short transaction of their own (they lock the
        incident's and the crew's rows), so the COPY of the fixes never holds a dispatch row nor
        waits for one. Refused as a whole for a reason in the data: counted, the fixes still go
        in. False when stopped first."""
        if not batch.statuses:
            return True
        outcome = self._attempt(
            lambda session: self.ingestor.write_statuses(session=session, batch=batch), stop)
        if outcome is None:
            return False
        if isinstance(outcome, Exception):
            status_drops = Drops()
            for st in batch.statuses:
                status_drops.add(STATUS_REJECTED, unit=st.unit_id, detail=_first_line(outcome))
            batch.statuses_applied = []
        else:
            status_drops = outcome
        batch.drops.merge(status_drops)
        batch.statuses = []  # applied: a retry of the fixes must not apply them again
        return True

    def _letters(self, items: list[Inbound], batch: Batch) -> list[DeadLetter]:
        """Dead letters of the messages the preparation refused whole (unstorable, internal)."""
        out = []
        for msg, reason, detail, unit in batch.dead_letters():
            if 0 <= msg < len(items):
                out.append(DeadLetter("mqtt", items[msg][3], items[msg][4], reason, detail,
                                      unit if unit is not None else _unit_of(batch, msg)))
        return out

    def _store(self, items: list[Inbound], batch: Batch,
               stop: threading.Event) -> WriteResult | None:
        """Commit the batch (with its dead letters); isolate what the database refuses. None
        only when stopped before everything committed."""
        if not self._write_statuses(batch, stop):
            return None
        letters = self._letters(items, batch)
        outcome = self._attempt(lambda session: self._write_part(session, batch, letters), stop)
        if outcome is None or isinstance(outcome, WriteResult):
            if letters and outcome is not None:
                self.stats.dead_letters += len(letters)
            return outcome
        log.error("a batch of %d messages was refused by the database (%s); isolating the "
                  "message(s) at fault", len(items), _first_line(outcome))
        self.stats.isolations += 1
        return self._isolate(items, batch, letters, stop)

    def _isolate(self, items: list[Inbound], batch: Batch, letters: list[DeadLetter],
                 stop: threading.Event) -> WriteResult | None:
        """Bisect the batch by message: every part that commits is kept; a single message that
        still fails has its fixes tried one by one and is then dead-lettered whole."""
        total = WriteResult()
        # The batch's drop counts and the preparation's dead letters, on their own.
        head = Batch(drops=batch.drops, token=batch.token)
        outcome = self._attempt(lambda session: self._write_part(session, head, letters), stop)
        if outcome is None:
            return None
        if isinstance(outcome, Exception):
            self._log_lost(letters, outcome)
        else:
            self.stats.dead_letters += len(letters)
        msgs = batch.messages()
        stack = [msgs[len(msgs) // 2:], msgs[:len(msgs) // 2]]
        while stack:
            group = stack.pop()
            if not group:
                continue
            part = batch.subset(group)
            outcome = self._attempt(functools.partial(self._write_part, part=part, letters=[]),
                                    stop)
            if outcome is None:
                return None
            if isinstance(outcome, WriteResult):
                total.merge(outcome)
                continue
            if len(group) > 1:
                half = len(group) // 2
                stack.extend((group[half:], group[:half]))
                continue
            done = self._poison(items, part, group[0], outcome, stop)
            if done is None:
                return None
            total.merge(done)
        return total

    def _poison(self, items: list[Inbound], part: Batch, msg: int, error: Exception,
                stop: threading.Event) -> WriteResult | None:
        """One message the database refuses: store what it can alone, dead-letter the rest."""
        total = WriteResult()
        singles = ([Batch(positions=[r], token=part.token) for r in part.positions]
                   + [Batch(statuses=[r], token=part.token) for r in part.statuses]
                   + [Batch(offline=[r], token=part.token) for r in part.offline])
        refused = 0
        if len(singles) > 1:
            for single in singles:
                outcome = self._attempt(
                    functools.partial(self._write_part, part=single, letters=[]), stop)
                if outcome is None:
                    return None
                if isinstance(outcome, WriteResult):
                    total.merge(outcome)
                else:
                    refused += 1
        else:
            refused = len(singles)
        _gen, _mid, _qos, topic, payload = items[msg]
        detail = (f"{_first_line(error)} ({refused} of {len(singles)} reports refused; the "
                  "others are stored)")
        unit = _unit_of(part, msg)
        letter = DeadLetter("mqtt", topic, payload, DB_REJECTED, detail, unit)
        log.error("dead-lettered a message on %s (unit %s): %s", topic[:120], unit, detail)

        def write(session: Session) -> bool:
            record_dead_letters(session=session, letters=[letter])
            record_drops(session=session, counts={DB_REJECTED: 1})
            return True  # (None would mean "stopped")

        kept = self._attempt(write, stop)
        if kept is None:
            return None
        if isinstance(kept, Exception):
            self._log_lost([letter], kept)
        else:
            self.stats.dead_letters += 1
        return total

    def _log_lost(self, letters: list[DeadLetter], error: Exception) -> None:
        """Last resort when even the dead-letter table refuses: the raw messages go to the log."""
        for d in letters:
            log.error("dead letter not stored (%s): topic %r reason %s detail %s payload(b64) %s",
                      _first_line(error), d.topic[:200], d.reason, d.detail,
                      base64.b64encode(d.payload).decode())


def _unit_of(batch: Batch, msg: int) -> int | None:
    reports: list[PositionReport | StatusReport | OfflineReport] = [
        *batch.positions, *batch.statuses, *batch.offline]
    for r in reports:
        if r.msg == msg and r.unit_id is not None:
            return r.unit_id
    return None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


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
    """The error's first line with its SQLSTATE, at most 300 characters (it may quote input)."""
    orig = getattr(exc, "orig", None) or exc
    line = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    state = getattr(orig, "sqlstate", None)
    prefix = f"{state} " if state else f"{type(orig).__name__}: "
    return (prefix + line)[:300]


def run_worker(settings: Settings, *, index: int = 0, client_id: str | None = None,
               group: str | None = None, stop: threading.Event | None = None,
               record_lag: bool = False, status_handler: StatusHandler | None = None
               ) -> WorkerStats:
    """Run one worker in this process until SIGTERM/SIGINT (or ``stop``)."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    worker = IngestWorker(
        settings, client_id=client_id or f"{settings.mqtt_client_id}-{index}", group=group,
        record_lag=record_lag, status_handler=status_handler,
    )
    return worker.run(stop)

