"""Load the road graph once at start-up and share it on ``app.state.router`` (None if not built)."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from geodispatch.routing.engine import Router, load_router
from geodispatch.settings import Settings


def _load(settings: Settings) -> Router | None:
    router = load_router(settings)
    if router is not None:
        router.warm()
    return router


async def start(app: FastAPI) -> None:
    app.state.router = await asyncio.to_thread(_load, app.state.settings)


async def stop(app: FastAPI) -> None:
    app.state.router = None
