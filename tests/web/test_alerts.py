"""Alerts that cannot be missed, in a real browser: the sound, title flash and notification of a
new priority-1 incident (and the per-console choice of priorities), the queue sorted and marked
against each priority's unassigned limit, and the supervisor alerts in their own tab, worded in
the console's language (Debian's headless Chromium through Playwright)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

import geodispatch.incidents
from geodispatch.api.app import create_app
from geodispatch.geo import LatLng
from geodispatch.settings import Settings
from tests.api.conftest import REGION, Account
from tests.helpers import login, running_server
from tests.web.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    cancel_incident,
    crew_units,
    register_incident,
)
from tests.web.test_dispatcher_map import SCENE, log_in

pytestmark = pytest.mark.browser


@pytest.fixture()
def alert_page(chromium: Any) -> Iterator[Any]:
    """A page of a Chromium that may play sound without a click, with notifications allowed."""
    browser = chromium.browser_type.launch(
        executable_path=CHROMIUM,
        args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"], headless=True)
    context = browser.new_context(viewport={"width": 1400, "height": 860}, locale="en-GB")
    context.grant_permissions(["notifications"])
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    yield pg
    context.close()
    browser.close()


def _app(settings: Settings, **extra: Any) -> Any:
    return create_app(settings.model_copy(update={
        "serve_ingest": False, "tile_url": "", "live_incident_poll_s": 0.2, **extra}))


def _register(base: str, headers: dict[str, str], **extra: Any) -> dict[str, Any]:
    return register_incident(base, headers, "alert test", **extra)


def test_new_p1_incident_sounds_flashes_and_notifies_until_opened(
    alert_page: Any, settings: Settings, accounts: dict[str, Account]
) -> None:
    """A P3 incident arriving makes no alarm; a P1 one plays the alert sound (the audio element
    really played), flashes the title with its reference and raises a desktop notification;
    opening it restores the title. With P3 ticked in the alert settings (kept in localStorage
    across a reload) a P3 incident alarms too."""
    page = alert_page
    page.add_init_script("localStorage.setItem('gd.lang', 'en')")
    with running_server(_app(settings)) as base:
        acc = accounts["dispatcher"]
        headers = login(base, acc.username, acc.password)
        made: list[int] = []
        try:
            log_in(page, base, acc)
            page.wait_for_function("window.gd.alertsUi && window.gd.alertsUi.seen !== null")
            assert page.evaluate("window.gd.alertsUi.priorities") == [1]
            title = page.title()
            quiet = _register(base, headers)  # theft: priority 3
            made.append(quiet["id"])
            page.wait_for_selector(f"[data-testid=queue-item][data-id='{quiet['id']}']")
            page.wait_for_timeout(500)
            assert page.evaluate("window.gd.alertsUi.played") == 0
            assert page.title() == title

            urgent = _register(base, headers, priority=1)
            made.append(urgent["id"])
            page.wait_for_function("window.gd.alertsUi.played >= 1")
            sound = page.evaluate(
                "(() => { const a = document.querySelector('audio[data-testid=alert-sound]');"
                " return {src: a.src, paused: a.paused, t: a.currentTime, dur: a.duration}; })()")
            assert sound["src"].startswith("blob:")  # made by the page itself: no network
            assert sound["t"] > 0 or not sound["paused"]
            assert 0.3 < sound["dur"] < 2.0
            page.wait_for_function("ref => document.title.includes(ref)", arg=urgent["reference"])
            assert "P1" in page.title()
            assert page.evaluate("window.gd.alertsUi.notified") >= 1
            assert page.evaluate("Notification.permission") == "granted"

            page.click(f"[data-testid=queue-item][data-id='{urgent['id']}']")
            page.wait_for_selector(f"[data-testid=incident-panel][data-id='{urgent['id']}']")
            page.wait_for_timeout(1200)  # more than one flash period
            assert page.title() == title
            assert page.evaluate("window.gd.alertsUi.flashing") is False

            page.click("[data-testid=tab-alerts]")
            page.check("[data-testid=alert-prio][value='3']")
            assert page.evaluate("localStorage.getItem('gd.alertPriorities')") == "[1,3]"
            page.reload()
            page.wait_for_selector("[data-testid=conn][data-state=live]")
            page.wait_for_function("window.gd.alertsUi.seen !== null")
            assert page.evaluate("window.gd.alertsUi.priorities") == [1, 3]
            assert page.is_checked("[data-testid=alert-prio][value='3']")
            played = page.evaluate("window.gd.alertsUi.played")
            third = _register(base, headers)
            made.append(third["id"])
            page.wait_for_function("n => window.gd.alertsUi.played > n", arg=played)
            page.wait_for_function("ref => document.title.includes(ref)", arg=third["reference"])
        finally:
            for i in made:
                cancel_incident(base, headers, i)
            page.goto("about:blank")


@pytest.fixture()
def waiting(engine: Engine, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Four queued incidents of our region that have waited 150 s (P1), 80 s (P1), 400 s (P2)
    and 200 s (P2), and a classification whose limits are P1 100 s and P2 300 s: the first and
    third are overdue (with the built-in 60/180 s all four would be)."""
    from geodispatch.incidents.models import Incident
    from geodispatch.incidents.record import append_event

    builtin = Path(geodispatch.incidents.__file__).parent / "classification.toml"
    text_ = builtin.read_text()
    text_ = re.sub(r"(\[unassigned_limit_s\][^\n]*\n)1 = 60\n2 = 180\n",
                   r"\g<1>1 = 100\n2 = 300\n", text_)
    assert "1 = 100" in text_
    cls = tmp_path / "classification.toml"
    cls.write_text(text_)
    now = datetime.now(UTC)
    p = LatLng(*SCENE)
    ids = {}
    with Session(engine) as s, s.begin():
        for name, prio, age in (("d", 1, 150), ("c", 1, 80), ("a", 2, 400), ("b", 2, 200)):
            inc = Incident(
                reference=f"Q{name.upper()}-{uuid.uuid4().hex[:8]}", region=REGION,
                received_at=now - timedelta(seconds=age), location=p.to_ewkt(),
                h3=int(p.h3_cell(9), 16), category="theft", original_category="theft",
                priority=prio, status="queued", created_by="test")
            s.add(inc)
            s.flush()
            append_event(session=s, incident_id=inc.id, kind="registered", actor="test",
                         data={"category": "theft"}, at=now - timedelta(seconds=age))
            ids[name] = (int(inc.id), inc.reference)
    yield {"ids": ids, "classification": cls}


