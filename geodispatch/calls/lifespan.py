"""Runs the Asterisk ARI adapter beside the API when ``GEODISPATCH_CALLS_ARI_URL`` is set."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import FastAPI

from geodispatch.calls.ari import AriAdapter


async def start(app: FastAPI) -> None:
    app.state.ari = None
    settings = app.state.settings
    if not settings.calls_ari_url:
        return
    adapter = AriAdapter(settings=settings, factory=app.state.session_factory)
    stop = asyncio.Event()
    task = asyncio.create_task(adapter.run(stop), name="ari-adapter")
    app.state.ari = adapter
    app.state.ari_task = (task, stop)


async def stop(app: FastAPI) -> None:
    if getattr(app.state, "ari", None) is None:
        return
    task, stop_event = app.state.ari_task
    stop_event.set()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
