"""The heatmap page in headless Chromium with every network request refused (a control room)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from geodispatch.analytics.heatmap import render_heatmap
from geodispatch.analytics.importer import ImportResult
from tests.analytics.conftest import SF_REGION

CHROMIUM = os.environ.get("GEODISPATCH_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update"]

pytestmark = pytest.mark.browser


@pytest.fixture()
def offline_page() -> Iterator[tuple[Any, list[str]]]:
    """A Chromium page whose every http(s) request is aborted; yields (page, refused URLs)."""
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    refused: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1200, "height": 800})

        def refuse(route: Any) -> None:
            refused.append(route.request.url)
            route.abort()

        context.route("http*://**/*", refuse)
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page, refused
        finally:
            context.close()
            browser.close()


def test_heatmap_draws_cells_and_tooltips_offline(
    db: Session, sf_imported: ImportResult, artifacts: Path,
    offline_page: tuple[Any, list[str]],
) -> None:
    """Leaflet runs from the page itself: cells drawn, tooltip numbers, legend, attribution."""
    page, refused = offline_page
    out = render_heatmap(session=db, metric="p90_response", res=8,
                         start=datetime.fromisoformat("2016-12-31T00:00:00Z"),
                         end=datetime.fromisoformat("2017-01-09T00:00:00Z"),
                         out=artifacts / "analytics_heatmap_browser.html", region=SF_REGION)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(out.as_uri())
    page.wait_for_function("typeof L !== 'undefined'")
    cells = page.locator("path.leaflet-interactive")
    assert cells.count() > 100
    assert "OpenStreetMap" in page.locator(".leaflet-control-attribution").inner_text()
    assert "90th percentile" in page.locator(".gd-legend").inner_text()
    box = cells.nth(cells.count() // 2).bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    tip = page.locator(".leaflet-tooltip")
    tip.wait_for()
    assert "p90 (m:s)" in tip.inner_text() and "incidents" in tip.inner_text()
    page.screenshot(path=str(artifacts / "analytics_heatmap_browser.png"))
    assert errors == []
    # Only map tiles may have been asked for (and were refused); never a script or stylesheet.
    assert all("tile.openstreetmap.org" in u for u in refused), refused
