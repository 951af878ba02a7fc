"""The analyst's page of the console in Chromium: heatmap cells on the map, the per-zone table
with the API's figures, a filter change, the CSV export and the commander's report."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geodispatch.analytics.intervals import refresh_intervals
from geodispatch.api.app import create_app
from geodispatch.geo import LatLng
from geodispatch.settings import Settings
from geodispatch.users.service import upsert_user
from tests.analytics.factories import make_assignment, make_incident
from tests.helpers import login, running_server

pytestmark = pytest.mark.browser

T0 = datetime(2031, 5, 6, 6, 0, tzinfo=UTC)
N = 60
PERIOD = {"from": "2031-04-07T00:00:00.000Z", "to": "2031-05-07T00:00:00.000Z"}
"""The page's default: the 30 local (here UTC) days up to the newest incident, inclusive."""


@pytest.fixture(scope="module")
def region(admin_engine: Engine) -> Iterator[dict[str, Any]]:
    """A region of its own: two sectors and 60 incidents with intervals; closed/deleted after."""
    code = f"W{uuid.uuid4().hex[:7].upper()}"
    with Session(admin_engine) as s, s.begin():
        sectors = []
        for k in range(2):
            sectors.append(s.execute(text(
                "INSERT INTO zones (code, name, level, region, res, cells) VALUES "
                "(:c, :n, 'sector', :r, 9, '{}') RETURNING id"),
                {"c": f"{code}-S{k + 1}", "n": f"Sector {k + 1}", "r": code}).scalar_one())
        for k in range(N):
            at = LatLng(50.45 + 0.003 * (k % 6), 30.52 + 0.003 * (k // 6))
            inc = make_incident(s, received=T0 + timedelta(minutes=7 * k), at=at, region=code,
                                category="theft" if k % 2 else "assault",
                                priority=1 + k % 3)
            inc.sector_id = sectors[0] if k < 36 else sectors[1]
            s.flush()
            make_assignment(s, inc, dispatched_after_s=60 + k, en_route_after_s=90 + 2 * k,
                            on_scene_after_s=300 + 20 * k, cleared_after_s=3000)
        refresh_intervals(session=s, since=T0)
    name = f"analyst_{uuid.uuid4().hex[:8]}"
    with Session(admin_engine) as s, s.begin():
        upsert_user(session=s, username=name, password="pw-123456", role="analyst", region=code)
        upsert_user(session=s, username="sup" + name, password="pw-123456", role="supervisor",
                    region=code)
    yield {"code": code, "user": name, "supervisor": "sup" + name, "password": "pw-123456",
           "sectors": sectors}
    with Session(admin_engine) as s, s.begin():
        ids = "SELECT id FROM incidents WHERE region = :r"
        s.execute(text("DELETE FROM response_sketches WHERE region = :r"), {"r": code})
        s.execute(text(f"DELETE FROM response_intervals WHERE incident_id IN ({ids})"), {"r": code})
        s.execute(text("UPDATE zones SET valid_to = now() WHERE region = :r"), {"r": code})


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[str]:
    app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))
    with running_server(app) as base:
        yield base


def _mmss(s: float | None) -> str:
    if s is None:
        return "–"
    r = round(s)
    return f"{r // 60}:{r % 60:02d}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _zone_rows(page: Any) -> list[list[str]]:
    return [[c.strip() for c in r] for r in page.eval_on_selector_all(
        "[data-testid=zone-row]", "rows => rows.map(r => Array.from(r.cells).slice(1, 5)"
        ".map(c => c.textContent))")]


