"""The dispatcher's map in a real browser (Debian's headless Chromium through Playwright).

Crews report through the real HTTP tracker ingest (OsmAnd protocol, as Traccar Client sends it),
so "units move" covers ingest -> live fleet -> WebSocket -> Leaflet marker.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from tests.api.conftest import Account
from tests.helpers import running_server
from tests.web.conftest import crew_units

pytestmark = pytest.mark.browser

# Downtown Baltimore. The suite runs without a road graph unless a test builds one (see
# tests/conftest.py), so recommendations here are the flagged straight-line fallback; road
# routing itself is tested in tests/routing and end to end in tests/test_demo_e2e.py.
SCENE = (39.2904, -76.6122)


@pytest.fixture(scope="module")
def crews(engine: Engine, admin_engine: Engine) -> Iterator[list[dict[str, Any]]]:
    """Three available crews in our region: id, call sign, device id, token."""
    with crew_units(engine, admin_engine, 3, "K") as out:
        yield out


def report(
    base: str, crew: dict[str, Any], lat: float, lng: float, at: float | None = None
) -> None:
    """One fix through the real tracker ingest."""
    r = httpx.get(f"{base}/api/ingest/osmand", params={
        "id": crew["device"], "lat": f"{lat:.6f}", "lon": f"{lng:.6f}",
        "timestamp": int(at or time.time()), "speed": 12, "token": crew["token"]})
    assert r.status_code == 200, r.text


def log_in(page: Any, base: str, account: Account) -> None:
    page.goto(base + "/")
    page.fill("[data-testid=login-username]", account.username)
    page.fill("[data-testid=login-password]", account.password)
    page.click("[data-testid=login-submit]")
    page.wait_for_selector("[data-testid=conn][data-state=live]")


def unit_latlng(page: Any, unit_id: int) -> list[float] | None:
    return page.evaluate(
        "id => { const m = window.gd.unitMarkers[id]; if (!m) return null;"
        " const p = m.getLatLng(); return [p.lat, p.lng]; }", unit_id)


def test_login_page_rejects_a_wrong_password(
    page: Any, settings: Settings, accounts: dict[str, Account]
) -> None:
    """The login page shows an error for a wrong password and stays on the login form."""
    app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))
    with running_server(app) as base:
        page.goto(base + "/")
        page.fill("[data-testid=login-username]", accounts["dispatcher"].username)
        page.fill("[data-testid=login-password]", "wrong")
        page.click("[data-testid=login-submit]")
        page.wait_for_function(
            "document.querySelector('[data-testid=login-error]').textContent.length > 0")
        assert page.is_visible("[data-testid=login]")


def test_units_move_live_and_language_toggles(
    page: Any, settings: Settings, accounts: dict[str, Account], crews: list[dict[str, Any]],
    artifacts: Path,
) -> None:
    """Log in, see the crews, watch one move as fixes arrive; switch Ukrainian <-> English."""
    app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))
    with running_server(app) as base:
        for k, c in enumerate(crews):
            report(base, c, SCENE[0] + 0.004 * k, SCENE[1] - 0.006 * k)
        log_in(page, base, accounts["dispatcher"])
        page.evaluate(f"void window.gd.map.setView([{SCENE[0]}, {SCENE[1]}], 15)")
        mover = crews[0]
        page.wait_for_function("id => !!window.gd.unitMarkers[id]", arg=mover["id"])
        start = unit_latlng(page, mover["id"])
        assert start is not None and start[0] == pytest.approx(SCENE[0], abs=1e-5)
        page.screenshot(path=str(artifacts / "map-01-logged-in.png"))
        for step in range(1, 6):
            report(base, mover, SCENE[0] + 0.0006 * step, SCENE[1] + 0.0009 * step,
                   at=time.time() + 10 * step)  # ~35 km/h: passes the speed filter
            page.wait_for_function(
                "([id, lat]) => { const m = window.gd.unitMarkers[id];"
                " return m && Math.abs(m.getLatLng().lat - lat) < 1e-6; }",
                arg=[mover["id"], SCENE[0] + 0.0006 * step])
        end = unit_latlng(page, mover["id"])
        assert end is not None and end[0] > start[0] and end[1] > start[1]
        page.click("[data-testid=tab-crews]")
        page.click(f"[data-testid=crew-item][data-id='{mover['id']}']")
        page.wait_for_selector("[data-testid=crew-panel]")
        assert "available" in page.inner_text("[data-testid=crew-status]") or \
            "вільний" in page.inner_text("[data-testid=crew-status]")
        page.screenshot(path=str(artifacts / "map-02-units-moved.png"))

        # A dispatcher takes the crew off for a break from its panel; the map follows.
        page.select_option("[data-testid=crew-set-status]", "break")
        page.click("[data-testid=crew-set-btn]")
        page.wait_for_function("id => window.gd.units[id].status === 'break'", arg=mover["id"])

        page.evaluate("localStorage.setItem('gd.lang', 'uk')")
        page.reload()
        page.wait_for_selector("[data-testid=conn][data-state=live]")
        assert page.inner_text("[data-testid=tab-queue]").startswith("Черга")
        page.click("[data-testid=lang-toggle]")
        assert page.inner_text("[data-testid=tab-queue]").startswith("Queue")
        assert page.inner_text("[data-testid=conn]") == "live"


def test_offline_map_draws_our_roads_and_zones_with_attribution(
    page: Any, settings: Settings, accounts: dict[str, Account], artifacts: Path
) -> None:
    """Without a tile URL the map is marked offline, asks for our roads and zones, and still shows
    the OpenStreetMap attribution."""
    app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))
    with running_server(app) as base:
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        log_in(page, base, accounts["dispatcher"])
        assert page.is_visible("[data-testid=offline-badge]")
        page.wait_for_function("window.gd.offline === true")
        page.evaluate(f"void window.gd.map.setView([{SCENE[0]}, {SCENE[1]}], 15)")
        page.wait_for_function("window.gd.roadsRequested > 0")
        page.wait_for_timeout(500)
        assert any("/api/roads/edges" in u for u in requested)
        assert any("/api/zones" in u for u in requested)
        assert "OpenStreetMap" in page.inner_text(".leaflet-control-attribution")
        page.screenshot(path=str(artifacts / "map-03-offline.png"))


def test_tiles_failing_switches_to_offline(
    page: Any, settings: Settings, accounts: dict[str, Account]
) -> None:
    """A tile server that does not answer makes the map fall back to our own roads."""
    dead = "http://127.0.0.1:9/{z}/{x}/{y}.png"  # discard port: connection refused
    app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": dead}))
    with running_server(app) as base:
        log_in(page, base, accounts["dispatcher"])
        page.wait_for_function("window.gd.offline === true", timeout=20_000)
        assert page.is_visible("[data-testid=offline-badge]")


def test_register_call_recommend_accept_and_crew_status_changes(
    chromium: Any, settings: Settings, accounts: dict[str, Account], crews: list[dict[str, Any]],
    artifacts: Path,
) -> None:
    """A call-taker registers a call by clicking the map; the dispatcher sees it in the queue,
    opens it, gets recommended crews with ETA and accepts the first in one click; the crew turns
    'dispatched' and the incident 'assigned' on both screens."""
    app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))
    ctx_call = chromium.new_context(viewport={"width": 1400, "height": 860})
    ctx_disp = chromium.new_context(viewport={"width": 1400, "height": 860})
    call_page, disp_page = ctx_call.new_page(), ctx_disp.new_page()
    for p in (call_page, disp_page):
        p.set_default_timeout(20_000)
        p.add_init_script("localStorage.setItem('gd.lang', 'en')")
    try:
        with running_server(app) as base:
            for k, c in enumerate(crews):
                report(base, c, SCENE[0] + 0.003 * (k + 1), SCENE[1] + 0.004 * (k + 1))
            log_in(call_page, base, accounts["call_taker"])
            log_in(disp_page, base, accounts["dispatcher"])
            for p in (call_page, disp_page):
                p.evaluate(f"void window.gd.map.setView([{SCENE[0]}, {SCENE[1]}], 15)")

            # The call-taker places the call by clicking an empty spot of the map (a click on a
            # crew marker opens the crew instead).
            call_page.click("[data-testid=tab-newcall]")
            box = call_page.locator("[data-testid=map]").bounding_box()
            assert box is not None
            for fx, fy in ((0.5, 0.5), (0.42, 0.62), (0.6, 0.35), (0.3, 0.3), (0.7, 0.7)):
                call_page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
                if call_page.evaluate("window.gd.callPoint !== null"):
                    break
            placed = call_page.evaluate("window.gd.callPoint !== null")
            assert placed, "the map click placed no call"
            call_page.fill("[data-testid=call-phone]", "+380671234567")
            call_page.select_option("[data-testid=call-category]", "theft")
            call_page.fill("[data-testid=call-description]", "Shop window broken, two people")
            call_page.screenshot(path=str(artifacts / "map-04-new-call.png"))
            call_page.click("[data-testid=call-submit]")
            call_page.wait_for_function(
                "document.querySelector('[data-testid=call-result]').dataset.id !== undefined")
            incident_id = int(call_page.get_attribute("[data-testid=call-result]", "data-id") or 0)
            assert incident_id

            # The dispatcher sees it arrive in the queue (live) and opens it.
            item = f"[data-testid=queue-item][data-id='{incident_id}']"
            disp_page.wait_for_selector(item)
            disp_page.click(item)
            disp_page.wait_for_selector("[data-testid=incident-panel]")
            # The caller's phone arrives with the incident's details (never on the live stream).
            disp_page.wait_for_selector("[data-testid=incident-phone]")
            assert "+380671234567" in disp_page.inner_text("[data-testid=incident-phone]")
            disp_page.wait_for_selector("[data-testid=reco-row]")
            rows = disp_page.locator("[data-testid=reco-row]")
            assert rows.count() >= 1
            unit_id = int(rows.first.get_attribute("data-unit") or 0)
            disp_page.screenshot(path=str(artifacts / "map-05-recommendation.png"))
            disp_page.click("[data-testid=accept]")
            disp_page.wait_for_function(
                "id => window.gd.units[id] && window.gd.units[id].status === 'dispatched'",
                arg=unit_id)
            disp_page.wait_for_function(
                "id => window.gd.incidents[id] && window.gd.incidents[id].status !== 'registered'"
                " && window.gd.incidents[id].status !== 'queued'", arg=incident_id)
            disp_page.screenshot(path=str(artifacts / "map-06-assigned.png"))
            call_page.wait_for_function(
                "id => window.gd.units[id] && window.gd.units[id].status === 'dispatched'",
                arg=unit_id)
            # Leave the shared test database tidy: the incident is cancelled, the crew released.
            acc = accounts["dispatcher"]
            token = httpx.post(f"{base}/api/auth/token", data={
                "username": acc.username, "password": acc.password}).json()["access_token"]
            httpx.post(f"{base}/api/incidents/{incident_id}/cancel",
                       headers={"Authorization": f"Bearer {token}"},
                       json={"reason": "browser test done"})  # best effort, not the subject
    finally:
        ctx_call.close()
        ctx_disp.close()


def test_a_call_without_a_place_double_clicked_is_one_incident_placed_later(
    chromium: Any, settings: Settings, accounts: dict[str, Account], engine: Engine,
    artifacts: Path,
) -> None:
    """The call-taker types an address the road data does not know and presses Register twice
    quickly: one incident, flagged "location unknown" in the queue with the typed text kept;
    the call-taker then places it with one click on the map."""
    app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))
    ctx = chromium.new_context(viewport={"width": 1400, "height": 860})
    page = ctx.new_page()
    page.set_default_timeout(20_000)
    page.add_init_script("localStorage.setItem('gd.lang', 'en')")
    marker = f"double click {uuid.uuid4().hex[:8]}"
    try:
        with running_server(app) as base:
            log_in(page, base, accounts["call_taker"])
            page.evaluate(f"void window.gd.map.setView([{SCENE[0]}, {SCENE[1]}], 15)")
            page.click("[data-testid=tab-newcall]")
            page.fill("[data-testid=call-description]", marker)
            page.fill('#newcall [name="address"]', "behind the old tram depot, Zzzz lane")
            page.dblclick("[data-testid=call-submit]")
            page.wait_for_function(
                "document.querySelector('[data-testid=call-result]').dataset.id !== undefined")
            incident_id = int(page.get_attribute("[data-testid=call-result]", "data-id") or 0)
            assert "location unknown" in page.inner_text("[data-testid=call-result]")
            with engine.connect() as conn:
                rows = conn.execute(text(
                    "SELECT id, location IS NULL, address FROM incidents WHERE description = :d"),
                    {"d": marker}).all()
            assert len(rows) == 1, "a double click registered the call twice"
            assert rows[0][0] == incident_id and rows[0][1] is True
            assert rows[0][2] == "behind the old tram depot, Zzzz lane"
            page.click("[data-testid=tab-queue]")
            item = f"[data-testid=queue-item][data-id='{incident_id}']"
            page.wait_for_selector(item + " [data-testid=location-unknown]")
            page.screenshot(path=str(artifacts / "map-07-location-unknown.png"))
            page.click(item)
            page.click("[data-testid=place-on-map]")
            box = page.locator("[data-testid=map]").bounding_box()
            assert box is not None
            page.mouse.click(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.55)
            page.wait_for_function(
                "id => window.gd.incidents[id] && window.gd.incidents[id].lat !== null"
                " && window.gd.incidents[id].lat !== undefined", arg=incident_id)
            page.wait_for_selector(item + " [data-testid=location-unknown]", state="detached")
            with engine.connect() as conn:
                lat = conn.execute(text("SELECT ST_Y(location) FROM incidents WHERE id = :i"),
                                   {"i": incident_id}).scalar()
                kinds = conn.execute(text(
                    "SELECT kind FROM incident_events WHERE incident_id = :i"
                    " ORDER BY incident_seq"),
                    {"i": incident_id}).scalars().all()
            assert lat is not None and abs(lat - SCENE[0]) < 0.05
            assert kinds == ["registered", "located"]
    finally:
        ctx.close()


def test_call_taker_finds_a_house_as_she_types_and_the_pin_lands_on_it(
    chromium: Any, settings: Settings, accounts: dict[str, Account], engine: Engine,
    address_index: object, artifacts: Path,
) -> None:
    """Typing "750 east pratt" offers 750 East Pratt Street marked "house"; arrow down + Enter
    puts the call on the house, and the registered incident keeps typed text, resolved
    address, precision and method; the dispatcher's panel shows the precision."""
    app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))
    ctx = chromium.new_context(viewport={"width": 1400, "height": 860})
    page = ctx.new_page()
    page.set_default_timeout(20_000)
    page.add_init_script("localStorage.setItem('gd.lang', 'en')")
    marker = f"as you type {uuid.uuid4().hex[:8]}"
    try:
        with running_server(app) as base:
            log_in(page, base, accounts["dispatcher"])
            page.evaluate(f"void window.gd.map.setView([{SCENE[0]}, {SCENE[1]}], 15)")
            page.click("[data-testid=tab-newcall]")
            page.fill("[data-testid=call-description]", marker)
            page.click('#newcall [name="address"]')
            page.keyboard.type("750 east pratt", delay=30)
            hit = page.wait_for_selector("[data-testid=address-hit]")
            assert hit is not None and "750 East Pratt Street" in hit.inner_text()
            assert page.get_attribute("[data-testid=address-hit] [data-testid=precision]",
                                      "data-precision") == "house"
            page.screenshot(path=str(artifacts / "map-08-address-suggestions.png"))
            page.keyboard.press("ArrowDown")
            page.keyboard.press("Enter")
            page.wait_for_function("window.gd.callPoint !== null")
            lat, lng = page.evaluate("[window.gd.callPoint.lat, window.gd.callPoint.lng]")
            assert abs(lat - 39.2870835) < 1e-5 and abs(lng - -76.6052454) < 1e-5
            page.click("[data-testid=call-submit]")
            page.wait_for_function(
                "document.querySelector('[data-testid=call-result]').dataset.id !== undefined")
            with engine.connect() as conn:
                row = conn.execute(text(
                    "SELECT address, address_resolved, location_precision, location_method "
                    "FROM incidents WHERE description = :d"), {"d": marker}).one()
            assert row == ("750 east pratt", "750 East Pratt Street", "house", "house")
            # The dispatcher's panel opens on the new incident and shows the precision.
            page.wait_for_selector("[data-testid=incident-panel] [data-precision=house]")
            page.screenshot(path=str(artifacts / "map-09-incident-precision.png"))
    finally:
        ctx.close()
