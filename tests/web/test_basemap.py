"""The offline vector base map in a real browser: the dispatcher map asks our /tiles and paints
street names, with every request off 127.0.0.1 refused."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from geodispatch.tiles.build import build_tiles
from tests.api.conftest import Account
from tests.helpers import running_server
from tests.web.conftest import local_only_page
from tests.web.test_dispatcher_map import crews, log_in, report  # noqa: F401  (fixture)

pytestmark = pytest.mark.browser

OSM = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "osm"
SPOT = (39.2850, -76.6010)  # Harbor East / Little Italy, inside the downtown extract


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("basemap") / "baltimore.mbtiles"
    build_tiles(osm_file=OSM / "baltimore_downtown_2015.osm.pbf", out=out)
    return out


@pytest.fixture()
def offline_page(chromium: Any) -> Iterator[tuple[Any, list[str], list[tuple[str, int]]]]:
    """A page that may reach 127.0.0.1 only; records refused URLs and /tiles responses."""
    tile_responses: list[tuple[str, int]] = []
    with local_only_page(chromium, width=1440, height=880) as (pg, outside):
        pg.on("response", lambda r: tile_responses.append((r.url, r.status))
              if "/tiles/" in r.url and r.url.endswith(".pbf") else None)
        yield pg, outside, tile_responses


def dark_pixels(png: bytes) -> int:
    """Pixels darker than anything the base map paints except its label text."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int32)
    return int((rgb.sum(axis=2) < 200).sum())


def test_dispatcher_map_draws_street_names_from_our_tiles_offline(
    offline_page: tuple[Any, list[str], list[tuple[str, int]]], settings: Settings,
    accounts: dict[str, Account], crews: list[dict[str, Any]], tiles: Path,  # noqa: F811
    artifacts: Path,
) -> None:
    """Logged in, the map fetches /tiles/{z}/{x}/{y}.pbf, paints street names (label pixels
    that go when the layer goes) and sends nothing beyond 127.0.0.1."""
    page, outside, tile_responses = offline_page
    app = create_app(settings.model_copy(update={
        "serve_ingest": False, "tiles_path": tiles,
        "tile_url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png"}))  # ignored: tiles built
    with running_server(app) as base:
        for k, c in enumerate(crews):
            report(base, c, SPOT[0] + 0.003 * (k - 1), SPOT[1] + 0.004 * (k - 1))
        log_in(page, base, accounts["dispatcher"])
        page.wait_for_function("() => window.gd.map && window.gd.map.gdBase")
        assert page.evaluate("window.gd.map.gdBase.kind") == "vector"
        page.evaluate(f"void window.gd.map.setView([{SPOT[0]}, {SPOT[1]}], 16)")
        page.wait_for_function("() => window.gd.map.gdBase.drawnLabels.size >= 5")
        page.wait_for_timeout(1500)  # let the labeler finish the viewport
        names = page.evaluate("[...window.gd.map.gdBase.drawnLabels]")
        assert any(n.endswith(("Street", "Avenue")) for n in names), names
        assert not page.is_visible("#offline-badge")
        shot = page.locator("#map").screenshot()
        # (docs/screenshots/dispatcher-map.png is this picture)
        page.screenshot(path=str(artifacts / "basemap-dispatcher.png"))
        with_labels = dark_pixels(shot)
        page.evaluate("void window.gd.map.removeLayer(window.gd.map.gdBase.layer)")
        page.wait_for_timeout(300)
        without = dark_pixels(page.locator("#map").screenshot())
    assert with_labels - without > 800, (with_labels, without)  # markers etc. stay dark
    # Tiles exist at zooms 10-14; a request outside them (the map's first view, before it is
    # fitted to the region, may ask for zoom 1) is the documented 404.
    in_range = [(u, s) for u, s in tile_responses
                if 10 <= int(u.split("/tiles/")[1].split("/")[0]) <= 14]
    assert in_range and all(s in (200, 204) for _, s in in_range), tile_responses
    assert all(s == 404 for u, s in tile_responses if (u, s) not in in_range), tile_responses
    assert any(s == 200 for _, s in in_range)
    assert not [u for u in outside if "tile.openstreetmap.org" in u], "raster tiles requested"
    assert outside == []


def test_without_tiles_the_map_falls_back_to_our_roads(
    offline_page: tuple[Any, list[str], list[tuple[str, int]]], settings: Settings,
    accounts: dict[str, Account], tmp_path: Path,
) -> None:
    """No tiles built and no tile URL: the old offline map (roads from the database), no .pbf."""
    page, outside, tile_responses = offline_page
    app = create_app(settings.model_copy(update={
        "serve_ingest": False, "tiles_path": tmp_path / "none.mbtiles", "tile_url": ""}))
    with running_server(app) as base:
        log_in(page, base, accounts["dispatcher"])
        page.wait_for_function("() => window.gd.map && window.gd.map.gdBase")
        assert page.evaluate("window.gd.map.gdBase.kind") == "fallback"
        page.wait_for_selector("#offline-badge", state="visible")
    assert tile_responses == [] and outside == []


def test_crew_terminal_draws_the_vector_base_map(
    chromium: Any, settings: Settings, accounts: dict[str, Account],
    crews: list[dict[str, Any]], tiles: Path, artifacts: Path,  # noqa: F811
) -> None:
    """The crew terminal's assignment map is our vector tiles with street names too."""
    import uuid

    import httpx

    from tests.helpers import login
    from tests.web.test_crew_app import phone, send, sign_in

    app = create_app(settings.model_copy(update={"serve_ingest": False, "tiles_path": tiles,
                                                 "tile_url": ""}))
    with running_server(app) as base:
        d = accounts["dispatcher"]
        h = login(base, d.username, d.password)
        r = httpx.post(f"{base}/api/incidents", headers=h, json={
            "lat": SPOT[0], "lng": SPOT[1], "category": "theft", "description": "base map",
            "address": "Eastern Avenue", "idempotency_key": uuid.uuid4().hex})
        assert r.status_code == 201, r.text
        send(base, h, int(r.json()["id"]), crews[1]["id"])
        context, page = phone(chromium, SPOT)
        try:
            sign_in(page, base, crews[1])
            page.wait_for_function("() => window.gdCrew.map && window.gdCrew.map.gdBase")
            # (the terminal fits crew and scene, here one point: zoom out to a street view)
            page.evaluate(f"void window.gdCrew.map.setView([{SPOT[0]}, {SPOT[1]}], 16)")
            page.wait_for_function("() => { const m = window.gdCrew.map;"
                                   " return m && m.gdBase && m.gdBase.kind === 'vector'"
                                   " && m.gdBase.drawnLabels.size >= 2; }")
            page.screenshot(path=str(artifacts / "basemap-crew.png"))
        finally:
            context.close()
