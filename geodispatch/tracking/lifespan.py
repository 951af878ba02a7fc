"""Tracking start-up: the live fleet on ``app.state.fleet``, its 1 s refresh, in-process ingest.

``start`` loads the fleet from the database and starts a task that refreshes it every second (units
and positions changed by other processes). When ``settings.serve_ingest`` is true it also runs an
MQTT ingest worker in a background thread feeding the same fleet, so the map moves as soon as a
batch commits, and a watchdog task that starts a new worker if that thread ever ends while the app
is running (logged at ERROR). It also runs the position partition job
(``geodispatch.tracking.scheduled``). ``stop`` ends all of them and waits for the worker's last
batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from fastapi import FastAPI

from geodispatch.settings import Settings
from geodispatch.tracking.fleet import LiveFleet
from geodispatch.tracking.scheduled import PartitionJob
from geodispatch.tracking.worker import IngestWorker

log = logging.getLogger(__name__)

REFRESH_S = 1.0
WATCHDOG_S = 2.0


async def _refresh_loop(app: FastAPI, fleet: LiveFleet) -> None:
    factory = app.state.session_factory

    def refresh() -> None:
        with factory() as session:
            fleet.refresh(session)

    while True:
        await asyncio.sleep(REFRESH_S)
        running = asyncio.ensure_future(asyncio.to_thread(refresh))
        try:
            await asyncio.shield(running)
        except asyncio.CancelledError:
            # Shutdown: let the refresh in its worker thread end before the engine is disposed
            # (else its connection outlives the pool, unclosed).
            await asyncio.wait([running], timeout=10)
            raise
        except Exception:  # noqa: BLE001 - a database blip must not end the refresh task
            log.warning("fleet refresh failed; retrying", exc_info=True)


async def start(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    fleet = LiveFleet(settings)
    factory = app.state.session_factory

    def load() -> None:
        with factory() as session:
            fleet.refresh(session)

    await asyncio.to_thread(load)
    app.state.fleet = fleet
    app.state.tracking_refresh = asyncio.create_task(_refresh_loop(app, fleet))
    job_stop = threading.Event()
    job = PartitionJob(factory, settings)
    job_thread = threading.Thread(target=job.run, args=(job_stop,), name="partition-job",
                                  daemon=True)
    job_thread.start()
    app.state.tracking_partition_job = (job, job_thread, job_stop)
    app.state.tracking_ingest = None
    app.state.tracking_watchdog = None
    if settings.serve_ingest:
        app.state.tracking_ingest = _start_worker(app, fleet)
        app.state.tracking_watchdog = asyncio.create_task(_watchdog(app, fleet))


def _start_worker(app: FastAPI, fleet: LiveFleet) -> tuple[object, threading.Thread,
                                                           threading.Event]:
    settings: Settings = app.state.settings
    stop = threading.Event()
    worker = IngestWorker(
        settings, client_id=f"{settings.mqtt_client_id}-serve", fleet=fleet,
        engine=app.state.engine, status_handler=app.state.crew_status_handler,
    )
    thread = threading.Thread(target=worker.run, args=(stop,), name="ingest", daemon=True)
    thread.start()
    return worker, thread, stop


async def _watchdog(app: FastAPI, fleet: LiveFleet) -> None:
    """Restart the in-process ingest worker if its thread ends while the app runs."""
    delay = WATCHDOG_S
    while True:
        await asyncio.sleep(delay)
        ingest = app.state.tracking_ingest
        if ingest is None:
            continue
        _worker, thread, stop_event = ingest
        if thread.is_alive() or stop_event.is_set():
            delay = WATCHDOG_S
            continue
        log.error("the in-process ingest worker ended unexpectedly; starting a new one")
        try:
            app.state.tracking_ingest = _start_worker(app, fleet)
        except Exception:  # noqa: BLE001 - try again later
            log.exception("could not start a new ingest worker")
        delay = min(delay * 2, 30.0)


async def stop(app: FastAPI) -> None:
    task: asyncio.Task[None] | None = getattr(app.state, "tracking_refresh", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    job = getattr(app.state, "tracking_partition_job", None)
    if job is not None:
        job[2].set()
    watchdog: asyncio.Task[None] | None = getattr(app.state, "tracking_watchdog", None)
    if watchdog is not None:
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog
    ingest = getattr(app.state, "tracking_ingest", None)
    if ingest is not None:
        _worker, thread, stop_event = ingest
        stop_event.set()
        await asyncio.to_thread(thread.join, 15.0)
