"""Beside the API: the SIP edge's own database connections, the calls' live feed (when the live
hub runs) and the Asterisk ARI adapter (when ``GEODISPATCH_CALLS_ARI_URL`` is set)."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import FastAPI

from geodispatch.calls.ari import AriAdapter
from geodispatch.calls.feed import poll_calls
from geodispatch.db import make_engine, session_factory


async def start(app: FastAPI) -> None:
    app.state.ari = None
    settings = app.state.settings
    # The edge's reports (a call's first ring above all) get connections of their own: a burst
    # of console requests or AML posts holding the shared pool must not keep a ring waiting.
    app.state.calls_edge_engine = make_engine(
        settings.database_url, pool_size=settings.calls_edge_pool_size,
        pool_timeout=settings.db_pool_timeout_s)
    app.state.calls_edge_factory = session_factory(app.state.calls_edge_engine)
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
    edge = getattr(app.state, "calls_edge_engine", None)
    if edge is not None:
        edge.dispose()
    if getattr(app.state, "ari", None) is None:
        return
    task, stop_event = app.state.ari_task
    stop_event.set()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
