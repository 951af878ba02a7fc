"""The supervisor's board in Chromium: crews by sector with status, time in status, incident and
fix age; the joint action with its crews and lead; it follows changes without a reload; other
roles have no board."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from geodispatch.api.app import create_app
from geodispatch.geo import LatLng
from geodispatch.settings import Settings
from geodispatch.zones.cells import cell_of
from tests.api.conftest import REGION, Account
from tests.helpers import login, running_server
from tests.web.conftest import crew_units
from tests.web.test_dispatcher_map import SCENE, report

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def crews3(engine: Engine, admin_engine: Engine) -> Iterator[list[dict[str, Any]]]:
    with crew_units(engine, admin_engine, 3, "S") as out:
        yield out


@pytest.fixture(scope="module")
def sector(admin_engine: Engine, settings: Settings) -> Iterator[dict[str, Any]]:
    """A sector of our region over the third crew's spot (far from the scene's zones)."""
    spot = LatLng(SCENE[0] + 0.05, SCENE[1] + 0.05)
    code = f"SB-{uuid.uuid4().hex[:5].upper()}"
    cell = cell_of(spot, settings.h3_zone_res)
    with admin_engine.begin() as conn:
        taken = conn.execute(text("SELECT 1 FROM zone_cells WHERE cell = :c AND level = 'sector'"),
                             {"c": cell}).first()
        assert taken is None, "the test's sector cell belongs to an imported zone"
        zid = conn.execute(text(
            "INSERT INTO zones (code, name, level, region, res, cells) VALUES "
            "(:c, 'Board test sector', 'sector', :r, :res, '{}') RETURNING id"),
            {"c": code, "r": REGION, "res": settings.h3_zone_res}).scalar_one()
        conn.execute(text("INSERT INTO zone_cells (cell, level, zone_id)"
                          " VALUES (:c, 'sector', :z)"), {"c": cell, "z": zid})
    yield {"id": zid, "code": code, "spot": spot}
    with admin_engine.begin() as conn:
        conn.execute(text("DELETE FROM zone_cells WHERE zone_id = :z"), {"z": zid})
        conn.execute(text("UPDATE zones SET valid_to = now() WHERE id = :z"), {"z": zid})


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[str]:
    app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))
    with running_server(app) as base:
        yield base


def _log_in(page: Any, base: str, account: Account) -> None:
    page.add_init_script("localStorage.setItem('gd.lang', 'en')")
    page.goto(base + "/")
    page.fill("[data-testid=login-username]", account.username)
    page.fill("[data-testid=login-password]", account.password)
    page.click("[data-testid=login-submit]")
    page.wait_for_selector("#console:not([hidden])")


def _row(page: Any, unit_id: int) -> Any:
    return page.locator(f"[data-testid=board-crew][data-unit='{unit_id}']")


def test_supervisor_board_shows_crews_incident_and_joint_action(
    page: Any, server: str, accounts: dict[str, Account], crews3: list[dict[str, Any]],
    sector: dict[str, Any], artifacts: Path,
) -> None:
    """Two crews on one incident, a third in a sector: the board has each with its status,
    incident and fix age, the joint action with its lead, and follows a status change and a
    lead change by itself."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    a, b, c = crews3
    report(server, a, SCENE[0], SCENE[1] + 0.001)
    report(server, b, SCENE[0] + 0.001, SCENE[1])
    report(server, c, sector["spot"].lat, sector["spot"].lng)
    d = accounts["dispatcher"]
    h = login(server, d.username, d.password)
    r = httpx.post(f"{server}/api/incidents", headers=h, json={
        "lat": SCENE[0], "lng": SCENE[1], "category": "robbery", "description": "board",
        "idempotency_key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    inc = r.json()
    for crew in (a, b):
        r = httpx.post(f"{server}/api/incidents/{inc['id']}/assignments", headers=h,
                       json={"unit_id": crew["id"], "override_reason": "board test"})
        assert r.status_code == 201, r.text

    _log_in(page, server, accounts["supervisor"])
    page.click("[data-testid=tab-board]")
    page.wait_for_selector("[data-testid=board]:not([hidden])")
    page.wait_for_selector(f"[data-testid=board-crew][data-unit='{c['id']}']")
    assert page.locator("#map").is_visible()  # (under the board, not gone)

    row_a = _row(page, a["id"])
    assert row_a.get_attribute("data-status") == "dispatched"
    incident_cell = row_a.locator("[data-testid=board-incident]").inner_text()
    assert inc["reference"] in incident_cell and "★" in incident_cell
    assert inc["reference"] in _row(page, b["id"]).inner_text()
    assert "★" not in _row(page, b["id"]).locator("[data-testid=board-incident]").inner_text()
    assert _row(page, c["id"]).locator("[data-testid=board-incident]").inner_text() == "—"
    fix = _row(page, c["id"]).locator("[data-testid=board-fix]").inner_text()
    assert fix.startswith("0:"), fix  # seconds ago, m:ss
    # The third crew is under our sector, headed by its code.
    zone = page.locator(f"[data-testid=board-zone][data-zone='{sector['id']}']")
    assert sector["code"] in zone.locator("h4").inner_text()
    assert zone.locator(f"[data-testid=board-crew][data-unit='{c['id']}']").count() == 1

    joint = page.locator(f"#board [data-testid=board-joint-item][data-incident='{inc['id']}']")
    assert inc["reference"] in joint.inner_text()
    lead = joint.locator("[data-testid=board-joint-crew][data-lead]")
    assert lead.get_attribute("data-unit") == str(a["id"])
    assert joint.locator("[data-testid=board-joint-crew]").count() == 2
    page.screenshot(path=str(artifacts / "supervisor-board.png"))

    # The clock of a crew's status runs between reads.
    since = _row(page, c["id"]).locator("[data-testid=board-since]")
    first = since.inner_text()
    page.wait_for_function("([sel, t]) => document.querySelector(sel).textContent !== t",
                           arg=[f"[data-testid=board-crew][data-unit='{c['id']}'] "
                                "[data-testid=board-since]", first])
    # Changes arrive without a reload, sooner than the 10 s read: the live feed's crew status
    # and incident updates make the board read again.
    r = httpx.post(f"{server}/api/dispatch/units/{c['id']}/status", headers=h,
                   json={"status": "break"})
    assert r.status_code == 200, r.text
    page.wait_for_selector(f"[data-testid=board-crew][data-unit='{c['id']}'][data-status=break]",
                           timeout=6_000)
    r = httpx.post(f"{server}/api/incidents/{inc['id']}/lead", headers=h,
                   json={"unit_id": b["id"]})
    assert r.status_code == 200, r.text
    page.wait_for_selector(f"#board [data-testid=board-joint-item][data-incident='{inc['id']}']"
                           f" [data-testid=board-joint-crew][data-lead][data-unit='{b['id']}']",
                           timeout=6_000)
    # Clicking the incident opens its panel beside the board.
    row_a.locator("[data-incident]").click()
    page.wait_for_selector(f"[data-testid=incident-panel][data-id='{inc['id']}']")
    # A crew's call sign opens the crew's panel.
    _row(page, c["id"]).locator("[data-unit-link]").click()
    page.wait_for_selector(f"[data-testid=crew-panel][data-id='{c['id']}']")
    # Another tab: the map is back.
    page.click("[data-testid=tab-queue]")
    page.wait_for_selector("[data-testid=board]", state="hidden")
    assert errors == []


@pytest.mark.parametrize("role", ["call_taker", "dispatcher", "analyst"])
def test_other_roles_have_no_board(page: Any, server: str, accounts: dict[str, Account],
                                   role: str) -> None:
    """Call-takers, dispatchers and analysts see no Board tab."""
    _log_in(page, server, accounts[role])
    page.wait_for_function("() => window.gd.user && window.gd.user.role")
    page.wait_for_timeout(300)
    assert page.locator("[data-testid=tab-board]").is_hidden()
    assert page.locator("[data-testid=board]").is_hidden()
