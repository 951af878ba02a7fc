"""The FastAPI app factory. Engines, the road graph, the live fleet and MQTT are created in the
lifespan and kept on ``app.state``; nothing is built at import time.

Domain routers live beside their domain (``geodispatch/<domain>/views.py``, each exposing
``router``); this module only assembles them.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from geodispatch import __version__
from geodispatch.api import errors
from geodispatch.db import app_engine, check_database, session_factory
from geodispatch.settings import Settings, get_settings

log = logging.getLogger(__name__)

ROUTER_MODULES = (
    "geodispatch.api.auth",
    "geodispatch.tracking.views",
    "geodispatch.routing.views",
    "geodispatch.zones.views",
    "geodispatch.incidents.views",
    "geodispatch.dispatch.views",
    "geodispatch.notify.views",
    "geodispatch.analytics.views",
    "geodispatch.api.live",
    "geodispatch.api.web",
)

# Extra start-up/shutdown steps registered by domains: (name, async start(app), async stop(app)).
Hook = Callable[[FastAPI], Awaitable[None]]
LIFESPAN_MODULES = (
    "geodispatch.routing.lifespan",
    "geodispatch.zones.lifespan",
    "geodispatch.tracking.lifespan",
    "geodispatch.dispatch.lifespan",
    "geodispatch.notify.lifespan",
    "geodispatch.api.live_lifespan",
)


def _optional_modules(names: tuple[str, ...]) -> list[object]:
    return [importlib.import_module(n) for n in names if importlib.util.find_spec(n) is not None]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    hooks = _optional_modules(LIFESPAN_MODULES)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = app_engine(settings)
        check_database(engine)
        app.state.engine = engine
        app.state.session_factory = session_factory(engine)
        started = []
        try:
            for mod in hooks:
                await mod.start(app)  # type: ignore[attr-defined]
                started.append(mod)
            yield
        finally:
            for mod in reversed(started):
                try:
                    await mod.stop(app)  # type: ignore[attr-defined]
                except Exception:  # noqa: BLE001 - shutdown must continue
                    log.exception("error stopping %s", getattr(mod, "__name__", mod))
            engine.dispose()

    app = FastAPI(
        title="geodispatch",
        version=__version__,
        description="Dispatch and unit tracking for police emergency call centres.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    errors.install(app)
    for mod in _optional_modules(ROUTER_MODULES):
        app.include_router(mod.router)  # type: ignore[attr-defined]
    return app
