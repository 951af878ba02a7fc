"""Every incident action on the console's incident panel, in a real browser (Debian's Chromium):
close with a disposition, cancel, duplicate/merge with nearby suggestions, reclassify with a
reason, reopen, notes, lead crew and "do not SMS"; and the readable timeline in both languages."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from tests.api.conftest import REGION, Account
from tests.helpers import login, running_server

pytestmark = pytest.mark.browser

#: Away from the other browser tests' incidents, so the merge suggestions are ours.
SCENE = (39.3104, -76.6422)


@pytest.fixture(scope="module")
def server(settings: Settings, accounts: dict[str, Account]) -> Iterator[str]:
    app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))
    with running_server(app) as base:
        yield base


@pytest.fixture(scope="module")
def tokens(server: str, accounts: dict[str, Account]) -> dict[str, dict[str, str]]:
    return {k: login(server, a.username, a.password) for k, a in accounts.items()}


@pytest.fixture(scope="module")
def crews(engine: Engine, admin_engine: Engine) -> Iterator[list[dict[str, Any]]]:
    from geodispatch.tracking.service import create_unit

    tag = uuid.uuid4().hex[:4].upper()
    out = []
    with Session(engine) as s, s.begin():
        for k in range(2):
            unit, _token = create_unit(session=s, call_sign=f"L{tag}{k}", kind="patrol_car",
                                       capabilities=["patrol"], region=REGION,
                                       status="available")
            out.append({"id": unit.id, "call_sign": unit.call_sign})
    yield out
    ids = [c["id"] for c in out]
    with admin_engine.begin() as conn:
        conn.execute(text("DELETE FROM assignments WHERE unit_id = ANY(:ids)"), {"ids": ids})
        conn.execute(text("DELETE FROM units WHERE id = ANY(:ids)"), {"ids": ids})


def _register(base: str, h: dict[str, str], dlat: float = 0.0, **kw: Any) -> dict[str, Any]:
    body = {"lat": SCENE[0] + dlat, "lng": SCENE[1], "category": "theft",
            "caller_phone": "+380671234500", "caller_lang": "en",
            "description": "browser test", "idempotency_key": uuid.uuid4().hex, **kw}
    r = httpx.post(f"{base}/api/incidents", json=body, headers=h)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def _page(chromium: Any, base: str, account: Account, lang: str = "en") -> tuple[Any, Any]:
    ctx = chromium.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(20_000)
    page.add_init_script(f"localStorage.setItem('gd.lang', '{lang}')")
    page.goto(base + "/")
    page.fill("[data-testid=login-username]", account.username)
    page.fill("[data-testid=login-password]", account.password)
    msgs: list[str] = []
    page.on("console", lambda m: msgs.append(m.type + ": " + m.text))
    page.on("pageerror", lambda e: msgs.append(f"pageerror: {e}"))
    page.click("[data-testid=login-submit]")
    page.wait_for_selector("[data-testid=conn][data-state=live]")
    assert not [m for m in msgs if m.startswith("pageerror")], msgs
    return ctx, page


def _open(page: Any, incident_id: int) -> None:
    page.evaluate("id => window.gd.ui.showIncident(id)", incident_id)
    page.wait_for_selector(f"[data-testid=incident-panel][data-id='{incident_id}']")
    page.wait_for_selector("[data-testid=incident-actions] [data-testid^=act-]")


def _status(base: str, h: dict[str, str], incident_id: int) -> str:
    return str(httpx.get(f"{base}/api/incidents/{incident_id}", headers=h).json()["status"])


def _timeline(page: Any, kind: str) -> str:
    sel = f"[data-testid=incident-timeline] [data-kind={kind}]"
    page.wait_for_selector(sel)
    return str(page.inner_text(sel))


def test_close_with_a_local_disposition(chromium: Any, server: str, tokens: Any,
                                        accounts: dict[str, Account], artifacts: Path) -> None:
    """The dispatcher closes from the panel with a local code; the server keeps its APCO code
    and the timeline says both in words."""
    inc = _register(server, tokens["call_taker"])
    ctx, page = _page(chromium, server, accounts["dispatcher"])
    try:
        _open(page, inc["id"])
        page.click("[data-testid=act-close]")
        options = page.eval_on_selector_all("[data-testid=act-disposition] option",
                                            "els => els.map(e => e.value)")
        assert "NAMISCI" in options and "45" in options and len(options) > 45
        page.click("[data-testid=act-confirm]")  # no disposition chosen yet
        assert "Choose a disposition" in page.inner_text("[data-testid=act-result]")
        page.select_option("[data-testid=act-disposition]", "NAMISCI")
        page.fill("[data-testid=act-closenote]", "settled with the neighbours")
        page.screenshot(path=str(artifacts / "incident-01-close-form.png"))
        page.click("[data-testid=act-confirm]")
        line = _timeline(page, "closed")
        assert "Settled on the spot" in line and "APCO 18" in line
        assert "settled with the neighbours" in line and "closed ·" not in line
        assert _status(server, tokens["dispatcher"], inc["id"]) == "closed"
        page.wait_for_selector("[data-testid=act-reopen]")
        assert page.locator("[data-testid=act-close]").count() == 0
        page.screenshot(path=str(artifacts / "incident-02-closed.png"))
    finally:
        ctx.close()


def test_cancel_needs_a_reason_then_reopen(chromium: Any, server: str, tokens: Any,
                                           accounts: dict[str, Account]) -> None:
    """Cancel without a reason is refused in the form; with one it cancels; reopen brings the
    incident back to the queue; the timeline shows both reasons."""
    inc = _register(server, tokens["call_taker"])
    ctx, page = _page(chromium, server, accounts["supervisor"])
    try:
        _open(page, inc["id"])
        page.click("[data-testid=act-cancel]")
        page.click("[data-testid=act-confirm]")
        assert "Give a reason" in page.inner_text("[data-testid=act-result]")
        assert _status(server, tokens["dispatcher"], inc["id"]) != "cancelled"
        page.fill("[data-testid=act-reason]", "caller rang back: all fine")
        page.click("[data-testid=act-confirm]")
        assert "caller rang back: all fine" in _timeline(page, "cancelled")
        assert _status(server, tokens["dispatcher"], inc["id"]) == "cancelled"
        page.click("[data-testid=act-reopen]")
        page.fill("[data-testid=act-reason]", "second call: it is not fine")
        page.click("[data-testid=act-confirm]")
        line = _timeline(page, "reopened")
        assert "second call: it is not fine" in line and "was: cancelled" in line
        assert _status(server, tokens["dispatcher"], inc["id"]) == "queued"
        status_line = page.inner_text("[data-testid=incident-timeline] [data-kind=status]") \
            if page.locator("[data-testid=incident-timeline] [data-kind=status]").count() else ""
        assert "queued" not in status_line or "→" in status_line
    finally:
        ctx.close()


def test_duplicate_of_a_suggested_nearby_incident(chromium: Any, server: str, tokens: Any,
                                                  accounts: dict[str, Account],
                                                  artifacts: Path) -> None:
    """The merge form suggests the open incident 40 m away; marking the new one a duplicate
    links both ways in the timelines, and the link opens the master."""
    master = _register(server, tokens["call_taker"], caller_phone="+380671234501")
    dup = _register(server, tokens["call_taker"], dlat=0.0004, caller_phone="+380671234502")
    ctx, page = _page(chromium, server, accounts["dispatcher"])
    try:
        _open(page, dup["id"])
        page.click("[data-testid=act-merge]")
        cand = f"[data-testid=merge-candidate][data-ref='{master['reference']}']"
        page.wait_for_selector(cand)
        page.screenshot(path=str(artifacts / "incident-03-merge-suggestions.png"))
        page.check(cand)
        page.fill("[data-testid=act-reason]", "same shop window")
        page.click("[data-testid=act-confirm]")
        line = _timeline(page, "duplicate_of")
        assert master["reference"] in line and "same shop window" in line
        assert _status(server, tokens["dispatcher"], dup["id"]) == "merged"
        page.click("[data-testid=incident-timeline] [data-kind=duplicate_of] "
                   "[data-testid=timeline-link]")
        page.wait_for_selector(f"[data-testid=incident-panel][data-id='{master['id']}']")
        assert dup["reference"] in _timeline(page, "absorbed")
    finally:
        ctx.close()


def test_reclassify_needs_a_reason(chromium: Any, server: str, tokens: Any,
                                   accounts: dict[str, Account]) -> None:
    """A call-taker reclassifies with a reason; the timeline reads 'Theft → Robbery'."""
    inc = _register(server, tokens["call_taker"])
    ctx, page = _page(chromium, server, accounts["call_taker"])
    try:
        _open(page, inc["id"])
        assert page.locator("[data-testid=act-close]").count() == 0  # not a call-taker's
        page.click("[data-testid=act-reclassify]")
        page.select_option("[data-testid=act-category]", "robbery")
        page.click("[data-testid=act-confirm]")
        assert "Give a reason" in page.inner_text("[data-testid=act-result]")
        page.fill("[data-testid=act-reason]", "he had a knife")
        page.click("[data-testid=act-confirm]")
        line = _timeline(page, "reclassified")
        assert "Theft → Robbery" in line and "he had a knife" in line
        got = httpx.get(f"{server}/api/incidents/{inc['id']}", headers=tokens["dispatcher"]).json()
        assert got["category"] == "robbery" and got["original_category"] == "theft"
    finally:
        ctx.close()


def test_notes_and_do_not_sms(chromium: Any, server: str, tokens: Any,
                              accounts: dict[str, Account]) -> None:
    """A call-taker adds a note and switches SMS off for this caller; both show on the panel."""
    inc = _register(server, tokens["call_taker"], category="domestic_violence")
    ctx, page = _page(chromium, server, accounts["call_taker"])
    try:
        _open(page, inc["id"])
        page.click("[data-testid=act-note]")
        page.click("[data-testid=act-confirm]")
        assert "Write the note" in page.inner_text("[data-testid=act-result]")
        page.fill("[data-testid=act-text]", "caller whispers; the man is in the next room")
        page.click("[data-testid=act-confirm]")
        page.wait_for_selector("[data-testid=incident-notes] li")
        assert "next room" in page.inner_text("[data-testid=incident-notes]")
        assert "next room" in _timeline(page, "note")
        page.click("[data-testid=act-sms_off]")
        page.fill("[data-testid=act-reason]", "abuser may read the phone")
        page.click("[data-testid=act-confirm]")
        page.wait_for_selector("[data-testid=sms-off]")
        page.wait_for_selector("[data-testid=act-sms_on]")
        assert "abuser may read the phone" in _timeline(page, "sms_disabled")
        got = httpx.get(f"{server}/api/incidents/{inc['id']}", headers=tokens["dispatcher"]).json()
        assert got["sms_opt_out"] is True and [n["text"] for n in got["notes"]] == [
            "caller whispers; the man is in the next room"]
    finally:
        ctx.close()


def test_choose_the_lead_crew(chromium: Any, server: str, tokens: Any,
                              accounts: dict[str, Account], crews: list[dict[str, Any]]) -> None:
    """Two crews on the incident; the dispatcher makes the second the lead from the panel."""
    inc = _register(server, tokens["call_taker"])
    for c in crews:
        r = httpx.post(f"{server}/api/incidents/{inc['id']}/assignments",
                       json={"unit_id": c["id"], "override_reason": "by radio"},
                       headers=tokens["dispatcher"])
        assert r.status_code == 201, r.text
    ctx, page = _page(chromium, server, accounts["dispatcher"])
    try:
        _open(page, inc["id"])
        page.click("[data-testid=act-lead]")
        options = page.eval_on_selector_all("[data-testid=act-lead-unit] option",
                                            "els => els.map(e => e.value)")
        assert options == [str(crews[1]["id"])]  # the first is the lead already
        page.click("[data-testid=act-confirm]")
        line = _timeline(page, "lead_changed")
        assert f"{crews[0]['call_sign']} → {crews[1]['call_sign']}" in line
        got = httpx.get(f"{server}/api/incidents/{inc['id']}", headers=tokens["dispatcher"]).json()
        assert {a["unit_id"]: a["is_lead"] for a in got["assignments"]} == {
            crews[0]["id"]: False, crews[1]["id"]: True}
        assigned = page.inner_text("[data-testid=incident-timeline] [data-kind=assigned]")
        assert "override" in assigned and "by radio" in assigned
        httpx.post(f"{server}/api/incidents/{inc['id']}/cancel", json={"reason": "test done"},
                   headers=tokens["dispatcher"]).raise_for_status()
    finally:
        ctx.close()


def test_ukrainian_panel_and_a_form_kept_across_live_updates(
        chromium: Any, server: str, tokens: Any, accounts: dict[str, Account]) -> None:
    """In Ukrainian the actions and the timeline are Ukrainian; a half-typed reason survives a
    re-render of the panel (a live update of the same incident)."""
    inc = _register(server, tokens["call_taker"])
    ctx, page = _page(chromium, server, accounts["dispatcher"], lang="uk")
    try:
        _open(page, inc["id"])
        assert page.inner_text("[data-testid=act-close]") == "Закрити"
        assert "Зареєстровано" in _timeline(page, "registered")
        page.click("[data-testid=act-cancel]")
        page.fill("[data-testid=act-reason]", "заявник передзвонив")
        httpx.post(f"{server}/api/incidents/{inc['id']}/notes", json={"text": "інший диспетчер"},
                   headers=tokens["supervisor"]).raise_for_status()
        page.evaluate("id => window.gd.ui.loadIncidentDetails(id)", inc["id"])
        page.wait_for_selector("[data-testid=incident-timeline] [data-kind=note]")
        assert page.input_value("[data-testid=act-reason]") == "заявник передзвонив"
        page.click("[data-testid=act-confirm]")
        assert "заявник передзвонив" in _timeline(page, "cancelled")
        assert "Скасовано" in _timeline(page, "cancelled")
    finally:
        ctx.close()


def test_search_finds_a_closed_incident_and_opens_its_history(
        chromium: Any, server: str, tokens: Any, accounts: dict[str, Account],
        artifacts: Path) -> None:
    """A closed incident is gone from the queue but the search box finds it (by address, with
    the status filter), and opening it shows its history."""
    tag = uuid.uuid4().hex[:5]
    inc = _register(server, tokens["call_taker"], address=f"Light Street {tag}")
    other = _register(server, tokens["call_taker"], address=f"Light Street {tag} (open)")
    httpx.post(f"{server}/api/incidents/{inc['id']}/close", json={"disposition": "DOVIDKA"},
               headers=tokens["dispatcher"]).raise_for_status()
    ctx, page = _page(chromium, server, accounts["dispatcher"])
    try:
        page.click("[data-testid=tab-search]")
        page.fill("[data-testid=search-q]", f"light street {tag}")
        page.click("[data-testid=search-go]")
        page.wait_for_selector(f"[data-testid=search-item][data-id='{other['id']}']")
        assert page.locator("[data-testid=search-item]").count() == 2
        page.select_option("[data-testid=search-status]", "closed")
        page.wait_for_function("() => document.querySelectorAll("
                               "'[data-testid=search-item]').length === 1")
        assert "Found: 1" in page.inner_text("[data-testid=search-result]")
        page.screenshot(path=str(artifacts / "incident-04-search.png"))
        page.click(f"[data-testid=search-item][data-id='{inc['id']}']")
        page.wait_for_selector(f"[data-testid=incident-panel][data-id='{inc['id']}']")
        assert "Information only" in _timeline(page, "closed")
        assert "Registered" in _timeline(page, "registered")
        page.fill("[data-testid=search-q]", "no-such-thing-" + tag)
        page.click("[data-testid=search-go]")
        page.wait_for_function("() => document.querySelector('[data-testid=search-result]')"
                               ".textContent === 'Nothing found'")
    finally:
        ctx.close()
