"""Load the road graph once at start-up and share it on ``app.state.router`` (None if not built)."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from geodispatch.routing.engine import load_router


async def start(app: FastAPI) -> None:
    app.state.router = await asyncio.to_thread(load_router, app.state.settings)


async def stop(app: FastAPI) -> None:
    app.state.router = None
