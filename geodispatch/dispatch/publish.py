"""After-commit side effects of the workflow: crew terminal messages (MQTT), fleet statuses and
the crew app's push channel, and the delivery loop's pass that sends assignments again until the
broker confirmed them.

The first three must only happen once the transaction committed, so they are attached to the
session's ``after_commit`` event; nothing is sent for a rolled-back request. Each assignment
message published there is remembered in an :class:`Inflight` table; :func:`deliver_pending`
(run by the dispatch lifespan every ``assignment_retry_s``) records ``assignment_sent`` when the
broker acknowledged it, publishes again what failed or was never published (broker down, no
client), and what the crew has not acknowledged within ``assignment_ack_timeout_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from geodispatch.dispatch.effects import (
    assignment_message,
    take_pending_publishes,
    take_terminal_units,
    take_unit_statuses,
)
from geodispatch.dispatch.workflow import due_for_sending, record_sent
from geodispatch.tracking.models import Unit
from geodispatch.tracking.mqtt import publish_assignment

if TYPE_CHECKING:  # types only (paho and the fleet are handed in by the lifespan)
    import paho.mqtt.client as paho

    from geodispatch.tracking.fleet import LiveFleet

log = logging.getLogger(__name__)


class Terminals(Protocol):
    """The open crew terminals (``geodispatch.crew.stream.CrewHub``): told which units' screens
    changed, from the committing thread; it must not block."""

    def units_changed(self, unit_ids: Iterable[int]) -> None: ...


class Inflight:
    """Assignment messages handed to the MQTT client and not yet recorded as sent (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[int, tuple[Any, float]] = {}

    def put(self, assignment_id: int, info: Any) -> None:
        with self._lock:
            self._items[assignment_id] = (info, time.monotonic())

    def take(self, assignment_id: int) -> tuple[Any, float] | None:
        with self._lock:
            return self._items.pop(assignment_id, None)


def publish_after_commit(session: Session, *, mqtt: paho.Client | None,
                         fleet: LiveFleet | None, inflight: Inflight | None = None,
                         terminals: Terminals | None = None) -> None:
    """Send this unit of work's assignment messages and unit statuses when it commits, and tell
    the open crew terminals whose screens changed.

    Only the outermost commit counts: SQLAlchemy also emits ``after_commit`` when a savepoint is
    released (tracker ingest applies each crew status in one), and acting then would tell the
    terminals before the change is visible, or of a change the transaction then rolls back."""

    done = False  # (a listener cannot remove itself while the event is being dispatched)

    def after_commit(sess: Session) -> None:
        nonlocal done
        if done or sess.in_nested_transaction():
            return  # a savepoint released: the transaction's own commit comes later
        done = True
        pending = take_pending_publishes(sess)
        statuses = take_unit_statuses(sess)
        touched = take_terminal_units(sess)
        if fleet is not None:
            for unit_id, status in statuses.items():
                fleet.set_status(unit_id, status)
        if terminals is not None and touched:
            try:
                terminals.units_changed(touched)
            except Exception:  # noqa: BLE001 - committed; the terminals' polling still sees it
                log.exception("could not tell the crew terminals of units %s", sorted(touched))
        if mqtt is None or not pending:
            return

        for p in pending:
            try:
                info = publish_assignment(mqtt, p.device_id, p.payload)
                if inflight is not None and p.assignment_id is not None and info.rc == 0:
                    inflight.put(p.assignment_id, info)
            except Exception:  # noqa: BLE001 - the assignment is committed; the map shows it
                log.exception("could not publish the assignment to %s", p.device_id)

    event.listen(session, "after_commit", after_commit)


def _published(info: Any, wait_s: float) -> bool:
    try:
        if not info.is_published() and wait_s > 0:
            info.wait_for_publish(wait_s)
        return bool(info.is_published())
    except (RuntimeError, ValueError):  # not queued (client disconnected): publish again
        return False


def deliver_pending(*, factory: sessionmaker[Session], mqtt: paho.Client | None,
                    inflight: Inflight, ack_timeout_s: float, retry_s: float,
                    wait_s: float = 2.0) -> int:
    """One pass of the delivery loop; returns how many sends it recorded.

    An assignment whose after-commit publish the broker confirmed gets its ``assignment_sent``
    event; one still in flight for less than ``retry_s`` is left alone; every other due one
    (see :func:`~geodispatch.dispatch.workflow.due_for_sending`) is published again, waiting up
    to ``wait_s`` for the broker's PUBACK before recording it.

    The due assignments and their messages are read first, in a transaction that locks
    nothing; each send is then recorded in a short transaction of its own, so the incident row
    it locks is never held while this pass waits on the broker or records other sends (a crew's
    acknowledgement or a dispatcher's action on that incident would wait for all of it).
    """
    now = datetime.now(UTC)
    work: list[tuple[int, tuple[str, dict[str, Any]] | None]] = []
    with factory() as session:
        for a in due_for_sending(session=session, now=now, ack_timeout_s=ack_timeout_s):
            held = inflight.take(a.id) if a.sent_at is None else None
            if held is not None:
                info, since = held
                if _published(info, 0):
                    work.append((a.id, None))  # confirmed: record it
                    continue
                if time.monotonic() - since < retry_s:
                    inflight.put(a.id, info)
                    continue
            if mqtt is None or not mqtt.is_connected():
                continue
            device = session.get(Unit, a.unit_id)
            if device is None:
                continue
            work.append((a.id, (device.device_id,
                                assignment_message(session=session, assignment=a))))
    recorded = 0
    for assignment_id, send in work:
        if send is not None:
            assert mqtt is not None
            try:
                info = publish_assignment(mqtt, *send)
            except Exception:  # noqa: BLE001 - the next pass tries again
                log.warning("could not publish assignment %s to %s", assignment_id, send[0],
                            exc_info=True)
                continue
            if info.rc != 0 or not _published(info, wait_s):
                continue
        with factory() as session, session.begin():
            recorded += record_sent(session=session, assignment_id=assignment_id,
                                    at=datetime.now(UTC), actor="delivery")
    return recorded
