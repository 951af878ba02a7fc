"""Crew start-up: the hub of open crew streams (``app.state.crew_hub``), its refresher and its
token watcher (see :mod:`geodispatch.crew.stream`)."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import FastAPI

from geodispatch.crew.stream import CrewHub


async def start(app: FastAPI) -> None:
    hub = CrewHub(app.state.session_factory)
    app.state.crew_hub = hub
    app.state.crew_tasks = [asyncio.create_task(hub.run()),
                            asyncio.create_task(hub.watch_tokens())]


async def stop(app: FastAPI) -> None:
    tasks = getattr(app.state, "crew_tasks", [])
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await t
    hub = getattr(app.state, "crew_hub", None)
    if hub is not None:
        await asyncio.to_thread(hub.drain, 5.0)
    app.state.crew_hub = None
