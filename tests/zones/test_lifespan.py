"""The zones lifespan puts a loaded ZoneIndex on app.state and removes it on stop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine

from geodispatch.db import session_factory
from geodispatch.settings import Settings
from geodispatch.zones import lifespan
from geodispatch.zones.index import ZoneIndex


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` on a fresh loop in another thread (an earlier test may own this thread's loop)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


def test_start_and_stop(engine: Engine, settings: Settings) -> None:
    """start loads the index from the database; stop clears it."""
    app = FastAPI()
    app.state.settings = settings
    app.state.session_factory = session_factory(engine)
    _run(lifespan.start(app))
    assert isinstance(app.state.zone_index, ZoneIndex)
    assert app.state.zone_index.res == settings.h3_zone_res
    _run(lifespan.stop(app))
    assert app.state.zone_index is None
