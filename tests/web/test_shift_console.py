"""The console for a night shift in a real browser: choosing among the recommended crews, the
call form's defaults and the ETA format (Debian's headless Chromium through Playwright)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from tests.api.conftest import REGION, Account
from tests.helpers import login, running_server
from tests.web.conftest import cancel_incident, register_incident
from tests.web.test_dispatcher_map import SCENE, log_in, report

pytestmark = pytest.mark.browser


@pytest.fixture()
def shift_crews(engine: Engine, admin_engine: Engine) -> Iterator[list[dict[str, Any]]]:
    """Three available crews of our region: id, call sign, device id, token."""
    from geodispatch.tracking.service import create_unit

    tag = uuid.uuid4().hex[:4].upper()
    out = []
    with Session(engine) as s, s.begin():
        for k in range(3):
            unit, token = create_unit(session=s, call_sign=f"S{tag}{k}", kind="patrol_car",
                                      capabilities=["patrol"], region=REGION, status="available")
            out.append({"id": unit.id, "call_sign": unit.call_sign, "device": unit.device_id,
                        "token": token})
    yield out
    ids = [c["id"] for c in out]
    with admin_engine.begin() as conn:
        conn.execute(text("DELETE FROM assignments WHERE unit_id = ANY(:ids)"), {"ids": ids})
        for table in ("positions", "unit_latest"):
            conn.execute(text(f"DELETE FROM {table} WHERE unit_id = ANY(:ids)"), {"ids": ids})
        conn.execute(text("DELETE FROM units WHERE id = ANY(:ids)"), {"ids": ids})


def _app(settings: Settings) -> Any:
    return create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))


def _register(base: str, headers: dict[str, str], **extra: Any) -> dict[str, Any]:
    return register_incident(base, headers, "shift test", **extra)


def test_second_ranked_crew_is_assigned_without_an_override_reason(
    page: Any, settings: Settings, accounts: dict[str, Account],
    shift_crews: list[dict[str, Any]], engine: Engine,
) -> None:
    """Picking the second recommended crew and pressing Assign assigns it at once, as a
    recommended crew without reason; the override box stays closed."""
    page.add_init_script("localStorage.setItem('gd.lang', 'en')")
    with running_server(_app(settings)) as base:
        for k, c in enumerate(shift_crews):
            report(base, c, SCENE[0] + 0.002 * (k + 1), SCENE[1] + 0.003 * (k + 1))
        acc = accounts["dispatcher"]
        headers = login(base, acc.username, acc.password)
        inc = _register(base, headers)
        try:
            log_in(page, base, acc)
            item = f"[data-testid=queue-item][data-id='{inc['id']}']"
            page.click(item)
            page.wait_for_function(
                "document.querySelectorAll('[data-testid=reco-row]').length >= 2")
            second = page.locator("[data-testid=reco-row]").nth(1)
            unit_id = int(second.get_attribute("data-unit") or 0)
            second.click()
            page.wait_for_selector("[data-testid=reco-row][data-idx='1'].sel")
            page.click("[data-testid=accept]")
            page.wait_for_function(
                "id => window.gd.units[id] && window.gd.units[id].status === 'dispatched'",
                arg=unit_id)
            assert page.evaluate(
                "!document.querySelector('#override-box') ||"
                " document.querySelector('#override-box').hidden")
            with engine.connect() as conn:
                row = conn.execute(text(
                    "SELECT unit_id, was_recommended, override_reason FROM assignments"
                    " WHERE incident_id = :i"), {"i": inc["id"]}).one()
            assert tuple(row) == (unit_id, True, None)
        finally:
            cancel_incident(base, headers, inc["id"])
            page.goto("about:blank")  # the live socket closes before the server stops


def test_call_form_defaults_to_other_and_eta_has_whole_minutes(
    page: Any, settings: Settings, accounts: dict[str, Account]
) -> None:
    """The category starts at 'other' (not the first, priority-1 entry) and returns to it after
    a registration; an ETA of 179.6 s reads 3:00, never 2:60."""
    page.add_init_script("localStorage.setItem('gd.lang', 'en')")
    with running_server(_app(settings)) as base:
        log_in(page, base, accounts["call_taker"])
        page.click("[data-testid=tab-newcall]")
        page.wait_for_function(
            "document.querySelectorAll('[data-testid=call-category] option').length > 3")
        first = page.eval_on_selector("[data-testid=call-category]", "s => s.options[0].value")
        assert first != "other"  # the list really has another entry first
        assert page.input_value("[data-testid=call-category]") == "other"
        page.select_option("[data-testid=call-category]", "theft")
        page.evaluate("document.querySelector('#newcall').reset()")
        assert page.input_value("[data-testid=call-category]") == "other"
        etas = page.evaluate("[179.6, 59.5, 0, 3600, 119.49, null].map(window.gd.ui.fmtEta)")
        assert etas == ["3:00", "1:00", "0:00", "60:00", "1:59", "—"]
