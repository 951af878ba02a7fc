"""The crew app's picture for the README (docs/screenshots/crew-app.png), taken from the real
app: a phone-sized Chromium signed in as a crew on the Baltimore road graph and vector tiles,
with a real assignment (two crews, notes, address) and its road route from the crew's emulated
position. The test checks what the picture must show; it writes test-artifacts/crew-app.png,
and docs/screenshots/crew-app.png as well when GEODISPATCH_SCREENSHOTS=docs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from geodispatch.api.app import create_app
from geodispatch.routing.importer import import_osm_file
from geodispatch.settings import Settings
from geodispatch.tiles.build import build_tiles
from tests.api.conftest import Account
from tests.helpers import login, running_server
from tests.web.test_crew_app import new_incident, phone, send, sign_in

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
OSM = ROOT.parent / "shared" / "data" / "osm" / "baltimore_downtown_2015.osm.pbf"
CREW_AT = (39.2850, -76.6010)  # Harbor East / Little Italy (moved onto the nearest crossing)
SCENE = (39.2904, -76.6122)    # the call (tests.web.test_crew_app.SCENE)


def _on_road(graph: Any, lat: float, lng: float) -> tuple[float, float]:
    """The graph's intersection nearest to a point (so both ends of the drive are on roads)."""
    import numpy as np

    k = int(np.argmin((graph.node_lat - lat) ** 2 + (graph.node_lng - lng) ** 2))
    return float(graph.node_lat[k]), float(graph.node_lng[k])


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The downtown Baltimore road graph and vector tiles, built from the shared extract."""
    global CREW_AT
    d = tmp_path_factory.mktemp("crew-shot")
    graph = d / "graph.npz"
    g = import_osm_file(OSM, progress=False)
    g.save(graph)
    CREW_AT = _on_road(g, *CREW_AT)
    tiles = d / "baltimore.mbtiles"
    build_tiles(osm_file=OSM, out=tiles)
    return graph, tiles


@pytest.fixture()
def server(settings: Settings, city: tuple[Path, Path]) -> Iterator[str]:
    graph, tiles = city
    app = create_app(settings.model_copy(update={
        "serve_ingest": False, "tile_url": "", "graph_path": graph, "tiles_path": tiles}))
    with running_server(app) as base:
        yield base


def test_crew_app_screenshot(chromium: Any, server: str, crews: list[dict[str, Any]],
                             accounts: dict[str, Account], artifacts: Path) -> None:
    """The crew's phone shows the call (reference, priority, address, notes, both crews, who
    leads) and the road route with its ETA on the street map; that screen is the picture."""
    a, b = crews
    h = login(server, accounts["dispatcher"].username, accounts["dispatcher"].password)
    context, page = phone(chromium, CREW_AT)
    try:
        sign_in(page, server, a)
        page.wait_for_selector("[data-testid=crew-gps]:has-text('39.28')")
        inc = new_incident(server, h, "Caller waits at the gate of the marina; a dog in the yard")
        send(server, h, inc["id"], b["id"])
        send(server, h, inc["id"], a["id"])
        page.wait_for_selector(f"[data-testid=crew-reference]:text-is('{inc['reference']}')")
        page.click("[data-testid=btn-acknowledged]")
        page.wait_for_selector("[data-testid=crew-queued]:text-is('0')")
        page.wait_for_selector("[data-testid=crew-route][data-method=road]", timeout=20_000)
        eta_s = int(page.get_attribute("[data-testid=crew-route]", "data-eta-s") or "0")
        assert 30 < eta_s < 900, eta_s  # a drive across downtown, by the road router
        route = httpx.get(f"{server}/api/crew/route", params={
            "lat": CREW_AT[0], "lng": CREW_AT[1]}, headers={
            "X-Device-Id": a["device"], "X-Device-Token": a["token"]}).json()
        assert route["method"] == "road" and 300 < route["distance_m"] < 4000, route
        assert len(route["geometry"]["coordinates"]) > 5, route
        crews_shown = page.text_content("[data-testid=crew-crews]") or ""
        assert b["call_sign"] in crews_shown and a["call_sign"] in crews_shown
        assert "Pratt" in (page.text_content("[data-testid=crew-address]") or "")
        page.wait_for_function("() => window.gdCrew.map && window.gdCrew.map.gdBase")
        assert page.evaluate("window.gdCrew.map.gdBase.kind") == "vector"
        try:
            page.wait_for_function("() => window.gdCrew.map.gdBase.drawnLabels.size >= 2",
                                   timeout=20_000)
        except Exception:
            raise AssertionError("labels: " + str(page.evaluate(
                "[window.gdCrew.map.getZoom(), window.gdCrew.map.getCenter(), "
                "[...window.gdCrew.map.gdBase.drawnLabels], "
                "window.gdCrew.map.getSize()]"))) from None
        # The route is on the map, fitted: the line spans the map, both ends marked.
        zoom = page.evaluate("window.gdCrew.map.getZoom()")
        assert 13 <= zoom <= 17, zoom
        paths = page.locator("[data-testid=crew-map] .leaflet-overlay-pane path")
        assert paths.count() >= 3  # the drive, the crew, the call
        widths = [paths.nth(k).bounding_box() or {"width": 0} for k in range(paths.count())]
        assert max(w["width"] for w in widths) > 150, widths
        page.wait_for_timeout(1500)  # let the labeler finish the viewport
        out = artifacts / "crew-app.png"
        page.screenshot(path=str(out), full_page=True)
    finally:
        context.close()
    assert out.stat().st_size > 50_000
    if os.environ.get("GEODISPATCH_SCREENSHOTS") == "docs":
        shutil.copyfile(out, ROOT / "docs" / "screenshots" / "crew-app.png")
