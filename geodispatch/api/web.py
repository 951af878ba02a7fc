"""The dispatcher's web map: the static single-page console and the few endpoints only it needs.

The page (``static/index.html``, plain JavaScript, no build step) logs in through
``/api/auth/token``, draws crews and incidents on Leaflet from ``/api/live`` and calls the domain
endpoints for recommendations and assignments. Leaflet itself is fetched at setup time by
``scripts/fetch_assets.sh`` into ``static/vendor/`` (no CDN at run time).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict

from geodispatch.api.deps import PrincipalDep, SessionDep, SettingsDep
from geodispatch.api.places import map_bounds

STATIC_DIR = Path(__file__).resolve().parent / "static"

router = APIRouter(tags=["web"])


class WebConfig(BaseModel):
    """What the map needs to start: tiles, attribution, the area to show, live-feed tuning."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "tile_url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        "tile_attribution": "&copy; OpenStreetMap contributors",
        "bounds": [39.27, -76.64, 39.31, -76.58], "stale_after_s": 120.0,
        "live_max_rate_hz": 4.0, "vendor_ok": True,
    }]})

    tile_url: str
    tile_attribution: str
    bounds: tuple[float, float, float, float] | None
    stale_after_s: float
    live_max_rate_hz: float
    vendor_ok: bool


def _index() -> Response:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html",
                        headers={"Cache-Control": "no-cache"})


@router.get("/", include_in_schema=False)
def index() -> Response:
    return _index()


@router.get("/map", include_in_schema=False)
def map_page() -> Response:
    return _index()


@router.get("/api/web/config", response_model=WebConfig, summary="Map configuration")
def web_config(principal: PrincipalDep, session: SessionDep, settings: SettingsDep) -> WebConfig:
    """Tile URL (empty = offline map drawn from our roads and zones), attribution and extent."""
    return WebConfig(
        tile_url=settings.tile_url, tile_attribution=settings.tile_attribution,
        bounds=map_bounds(session=session, region=principal.region),
        stale_after_s=settings.stale_after_s, live_max_rate_hz=settings.live_max_rate_hz,
        vendor_ok=(STATIC_DIR / "vendor" / "leaflet" / "leaflet.js").exists(),
    )


def mount(app: FastAPI) -> None:
    """Serve ``static/`` (the page's JS, CSS and the vendored Leaflet) under ``/static``."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
