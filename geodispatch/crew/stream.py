"""The crew app's push channel: in-memory fan-out of each unit's terminal screen to its open
streams (``GET /api/crew/stream``, Server-Sent Events).

The workflow's after-commit hook (:func:`geodispatch.dispatch.publish.publish_after_commit`)
tells the hub which units' screens changed (:meth:`CrewHub.units_changed`, from any thread). The
hub's refresher reads each changed unit's screen once (:func:`~geodispatch.crew.service.crew_views`,
the same document ``GET /api/crew/assignment`` answers), in five queries for all units changed
since its last pass, and hands it to every open stream of that unit: one read per changed unit,
never one per terminal, and none for a unit with no open stream.

An event is the whole screen, not a delta, so a stream only ever needs the newest one: each
subscriber holds one slot (a slow terminal skips states, it never queues them). Event ids are
``<epoch>.<seq>``: ``seq`` counts change notices in this process, ``epoch`` is new at every start.
A terminal that reconnects with ``Last-Event-ID`` gets nothing when its unit has not changed
since (same epoch, no later notice), else the current screen.

The auth watcher (:meth:`CrewHub.check_tokens`, every :data:`AUTH_CHECK_S`) reads the token hash
and active flag of every unit with an open stream in one query and ends the streams whose unit
was deactivated or whose token was replaced since they connected. A stream opened with an
officer's shift token (:mod:`geodispatch.crew.roster`) ends when the shift does: at once when the
sign-off was committed by this process (:meth:`CrewHub.shifts_ended`), else at the watcher's next
pass, which also reads which of the streams' shifts are still open.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from geodispatch.crew.roster import open_shifts
from geodispatch.crew.service import crew_views
from geodispatch.tracking.models import Unit

log = logging.getLogger(__name__)
T = TypeVar("T")

#: How often the auth watcher re-reads the tokens of the units with open streams.
AUTH_CHECK_S = 1.0
#: A comment line this often keeps idle connections open through proxies and finds dead ones.
HEARTBEAT_S = 15.0
#: How long the browser's EventSource waits before reconnecting (the SSE ``retry:`` field).
RETRY_MS = 1000


@dataclass(eq=False)  # one per stream, kept in sets by identity
class Subscriber:
    """One open stream of one unit: the newest screen not yet written, and why it must end."""

    unit_id: int
    token_hash: str
    shift_id: int | None = None  # signed in with an officer's shift token, not the device's
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    latest: tuple[str, dict[str, Any]] | None = None  # (event id, screen)
    ended: str | None = None  # "revoked" (the unit's token), "signed_off" (the shift ended)

    def offer(self, event_id: str, screen: dict[str, Any]) -> None:
        self.latest = (event_id, screen)
        self.wake.set()

    def end(self, reason: str) -> None:
        self.ended = reason
        self.wake.set()

    def take(self) -> tuple[str, dict[str, Any]] | None:
        out, self.latest = self.latest, None
        self.wake.clear()
        return out


class CrewHub:
    """The open crew streams of this process, by unit, and the task that refreshes them."""

    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._factory = session_factory
        self.epoch = secrets.token_hex(4)
        self._seq = itertools.count(1)
        self._last_seq = 0
        self._lock = threading.Lock()  # _dirty, _changed, _last_seq: written from any thread
        self._dirty: dict[int, int] = {}  # unit id -> seq of its newest notice not yet read
        self._changed: dict[int, int] = {}  # unit id -> seq of its newest notice
        self._subs: dict[int, set[Subscriber]] = {}  # only touched on the event loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self.refreshes = 0  # unit screens read for open streams (for tests and the bench)
        self._busy = 0  # database calls running in worker threads (see drain)
        self._idle = threading.Condition(self._lock)

    # ---- any thread -------------------------------------------------------------------------
    def units_changed(self, unit_ids: Iterable[int]) -> None:
        """Note that these units' screens changed (called after the commit, from any thread)."""
        ids = list(unit_ids)
        if not ids:
            return
        with self._lock:
            for uid in ids:
                seq = next(self._seq)
                self._last_seq = seq
                self._changed[uid] = seq
                self._dirty[uid] = seq
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def shifts_ended(self, shift_ids: Iterable[int]) -> None:
        """End the streams of these shifts now (after the sign-off's commit, from any thread)."""
        ids = set(shift_ids)
        loop = self._loop
        if ids and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._end_shifts, ids)

    def _end_shifts(self, shift_ids: set[int]) -> int:
        ended = 0
        for subs in list(self._subs.values()):
            for sub in list(subs):
                if sub.shift_id in shift_ids:
                    sub.end("signed_off")
                    self.unsubscribe(sub)
                    ended += 1
        return ended

    def now(self) -> int:
        """The newest notice's seq: a screen read after this call is at least this new."""
        with self._lock:
            return self._last_seq

    def up_to_date(self, unit_id: int, last_event_id: str | None) -> bool:
        """Whether a terminal that last saw ``last_event_id`` has missed nothing of its unit."""
        epoch, _, seq = (last_event_id or "").partition(".")
        if epoch != self.epoch or not seq.isdigit():
            return False
        with self._lock:
            return self._changed.get(unit_id, 0) <= int(seq)

    def event_id(self, seq: int) -> str:
        return f"{self.epoch}.{seq}"

    def seq_of(self, event_id: str) -> int:
        """The seq of one of this hub's event ids (0 for anything else)."""
        epoch, _, seq = event_id.partition(".")
        return int(seq) if epoch == self.epoch and seq.isdigit() else 0

    def _counted(self, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            self._busy += 1
        try:
            return fn(*args)
        finally:
            with self._lock:
                self._busy -= 1
                self._idle.notify_all()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking database call in a worker thread; :meth:`drain` waits for it."""
        return await asyncio.to_thread(self._counted, fn, *args)

    def drain(self, timeout_s: float) -> bool:
        """Wait until no database call of the hub or its streams runs (before the engine is
        disposed at shutdown: a cancelled stream's thread may still hold a connection)."""
        with self._lock:
            return self._idle.wait_for(lambda: self._busy == 0, timeout_s)

    # ---- the event loop ---------------------------------------------------------------------
    def subscribe(self, unit_id: int, token_hash: str, shift_id: int | None = None
                  ) -> Subscriber:
        sub = Subscriber(unit_id, token_hash, shift_id)
        self._subs.setdefault(unit_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self._subs.get(sub.unit_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.unit_id]

    def open_streams(self) -> int:
        return sum(len(s) for s in self._subs.values())

    async def run(self) -> None:
        """Refresh the changed units' screens for their open streams until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while True:
            await self._wake.wait()
            self._wake.clear()
            with self._lock:
                dirty, self._dirty = self._dirty, {}
            wanted = {uid: seq for uid, seq in dirty.items() if uid in self._subs}
            if not wanted:
                continue
            try:
                screens = await self.call(self._read, sorted(wanted))
            except Exception:  # noqa: BLE001 - try again with the next notice
                log.exception("could not read the screens of units %s", sorted(wanted))
                with self._lock:
                    for uid, seq in wanted.items():
                        self._dirty.setdefault(uid, seq)
                await asyncio.sleep(0.5)
                self._wake.set()
                continue
            for uid, screen in screens.items():
                self.refreshes += 1
                eid = self.event_id(wanted[uid])
                for sub in list(self._subs.get(uid, ())):
                    sub.offer(eid, screen)

    def _read(self, unit_ids: list[int]) -> dict[int, dict[str, Any]]:
        with self._factory() as session, session.begin():
            units = list(session.execute(select(Unit).where(
                Unit.id.in_(unit_ids), Unit.active.is_(True))).scalars())
            return crew_views(session=session, units=units)

    async def watch_tokens(self) -> None:
        """End the streams of deactivated units and replaced tokens, every :data:`AUTH_CHECK_S`."""
        while True:
            await asyncio.sleep(AUTH_CHECK_S)
            if not self._subs:
                continue
            checked = list(self._subs)
            shifts = sorted({s.shift_id for subs in self._subs.values() for s in subs
                             if s.shift_id is not None})
            try:
                current = await self.call(self._tokens, checked)
                still_open = await self.call(self._open, shifts)
            except Exception:  # noqa: BLE001 - the next pass tries again
                log.exception("could not check the crew streams' tokens")
                continue
            self.check_tokens(current, checked, still_open, shifts)

    def check_tokens(self, current: dict[int, str], checked: Iterable[int],
                     still_open: Iterable[int] = (), checked_shifts: Iterable[int] = ()) -> int:
        """End every stream of the ``checked`` units whose unit is not in ``current`` (unit id ->
        token hash of the active units) or whose token hash changed, and every stream of the
        ``checked_shifts`` not in ``still_open``; how many were ended. (Streams that subscribed
        while these were read wait for the next pass.)"""
        ended = 0
        open_ids, judged = set(still_open), set(checked_shifts)
        for uid in set(checked):
            for sub in list(self._subs.get(uid, ())):
                if sub.shift_id is not None:
                    if uid in current and (sub.shift_id not in judged
                                           or sub.shift_id in open_ids):
                        continue
                    sub.end("signed_off" if uid in current else "revoked")
                elif current.get(uid) != sub.token_hash:
                    sub.end("revoked")
                else:
                    continue
                self.unsubscribe(sub)
                ended += 1
        return ended

    def _open(self, shift_ids: list[int]) -> set[int]:
        if not shift_ids:
            return set()
        with self._factory() as session:
            return open_shifts(session=session, shift_ids=shift_ids)

    def _tokens(self, unit_ids: list[int]) -> dict[int, str]:
        with self._factory() as session:
            return {uid: h for uid, h in session.execute(
                select(Unit.id, Unit.device_token_hash).where(
                    Unit.id.in_(unit_ids), Unit.active.is_(True)))}
