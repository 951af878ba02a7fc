"""Calls pushed to the console's live feed: each change of a call, moments after it commits.

Every change to a call is an event in its record (``incident_events`` rows with ``call_id``),
so one query by event id for the whole process finds the calls that changed, and their current
state (the same JSON as ``GET /api/calls``, with the caller's number and newest location) goes to
the live clients whose role sees the call list. The loop is the incidents' poller's
(:func:`geodispatch.eventfeed.follow_events`: it looks back a few hundred ids below the newest
seen, as a transaction that took a smaller id may commit after one with a larger id).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any, Protocol

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from geodispatch.calls import service
from geodispatch.calls.models import Call
from geodispatch.calls.present import call_json
from geodispatch.eventfeed import follow_events, last_event_id

log = logging.getLogger(__name__)



class CallPublisher(Protocol):
    """Where the changed calls go (:class:`geodispatch.api.livefeed.LiveHub`)."""

    def wants_calls(self) -> bool: ...

    def publish_calls(self, rows: list[dict[str, Any]]) -> None: ...


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
            return last_event_id(session=s)

    def _poll(after: int, seen: set[int]) -> tuple[list[dict[str, Any]], list[int]]:
        with factory() as s:
            return call_changes_since(session=s, after_id=after, exclude=seen)

    await follow_events(head=_head, changes=_poll, publish=hub.publish_calls,
                        watched=hub.wants_calls, interval_s=interval_s, what="call feed")