def test_analyst_heatmap_table_filter_and_csv(
    chromium: Any, server: str, region: dict[str, Any], artifacts: Path
) -> None:
    """An analyst lands on the heatmap: cells, zone figures equal to the API's, filters, CSV."""
    h = login(server, region["user"], region["password"])
    ctx = chromium.new_context(viewport={"width": 1400, "height": 900}, timezone_id="UTC",
                               accept_downloads=True)
    page = ctx.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script("localStorage.setItem('gd.lang', 'en')")
    try:
        page.goto(server + "/")
        page.fill("[data-testid=login-username]", region["user"])
        page.fill("[data-testid=login-password]", region["password"])
        page.click("[data-testid=login-submit]")
        page.wait_for_selector("#tab-analytics:not([hidden])")
        assert page.locator("[data-testid=conn]").is_hidden()  # no "live map not available"
        assert page.locator("[data-testid=tab-queue]").is_hidden()
        assert page.input_value("[data-testid=an-from]") == "2031-04-07"
        assert page.input_value("[data-testid=an-to]") == "2031-05-06"

        q = {"res": "8", "interval": "total_response_s", **PERIOD}
        fc = httpx.get(f"{server}/api/analytics/cells.geojson", params=q, headers=h).json()
        assert len(fc["features"]) >= 3
        page.wait_for_function(f"document.querySelectorAll('path.gd-heat-cell').length === "
                               f"{len(fc['features'])}")
        status = page.inner_text("[data-testid=an-status]")
        assert f"{len(fc['features'])} cells · {N} incidents" in status

        zones = httpx.get(f"{server}/api/analytics/summary", headers=h,
                          params={**q, "by": "sector_id"}).json()
        assert [z["sector_id"] for z in zones] == region["sectors"]
        expected = [[str(z["count"]), _mmss(z["median_s"]), _mmss(z["p90_s"]),
                     _pct(z["within_target"])] for z in zones]
        assert _zone_rows(page) == expected
        names = page.locator("[data-testid=zone-name]").all_inner_texts()
        assert names[0].startswith(f"{region['code']}-S1") and "Sector 1" in names[0]
        assert page.locator("[data-testid=an-hourly] [data-testid=an-bar]").count() == 24
        assert page.locator("[data-testid=an-weekly] [data-testid=an-bar]").count() == 7
        page.screenshot(path=str(artifacts / "analyst-heatmap.png"))

        # A filter: thefts of turnout, median; the map and the table follow.
        page.select_option("[data-testid=an-interval]", "turnout_s")
        page.select_option("[data-testid=an-stat]", "median_s")
        page.select_option("[data-testid=an-category]", "theft")
        q2 = {**q, "interval": "turnout_s", "category": "theft"}
        fc2 = httpx.get(f"{server}/api/analytics/cells.geojson", params=q2, headers=h).json()
        page.wait_for_function("document.querySelector('[data-testid=an-status]').textContent"
                               ".includes('· 30 incidents')")
        assert page.locator("path.gd-heat-cell").count() == len(fc2["features"])
        zones2 = httpx.get(f"{server}/api/analytics/summary", headers=h,
                           params={**q2, "by": "sector_id"}).json()
        assert sum(z["count"] for z in zones2) == N // 2
        assert _zone_rows(page) == [[str(z["count"]), _mmss(z["median_s"]), _mmss(z["p90_s"]),
                                     _pct(z["within_target"])] for z in zones2]
        assert "Turnout · Median" in page.inner_text("[data-testid=an-legend]")

        with page.expect_download() as dl:
            page.click("[data-testid=an-export-zones]")
        download = dl.value
        assert download.suggested_filename.startswith("zones_turnout_s_h3r8_theft")
        rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text("utf-8"))))
        assert [int(r["sector_id"]) for r in rows] == [z["sector_id"] for z in zones2]
        for r, z in zip(rows, zones2, strict=True):
            assert int(r["count"]) == z["count"] and float(r["median_s"]) == z["median_s"]
            assert r["code"].startswith(region["code"])
        with page.expect_download() as dl:
            page.click("[data-testid=an-export-cells-csv]")
        cells = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text("utf-8"))))
        assert {c["cell"]: int(c["count"]) for c in cells} == {
            f["properties"]["cell"]: f["properties"]["count"] for f in fc2["features"]}

        # The commander's report of the first zone, for the chosen period.
        with page.expect_popup() as pop:
            page.locator("[data-testid=zone-report]").first.click()
        report = pop.value
        report.wait_for_url("blob:**")  # opened blank at the click, then the fetched page
        report.wait_for_load_state()
        body = report.inner_text("body")
        assert f"{region['code']}-S1" in body and "Sector 1" in body
        assert errors == []
    finally:
        ctx.close()


def test_supervisor_chooses_analytics_in_ukrainian(
    chromium: Any, server: str, region: dict[str, Any], artifacts: Path
) -> None:
    """A supervisor keeps the live console and reaches the heatmap from its (Ukrainian) tab."""
    ctx = chromium.new_context(viewport={"width": 1400, "height": 900}, timezone_id="UTC")
    page = ctx.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script("localStorage.setItem('gd.lang', 'uk')")
    try:
        page.goto(server + "/")
        page.fill("[data-testid=login-username]", region["supervisor"])
        page.fill("[data-testid=login-password]", region["password"])
        page.click("[data-testid=login-submit]")
        tab = page.locator("[data-testid=tab-analytics]")
        tab.wait_for()
        assert tab.inner_text() == "Аналітика"
        assert page.locator("[data-testid=tab-queue]").is_visible()
        assert page.locator("path.gd-heat-cell").count() == 0
        page.wait_for_timeout(300)  # the other screens add their tabs on gd:started too
        fits = page.eval_on_selector(".side .tabs", "n => [n.scrollWidth, n.clientWidth]")
        page.screenshot(path=str(artifacts / "analyst-supervisor-tabs.png"))
        assert fits[0] <= fits[1], f"the side bar's tabs overflow: {fits}"
        tab.click()
        page.wait_for_function("document.querySelectorAll('path.gd-heat-cell').length > 0")
        assert "Загальний час реагування · 90-й процентиль" in page.inner_text(
            "[data-testid=an-legend]")
        assert page.locator("[data-testid=zone-row]").count() == 2
        page.click("[data-testid=tab-queue]")  # the dispatcher's map is not covered by cells
        page.wait_for_function("document.querySelectorAll('path.gd-heat-cell').length === 0")
        page.click("[data-testid=lang-toggle]")
        tab.click()
        page.wait_for_function("document.querySelectorAll('path.gd-heat-cell').length > 0")
        assert "Total response · 90th percentile" in page.inner_text("[data-testid=an-legend]")
        assert errors == []
    finally:
        ctx.close()
