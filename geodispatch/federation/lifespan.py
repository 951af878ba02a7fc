"""Federation start-up: the EIDO notifier (every centre) and, when ``federation_subscribe`` is
set, the national subscriber following every registered regional centre."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI

from geodispatch.federation.conveyance import Signer
from geodispatch.federation.notifier import Notifier
from geodispatch.federation.schema import warm
from geodispatch.federation.subscriber import follow_all
from geodispatch.ledger.signing import SigningKeyError, load_private_key, load_public_key

log = logging.getLogger(__name__)


async def start(app: FastAPI) -> None:
    settings = app.state.settings
    app.state.eido_notifier = None
    app.state.federation_tasks = []
    try:
        signer = Signer(load_private_key(settings.resolved_log_signing_key))
        keys = [load_public_key(p) for p in settings.federation_subscriber_keys]
    except SigningKeyError as exc:
        log.warning("EIDO feed off: %s", exc)
        return
    app.state.eido_notifier = Notifier(app.state.session_factory, settings, signer, keys)
    app.state.eido_signer = signer
    if settings.federation_subscribe:
        warm(settings.standards_dir)  # the compiled EIDO validator, built in a child process
        app.state.federation_tasks.append(asyncio.create_task(
            follow_all(settings, app.state.session_factory, signer)))


async def stop(app: FastAPI) -> None:
    for task in getattr(app.state, "federation_tasks", []):
        task.cancel()
    for task in getattr(app.state, "federation_tasks", []):
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
