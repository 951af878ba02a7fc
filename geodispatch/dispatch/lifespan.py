"""Dispatch start-up: the MQTT client for crew terminals, GPS arrival detection.

Both loops run their database work in a worker thread, each pass in its own transaction.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

log = logging.getLogger(__name__)


async def _loop(app: FastAPI, name: str, interval: float, work: Callable[[Any], object]) -> None:
    factory = app.state.session_factory

    def once() -> None:
        with factory() as session, session.begin():
            work(session)

    while True:
        try:
            await asyncio.to_thread(once)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a failed pass must not stop the loop
            log.exception("%s pass failed", name)
        await asyncio.sleep(interval)


async def start(app: FastAPI) -> None:
    from geodispatch.dispatch.arrivals import detect_arrivals
    from geodispatch.dispatch.publish import publish_after_commit

    settings = app.state.settings
    app.state.dispatch_own_mqtt = None
    if getattr(app.state, "mqtt", None) is None:
        try:
            from geodispatch.tracking.mqtt import make_client

            client = await asyncio.to_thread(
                make_client, settings, f"{settings.mqtt_client_id}-dispatch-{os.getpid()}",
                clean_start=True, timeout_s=3.0)
            app.state.mqtt = client
            app.state.dispatch_own_mqtt = client
        except Exception as exc:  # noqa: BLE001 - dispatch works without terminals
            log.warning("no MQTT for crew terminals (%s); assignments only on the map", exc)
            app.state.mqtt = None

    def arrivals(session: Any) -> None:
        publish_after_commit(session, mqtt=app.state.mqtt,
                             fleet=getattr(app.state, "fleet", None))
        detect_arrivals(session=session, settings=settings)

    app.state.dispatch_tasks = [
        asyncio.create_task(_loop(app, "arrival detection", settings.monitor_interval_s,
                                  arrivals)),
    ]


async def stop(app: FastAPI) -> None:
    for t in getattr(app.state, "dispatch_tasks", []):
        t.cancel()
    for t in getattr(app.state, "dispatch_tasks", []):
        try:
            await t
        except asyncio.CancelledError:
            pass
    client = getattr(app.state, "dispatch_own_mqtt", None)
    if client is not None:
        client.loop_stop()
        client.disconnect()
        app.state.mqtt = None
