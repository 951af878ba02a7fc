"""Start and stop the live feed: subscribe the hub to the fleet, run fan-out and incident polls."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from geodispatch.api.livefeed import LiveHub, cancel, poll_incidents

log = logging.getLogger(__name__)


async def start(app: FastAPI) -> None:
    settings = app.state.settings
    hub = LiveHub(max_rate_hz=settings.live_max_rate_hz)
    app.state.live_hub = hub
    fleet = getattr(app.state, "fleet", None)
    app.state.live_unsubscribe = None
    if fleet is not None:
        app.state.live_unsubscribe = fleet.subscribe(hub.on_fleet)
    else:
        log.warning("no live fleet on app.state: the live map will show incidents only")
    app.state.live_tasks = [
        asyncio.create_task(hub.run(), name="live-fanout"),
        asyncio.create_task(
            poll_incidents(hub, app.state.session_factory, settings.live_incident_poll_s),
            name="live-incidents",
        ),
    ]


async def stop(app: FastAPI) -> None:
    hub: LiveHub | None = getattr(app.state, "live_hub", None)
    unsubscribe = getattr(app.state, "live_unsubscribe", None)
    if callable(unsubscribe):
        unsubscribe()
    for task in getattr(app.state, "live_tasks", []):
        await cancel(task)
    if hub is not None:
        for client in list(hub.clients):
            hub.remove(client)
