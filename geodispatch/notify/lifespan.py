"""Runs the SMS outbox worker in a thread beside the API."""

from __future__ import annotations

import asyncio
import threading

from fastapi import FastAPI

from geodispatch.notify.worker import run_worker


async def start(app: FastAPI) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=run_worker, name="sms-worker", daemon=True,
                              args=(app.state.session_factory, app.state.settings, stop),
                              kwargs={"record": app.state.sms_outcome_recorder})
    thread.start()
    app.state.sms_worker = (thread, stop)


async def stop(app: FastAPI) -> None:
    thread, stop_event = app.state.sms_worker
    stop_event.set()
    await asyncio.to_thread(thread.join, 10)
