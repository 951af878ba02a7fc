"""The analyst's heatmap page on the offline vector base map (street names from our /tiles)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from geodispatch.analytics.heatmap import heatmap_html
from geodispatch.analytics.importer import ImportResult
from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from geodispatch.tiles.build import build_tiles
from tests.analytics.conftest import SF_REGION
from tests.helpers import running_server
from tests.web.conftest import local_only_page

pytestmark = pytest.mark.browser

OSM = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "osm"
MISSION = (37.7560, -122.4150)  # inside the Mission/Bernal extract
WINDOW = {"start": datetime.fromisoformat("2016-12-31T00:00:00Z"),
          "end": datetime.fromisoformat("2017-01-09T00:00:00Z")}


@pytest.fixture(scope="module")
def sf_tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hm-tiles") / "sf.mbtiles"
    build_tiles(osm_file=OSM / "sf_mission_bernal_2014.osm", out=out)
    return out


@pytest.fixture()
def local_page() -> Iterator[tuple[Any, list[str]]]:
    """A Chromium page (its own, as test_heatmap_browser's) that may reach 127.0.0.1 only."""
    from playwright.sync_api import sync_playwright

    from tests.analytics.test_heatmap_browser import ARGS, CHROMIUM

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            with local_only_page(browser, width=1200, height=800, locale=None) as page_outside:
                yield page_outside
        finally:
            browser.close()


def test_heatmap_draws_on_the_vector_base_map(
    db: Session, sf_imported: ImportResult, settings: Settings, sf_tiles: Path,
    local_page: tuple[Any, list[str]], artifacts: Path,
) -> None:
    """With tiles built, the page inlines the renderer, paints street names under the cells and
    asks for no raster tile and nothing beyond 127.0.0.1."""
    page, outside = local_page
    s = settings.model_copy(update={"tiles_path": sf_tiles, "serve_ingest": False,
                                    "tile_url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png"})
    html = heatmap_html(session=db, metric="p90_response", res=8, region=SF_REGION,
                        settings=s, **WINDOW)
    assert "gdBaseMap(" in html and "protomapsL" in html
    with running_server(create_app(s)) as base:
        # the page as GET /api/analytics/heatmap serves it, from the server's own origin
        page.route(base + "/heatmap.html", lambda r: r.fulfill(body=html,
                                                              content_type="text/html"))
        page.goto(base + "/heatmap.html")
        page.wait_for_function("() => window.gdMap && window.gdMap.gdBase")
        assert page.evaluate("window.gdMap.gdBase.kind") == "vector"
        page.evaluate(f"void window.gdMap.setView([{MISSION[0]}, {MISSION[1]}], 16)")
        page.wait_for_function("() => window.gdMap.gdBase.drawnLabels.size >= 3")
        assert page.locator("path.leaflet-interactive").count() > 0
        page.screenshot(path=str(artifacts / "basemap-heatmap.png"))
    assert outside == []


def test_without_tiles_the_heatmap_keeps_the_raster_layer(
    db: Session, sf_imported: ImportResult, settings: Settings, tmp_path: Path,
) -> None:
    """No tiles built: the raster tile layer as before, no vector renderer inlined."""
    s = settings.model_copy(update={"tiles_path": tmp_path / "none.mbtiles",
                                    "tile_url": "https://tile.example/{z}/{x}/{y}.png"})
    html = heatmap_html(session=db, metric="p90_response", res=8, region=SF_REGION,
                        settings=s, **WINDOW)
    assert "gdBaseMap(" not in html and "https://tile.example/{z}/{x}/{y}.png" in html
