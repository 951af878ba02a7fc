"""Zones start-up: the in-memory zone index on ``app.state.zone_index``."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from geodispatch.zones.index import ZoneIndex


async def start(app: FastAPI) -> None:
    factory = app.state.session_factory
    settings = app.state.settings

    def load() -> ZoneIndex:
        with factory() as session:
            return ZoneIndex.load(session, settings)

    app.state.zone_index = await asyncio.to_thread(load)


async def stop(app: FastAPI) -> None:
    app.state.zone_index = None