def _tidy(base: str, acc: Account, ids: dict[str, tuple[int, str]]) -> None:
    headers = login(base, acc.username, acc.password)
    for incident_id, _ in ids.values():
        cancel_incident(base, headers, incident_id)


def test_queue_is_sorted_by_priority_then_share_of_limit_and_marks_overdue(
    page: Any, settings: Settings, accounts: dict[str, Account], waiting: dict[str, Any],
    artifacts: Path,
) -> None:
    """The server lists each priority's limit; the queue shows P1 before P2 and, within a
    priority, the longest wait against the limit first; exactly the incidents past their
    priority's limit (the server's limits, not the built-in ones) are marked overdue, in words."""
    ids = waiting["ids"]
    page.add_init_script("localStorage.setItem('gd.lang', 'en')")
    with running_server(_app(settings, classification_file=waiting["classification"])) as base:
        acc = accounts["dispatcher"]
        try:
            limits = httpx.get(f"{base}/api/dispatch/limits",
                               headers=login(base, acc.username, acc.password)).json()
            assert limits["unassigned_limit_s"] == {"1": 100.0, "2": 300.0, "3": 600.0,
                                                  "4": 1800.0}
            log_in(page, base, acc)
            page.wait_for_function("window.gd.queueUi.loaded")
            for name in ids:
                page.wait_for_selector(f"[data-testid=queue-item][data-id='{ids[name][0]}']")
            page.wait_for_function(
                "id => document.querySelector(`#queue li[data-id='${id}'] .wait`)",
                arg=ids["b"][0])
            order = page.eval_on_selector_all(
                "#queue li[data-id]", "els => els.map((e) => Number(e.dataset.id))")
            ours = [i for i in order if i in {v[0] for v in ids.values()}]
            assert ours == [ids["d"][0], ids["c"][0], ids["a"][0], ids["b"][0]]
            prios = page.evaluate(
                "ids => ids.map((id) => window.gd.incidents[id].priority)", order)
            assert prios == sorted(prios)  # the whole queue: priority first
            for name, over in (("d", True), ("c", False), ("a", True), ("b", False)):
                li = page.locator(f"#queue li[data-id='{ids[name][0]}']")
                assert li.get_attribute("data-overdue") == ("1" if over else "0"), name
                words = li.locator(".wait").inner_text()
                if over:
                    assert re.search(r"overdue: waiting [\d.]+ min \(limit (1\.7|5) min\)", words)
                    assert "overdue" in (li.get_attribute("class") or "")
                else:
                    assert re.search(r"^waiting [\d.]+ min of (1\.7|5) min$", words), words
            page.screenshot(path=str(artifacts / "queue-overdue.png"))
        finally:
            _tidy(base, acc, ids)
            page.goto("about:blank")


