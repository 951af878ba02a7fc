"""Start-up puts one shared, warmed Router on ``app.state.router`` (None before any import)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import FastAPI

from geodispatch.routing import lifespan
from geodispatch.routing.engine import load_router
from geodispatch.routing.graph import RoadGraph
from geodispatch.settings import Settings


def test_lifespan_shares_the_process_router(baltimore: RoadGraph, tmp_path: Path,
                                            settings: Settings) -> None:
    """The app's router is the same object load_router gives the recommender and simulator."""
    app = FastAPI()
    app.state.settings = settings.model_copy(update={"graph_path": tmp_path / "graph.npz"})
    asyncio.run(lifespan.start(app))
    assert app.state.router is None
    baltimore.save(tmp_path / "graph.npz")
    asyncio.run(lifespan.start(app))
    assert app.state.router is load_router(app.state.settings)
    asyncio.run(lifespan.stop(app))
    assert app.state.router is None
