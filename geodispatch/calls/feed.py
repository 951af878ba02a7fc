"""Calls pushed to the console's live feed: each change of a call, moments after it commits.

Every change to a call is an event in its record (``incident_events`` rows with ``call_id``),
so one query by event id for the whole process finds the calls that changed, and their current
state (the same JSON as ``GET /api/calls``, with the caller's number and newest location) goes to
the live clients whose role sees the call list. Like the incidents' poller, each poll looks
back ``EVENT_LOOKBACK`` ids below the newest seen (a transaction that took a smaller id may
commit after one with a larger id) and skips what it already sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection
from typing import Any, Protocol, TypeVar

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from geodispatch.calls import service
from geodispatch.calls.models import Call
from geodispatch.calls.present import call_json

log = logging.getLogger(__name__)

EVENT_LOOKBACK = 500
T = TypeVar("T")


class CallPublisher(Protocol):
    """Where the changed calls go (:class:`geodispatch.api.livefeed.LiveHub`)."""

    def wants_calls(self) -> bool: ...

    def publish_calls(self, rows: list[dict[str, Any]]) -> None: ...


def last_call_event_id(*, session: Session) -> int:
    return int(session.execute(text(
        "SELECT coalesce(max(id), 0) FROM incident_events")).scalar_one())


def call_changes_since(*, session: Session, after_id: int, exclude: Collection[int] = (),
                       limit: int = 5000) -> tuple[list[dict[str, Any]], list[int]]:
    """The calls touched by events with id > ``after_id`` (not in ``exclude``), as the console
    shows them, and the ids of all the events read (incidents' too, so none is read twice)."""
    events = session.execute(text(
        "SELECT id, call_id FROM incident_events WHERE id > :after AND NOT (id = ANY(:ex)) "
        "ORDER BY id LIMIT :limit"), {"after": after_id, "ex": list(exclude), "limit": limit}
    ).all()
    call_ids = sorted({int(e.call_id) for e in events if e.call_id is not None})
    if not call_ids:
        return [], [int(e.id) for e in events]
    calls = list(session.execute(select(Call).where(Call.id.in_(call_ids))).scalars())
    latest = service.latest_locations(session=session, call_ids=call_ids)
    return [call_json(session, c, latest=latest) for c in calls], [int(e.id) for e in events]


async def poll_calls(hub: CallPublisher, factory: sessionmaker[Session],
                     interval_s: float) -> None:
    """Forever: publish the calls changed since the last poll while anyone watches them."""

    def _head() -> int:
        with factory() as s:
            return last_call_event_id(session=s)

    def _poll(after: int, seen: set[int]) -> tuple[list[dict[str, Any]], list[int]]:
        with factory() as s:
            return call_changes_since(session=s, after_id=after, exclude=seen)

    newest: int | None = None
    seen: set[int] = set()
    while True:
        try:
            if newest is None:
                newest = await _in_thread(_head)
            elif not hub.wants_calls():
                newest = max(newest, await _in_thread(_head))  # nobody watches: keep up
                seen.clear()
            else:
                rows, ids = await _in_thread(_poll, max(0, newest - EVENT_LOOKBACK), set(seen))
                if ids:
                    newest = max(newest, max(ids))
                    seen.update(ids)
                    seen = {i for i in seen if i > newest - EVENT_LOOKBACK}
                if rows:
                    hub.publish_calls(rows)
        except Exception:  # noqa: BLE001 - a database hiccup must not end the feed
            log.warning("call feed poll failed; retrying", exc_info=True)
            await asyncio.sleep(2.0)
        await asyncio.sleep(interval_s)


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    """``asyncio.to_thread`` that, when cancelled, still waits for the thread to finish (its
    database session must not outlive the engine at shutdown)."""
    work = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await work
        raise