@pytest.fixture()
def silent_crews(engine: Engine, admin_engine: Engine) -> Iterator[list[dict[str, Any]]]:
    """Ten available crews of our region that never sent a fix."""
    with crew_units(engine, admin_engine, 10, "G") as out:
        yield out


def test_supervisor_alerts_are_grouped_counted_localised_in_minutes(
    page: Any, settings: Settings, accounts: dict[str, Account], waiting: dict[str, Any],
    silent_crews: list[dict[str, Any]], artifacts: Path,
) -> None:
    """The supervisor's alerts tab groups the alerts by kind with a count each; the overdue
    incidents read "(P1) waiting 2.5 min (limit 1.7 min)" in English and "чекає … хв (норма …)"
    in Ukrainian, the crews without a fix "no position yet" (a group of ten shows eight until
    "show all"); the server's English text (seconds) is never shown, and the queue tab no
    longer carries the alerts."""
    crews = silent_crews
    ids = waiting["ids"]
    page.add_init_script("localStorage.setItem('gd.lang', 'en')")
    with running_server(_app(settings, classification_file=waiting["classification"])) as base:
        acc = accounts["supervisor"]
        try:
            log_in(page, base, acc)
            page.click("[data-testid=tab-alerts]")
            group = page.locator("[data-testid=alert-group][data-kind=unassigned]")
            group.wait_for()
            items = group.locator("[data-testid=alert]")
            count = int(group.locator("[data-testid=alert-group-count]").inner_text())
            if count > 8:  # other tests' leftovers: all of them, then
                group.locator("[data-testid=alert-more]").click()
            page.wait_for_function(
                "n => document.querySelectorAll('[data-kind=unassigned] [data-testid=alert]')"
                ".length === n", arg=count)
            texts = items.all_inner_texts()
            mine = {name: [x for x in texts if ids[name][1] in x] for name in ids}
            assert not mine["c"] and not mine["b"]  # within the server's limits
            assert re.fullmatch(r"Q\S+ \(P1\) waiting 2\.\d min \(limit 1\.7 min\)", mine["d"][0])
            assert re.fullmatch(r"Q\S+ \(P2\) waiting 6\.\d min \(limit 5 min\)", mine["a"][0])
            stale = page.locator("[data-testid=alert-group][data-kind=gps_stale]")
            total = int(stale.locator("[data-testid=alert-group-count]").inner_text())
            assert total >= 10
            assert stale.locator("[data-testid=alert]").count() == 8
            more = stale.locator("[data-testid=alert-more]")
            assert more.inner_text() == f"show all ({total})"
            more.click()
            page.wait_for_function(
                "n => document.querySelectorAll('[data-kind=gps_stale] [data-testid=alert]')"
                ".length === n", arg=total)
            stale_texts = stale.locator("[data-testid=alert]").all_inner_texts()
            for c in crews:
                assert f"{c['call_sign']} (available): no position yet" in stale_texts
            shown = sum(int(x) for x in page.locator(
                "[data-testid=alert-group-count]").all_inner_texts())
            assert int(page.inner_text("#alerts-count")) == shown
            every = " ".join(page.locator("[data-testid=alert]").all_inner_texts())
            assert not re.search(r"\d s\b|unassigned for|has no fix", every)
            assert page.locator("#tab-queue [data-testid=alert]").count() == 0

            page.click("[data-testid=lang-toggle]")
            page.wait_for_function(
                "document.querySelector('[data-testid=alert-group][data-kind=unassigned] h4')"
                ".textContent.startsWith('Без екіпажу')")
            uk = page.locator("[data-testid=alert-group][data-kind=unassigned] "
                              "[data-testid=alert]").all_inner_texts()
            d_uk = [x for x in uk if ids["d"][1] in x][0]
            assert re.fullmatch(r"Q\S+ \(P1\) чекає 2,\d хв \(норма 1,7 хв\)", d_uk), d_uk
            stale_uk = page.locator("[data-testid=alert-group][data-kind=gps_stale] "
                                    "[data-testid=alert]").all_inner_texts()
            assert f"{crews[0]['call_sign']} (вільний): позицій ще не було" in stale_uk
            page.screenshot(path=str(artifacts / "supervisor-alerts-tab.png"))
        finally:
            _tidy(base, accounts["dispatcher"], ids)
            page.goto("about:blank")
