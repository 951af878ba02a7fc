"""Following the record's event ids from an async task: the live feeds' one poll loop.

Event ids come from a sequence, so a transaction that took a smaller id can commit after one
with a larger id. Each poll therefore looks back ``EVENT_LOOKBACK`` ids below the newest seen
and skips the events it already reported. While nobody watches, the loop only keeps up with the
newest id (no change is read for nobody); a watcher reads the whole state when it connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

EVENT_LOOKBACK = 500  # event ids re-examined below the newest (late commits)
T = TypeVar("T")
R = TypeVar("R")


def last_event_id(*, session: Session) -> int:
    """The newest event id of the record (0 for an empty one): where a feed starts."""
    return int(session.execute(text("SELECT coalesce(max(id), 0) FROM incident_events"))
               .scalar_one())


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """``asyncio.to_thread`` that, when cancelled, still waits for the thread to finish.

    A worker thread cannot be interrupted; letting shutdown proceed while it still holds a
    database session would dispose the engine under it (and leak the connection).
    """
    work = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await work
        raise


async def follow_events(*, head: Callable[[], int],
                        changes: Callable[[int, set[int]], tuple[list[R], list[int]]],
                        publish: Callable[[list[R]], None], watched: Callable[[], bool],
                        interval_s: float, what: str) -> None:
    """Forever: every ``interval_s``, ``publish`` what changed since the last poll.

    ``head()`` is the newest event id; ``changes(after_id, exclude)`` the rows changed by the
    events above ``after_id`` not in ``exclude``, and those events' ids (both run in a worker
    thread); ``watched()`` whether anyone would receive them. A failed poll is logged (as
    ``what``) and retried; it never ends the loop.
    """
    newest: int | None = None
    seen: set[int] = set()
    while True:
        try:
            if newest is None:
                newest = await in_thread(head)
            elif not watched():
                newest = max(newest, await in_thread(head))  # nobody watches: keep up
            else:
                rows, ids = await in_thread(changes, max(0, newest - EVENT_LOOKBACK), set(seen))
                if ids:
                    newest = max(newest, max(ids))
                    seen.update(ids)
                    seen = {i for i in seen if i > newest - EVENT_LOOKBACK}
                if rows:
                    publish(rows)
        except Exception:  # noqa: BLE001 - a database hiccup must not end the feed
            log.warning("%s poll failed; retrying", what, exc_info=True)
            await asyncio.sleep(2.0)
        await asyncio.sleep(interval_s)
