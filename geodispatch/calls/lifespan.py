"""Beside the API: the calls' live feed (when the live hub runs) and the Asterisk ARI adapter
(when ``GEODISPATCH_CALLS_ARI_URL`` is set)."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import FastAPI

from geodispatch.calls.ari import AriAdapter
from geodispatch.calls.feed import poll_calls


async def start(app: FastAPI) -> None:
    app.state.ari = None
    settings = app.state.settings
    hub = getattr(app.state, "live_hub", None)
    app.state.calls_feed = None if hub is None else asyncio.create_task(
        poll_calls(hub, app.state.session_factory, settings.calls_feed_poll_s),
        name="calls-feed")
    if not settings.calls_ari_url:
        return
    adapter = AriAdapter(settings=settings, factory=app.state.session_factory)
    stop = asyncio.Event()
    task = asyncio.create_task(adapter.run(stop), name="ari-adapter")
    app.state.ari = adapter
    app.state.ari_task = (task, stop)


async def stop(app: FastAPI) -> None:
    feed = getattr(app.state, "calls_feed", None)
    if feed is not None:
        feed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feed
    if getattr(app.state, "ari", None) is None:
        return
    task, stop_event = app.state.ari_task
    stop_event.set()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
