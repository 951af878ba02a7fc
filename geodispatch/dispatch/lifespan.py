"""Dispatch start-up: the MQTT client for crew terminals, GPS arrival detection, assignment
delivery.

The loops run their database work in a worker thread: arrival detection a pass in one
transaction, delivery one short transaction per recorded send (no incident row stays locked
while the pass waits on the broker or goes on to other assignments). When the
broker is down at start-up, the delivery loop keeps trying to connect the crew-terminal client
(paho reconnects by itself once connected), and publishes every assignment the broker has not
confirmed yet (:func:`geodispatch.dispatch.publish.deliver_pending`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from geodispatch.dispatch.arrivals import detect_arrivals
from geodispatch.dispatch.publish import Inflight, deliver_pending, publish_after_commit
from geodispatch.tracking.mqtt import make_client

log = logging.getLogger(__name__)


async def _loop(app: FastAPI, name: str, interval: float,
                work: Callable[[sessionmaker[Session]], object]) -> None:
    """Run ``work`` every ``interval`` seconds in a worker thread; it owns its transactions."""
    factory = app.state.session_factory

    def once() -> None:
        work(factory)

    while True:
        running = asyncio.ensure_future(asyncio.to_thread(once))
        try:
            await asyncio.shield(running)
        except asyncio.CancelledError:
            # Shutdown: let the pass in its worker thread end before the engine is disposed
            # (else its connection outlives the pool, unclosed).
            await asyncio.wait([running], timeout=10)
            raise
        except Exception:  # noqa: BLE001 - a failed pass must not stop the loop
            log.exception("%s pass failed", name)
        await asyncio.sleep(interval)


def _connect(app: FastAPI, timeout_s: float) -> None:
    """Give the app a crew-terminal MQTT client if it has none (broker down at start-up)."""
    if getattr(app.state, "mqtt", None) is not None:
        return

    settings = app.state.settings
    try:
        client = make_client(settings, f"{settings.mqtt_client_id}-dispatch-{os.getpid()}",
                             clean_start=True, timeout_s=timeout_s)
    except Exception as exc:  # noqa: BLE001 - dispatch works without terminals
        if not getattr(app.state, "dispatch_mqtt_warned", False):
            log.warning("no MQTT for crew terminals (%s); retrying every %.0f s", exc,
                        settings.assignment_retry_s)
            app.state.dispatch_mqtt_warned = True
        return
    app.state.mqtt = client
    app.state.dispatch_own_mqtt = client
    log.info("MQTT client for crew terminals connected")


async def start(app: FastAPI) -> None:
    settings = app.state.settings
    app.state.dispatch_own_mqtt = None
    app.state.mqtt = getattr(app.state, "mqtt", None)  # None until the broker answers
    app.state.delivery_inflight = Inflight()
    await asyncio.to_thread(_connect, app, 3.0)

    def arrivals(factory: sessionmaker[Session]) -> None:
        with factory() as session, session.begin():
            publish_after_commit(session, mqtt=app.state.mqtt,
                                 fleet=getattr(app.state, "fleet", None),
                                 inflight=app.state.delivery_inflight,
                                 terminals=getattr(app.state, "crew_hub", None))
            detect_arrivals(session=session, settings=settings)

    def delivery(factory: sessionmaker[Session]) -> None:
        _connect(app, 1.0)
        deliver_pending(factory=factory, mqtt=app.state.mqtt,
                        inflight=app.state.delivery_inflight,
                        ack_timeout_s=settings.assignment_ack_timeout_s,
                        retry_s=settings.assignment_retry_s)

    app.state.dispatch_tasks = [
        asyncio.create_task(_loop(app, "arrival detection", settings.monitor_interval_s,
                                  arrivals)),
        asyncio.create_task(_loop(app, "assignment delivery", settings.assignment_retry_s,
                                  delivery)),
    ]


async def stop(app: FastAPI) -> None:
    for t in getattr(app.state, "dispatch_tasks", []):
        t.cancel()
    for t in getattr(app.state, "dispatch_tasks", []):
        with contextlib.suppress(asyncio.CancelledError):
            await t
    client = getattr(app.state, "dispatch_own_mqtt", None)
    if client is not None:
        client.loop_stop()
        client.disconnect()
        app.state.mqtt = None
