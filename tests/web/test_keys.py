"""The keyboard in a real browser: an incident from the queue to closed with keys only (next
incident, accept the recommendation, a note, close with a disposition), the help overlay, and
no shortcut while typing (Debian's headless Chromium through Playwright)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from tests.api.conftest import Account
from tests.helpers import login, running_server
from tests.web.test_dispatcher_map import SCENE, log_in, report

pytestmark = pytest.mark.browser


def _app(settings: Settings) -> Any:
    return create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))


def test_keyboard_only_from_queue_to_closed(
    page: Any, settings: Settings, accounts: dict[str, Account],
    crews: list[dict[str, Any]], engine: Engine, artifacts: Path,
) -> None:
    """q and j reach the new incident in the focusable queue; o opens the other-crew list (where j
    is no shortcut); a assigns the recommended crew; n
    opens a note whose text may contain j, k and a (no shortcut fires while typing) and
    Ctrl+Enter saves it; c opens the closing form, arrows pick a disposition and Ctrl+Enter
    closes the incident; ? lists the shortcuts and Esc hides them."""
    page.add_init_script("localStorage.setItem('gd.lang', 'en')")
    with running_server(_app(settings)) as base:
        for k, c in enumerate(crews):
            report(base, c, SCENE[0] + 0.002 * (k + 1), SCENE[1] + 0.003 * (k + 1))
        acc = accounts["dispatcher"]
        headers = login(base, acc.username, acc.password)
        r = httpx.post(f"{base}/api/incidents", headers=headers, json={
            "lat": SCENE[0], "lng": SCENE[1], "category": "theft", "priority": 1,
            "description": f"keys test {uuid.uuid4().hex[:8]}"})
        assert r.status_code in (200, 201), r.text
        inc = r.json()
        try:
            log_in(page, base, acc)
            page.wait_for_selector(f"[data-testid=queue-item][data-id='{inc['id']}']")
            kb = page.keyboard
            kb.press("q")
            assert page.evaluate("document.activeElement.matches('#queue li[data-id]')")
            for _ in range(60):
                if page.evaluate("window.gd.selected && window.gd.selected.id") == inc["id"]:
                    break
                kb.press("j")
            assert page.evaluate("window.gd.selected.id") == inc["id"]
            assert page.evaluate("Number(document.activeElement.dataset.id)") == inc["id"]
            page.wait_for_selector("[data-testid=reco-row]")
            unit_id = int(page.get_attribute("[data-testid=reco-row][data-idx='0']", "data-unit")
                          or 0)
            kb.press("o")  # another crew: the override box opens on its crew list
            page.wait_for_selector("#override-box:not([hidden])")
            assert page.evaluate("document.activeElement.id") == "override-unit"
            kb.press("j")  # in a list box: no shortcut
            assert page.evaluate("window.gd.selected.id") == inc["id"]
            kb.press("Shift+Tab")  # back to the buttons; a accepts the recommended crew instead
            kb.press("a")
            page.wait_for_function(
                "id => window.gd.units[id] && window.gd.units[id].status === 'dispatched'",
                arg=unit_id)
            page.wait_for_selector("[data-testid=act-note]")

            kb.press("n")
            page.wait_for_function("document.activeElement.dataset.testid === 'act-text'")
            kb.type("seen j k a on the way")
            assert page.evaluate("window.gd.selected.id") == inc["id"]
            assert page.input_value("[data-testid=act-text]") == "seen j k a on the way"
            kb.press("Control+Enter")
            page.wait_for_selector("[data-testid=incident-notes]")
            assert "seen j k a on the way" in page.inner_text("[data-testid=incident-notes]")

            kb.press("c")
            page.wait_for_function(
                "document.activeElement.dataset.testid === 'act-disposition'")
            kb.press("ArrowDown")
            chosen = page.input_value("[data-testid=act-disposition]")
            assert chosen
            kb.press("Control+Enter")
            page.wait_for_function(
                "id => window.gd.incidents[id] && window.gd.incidents[id].status === 'closed'",
                arg=inc["id"])
            with engine.connect() as conn:
                row = conn.execute(text(
                    "SELECT i.status, i.disposition, a.unit_id, a.was_recommended FROM incidents i"
                    " JOIN assignments a ON a.incident_id = i.id WHERE i.id = :i"),
                    {"i": inc["id"]}).one()
            assert (row.status, row.unit_id, row.was_recommended) == ("closed", unit_id, True)
            assert row.disposition

            page.evaluate("document.activeElement && document.activeElement.blur()")
            kb.press("?")
            page.wait_for_selector("[data-testid=keys-help]:not([hidden])")
            assert page.locator("[data-testid=keys-row]").count() >= 10
            assert "Assign another crew" in page.inner_text("[data-testid=keys-help]")
            page.screenshot(path=str(artifacts / "keys-help.png"))
            kb.press("j")  # swallowed by the open help
            assert page.evaluate("window.gd.selected && window.gd.selected.id") == inc["id"]
            kb.press("Escape")
            page.wait_for_selector("[data-testid=keys-help]", state="hidden")
        finally:
            page.goto("about:blank")
            httpx.post(f"{base}/api/incidents/{inc['id']}/cancel", headers=headers,
                       json={"reason": "browser test done"})
