"""The call-taker's screen in a real browser: the phone rings, the call-taker answers, the form is
prefilled with the number and the AML location (point, accuracy circle, time), an outcome is set,
closing without one is refused; duplicates nearby are attached; missed calls are called back.

Calls ring through the real phone-system webhook and AML arrives through the real HTTPS form
endpoint, as an SMS centre or a PBX would send them.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from tests.api.conftest import Account
from tests.helpers import login, running_server
from tests.web.test_dispatcher_map import SCENE, log_in

pytestmark = pytest.mark.browser


def phone() -> str:
    """A fresh valid Ukrainian mobile number (Kyivstar 067), unique to the test."""
    return "+38067" + "".join(random.choice("0123456789") for _ in range(7))


def ring(base: str, number: str) -> str:
    ext = uuid.uuid4().hex
    r = httpx.post(f"{base}/api/calls/events",
                   json={"event": "ring", "call_id": ext, "from": number, "line": "102-1"})
    assert r.status_code == 200, r.text
    assert r.json()["created"] is True
    return ext


def aml(base: str, number: str, lat: float, lng: float, radius: float) -> dict[str, Any]:
    """An AML HTTPS form POST (ETSI TS 103 625) with a GNSS fix taken two seconds ago."""
    form = {"v": "1", "emergency_number": "112", "device_number": number,
            "location_latitude": f"{lat:.6f}", "location_longitude": f"{lng:.6f}",
            "location_accuracy": str(radius), "location_time": str(int(time.time() * 1000) - 2000),
            "location_source": "gps", "location_confidence": "0.68"}
    r = httpx.post(f"{base}/api/calls/aml/https", data=form)
    assert r.status_code == 200, r.text
    loc: dict[str, Any] = r.json()["location"]
    assert loc["call_id"] is not None  # matched to the ringing call
    return loc


def call_of(base: str, headers: dict[str, str], number: str) -> dict[str, Any]:
    items = httpx.get(f"{base}/api/calls", params={"limit": 50}, headers=headers).json()["items"]
    found = [c for c in items if c["caller_phone"] == number]
    assert found, f"no call from {number}"
    return found[0]


@pytest.fixture()
def call_page(chromium: Any) -> Iterator[Any]:
    ctx = chromium.new_context(viewport={"width": 1400, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(15_000)
    pg.add_init_script("localStorage.setItem('gd.lang', 'en')")
    yield pg
    ctx.close()


def incoming(number: str) -> str:
    return f"[data-testid=incoming-call]:has-text('{number}')"


def test_ring_answer_prefill_aml_outcome_and_close(
    call_page: Any, settings: Settings, accounts: dict[str, Account], artifacts: Path
) -> None:
    """A call rings with its waiting time; answering opens the form prefilled with the number and
    the AML point; the map shows the point and its accuracy circle with the fix time; closing
    without an outcome is refused on screen and by the server; with one it closes."""
    page = call_page
    app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))
    ct: Account = accounts["call_taker"]
    number = phone()
    lat, lng = SCENE[0] + 0.0011, SCENE[1] - 0.0007
    with running_server(app) as base:
        headers = login(base, ct.username, ct.password)
        ring(base, number)
        loc = aml(base, number, lat, lng, 40.0)
        log_in(page, base, ct)
        # A call-taker starts on the calls tab; the ringing call shows how long it has waited.
        assert page.is_visible("#tab-calls")
        page.wait_for_selector(incoming(number) + "[data-state=ringing]")
        wait = page.inner_text(incoming(number) + " [data-testid=call-wait]")
        assert wait.startswith("waiting 0:"), wait
        assert "AML" in page.inner_text(incoming(number))
        page.screenshot(path=str(artifacts / "calls-01-ringing.png"))

        page.click(incoming(number) + " [data-testid=call-answer]")
        page.wait_for_selector("[data-testid=active-call]:visible")
        assert page.input_value("[data-testid=call-phone]") == number
        assert page.inner_text("[data-testid=active-call-phone]") == number
        page.wait_for_function("!!window.gd.calls.amlCircle && !!window.gd.callPoint")
        shown = page.evaluate(
            "() => { const c = window.gd.calls; const p = c.amlPoint.getLatLng();"
            " const o = c.amlCircle.getLatLng(); return {p: [p.lat, p.lng], o: [o.lat, o.lng],"
            " r: c.amlCircle.getRadius(), onMap: window.gd.map.hasLayer(c.amlCircle),"
            " form: [window.gd.callPoint.lat, window.gd.callPoint.lng],"
            " tip: c.amlPoint.getTooltip().getContent()}; }")
        assert shown["p"] == pytest.approx([lat, lng], abs=1e-6)
        assert shown["o"] == pytest.approx([lat, lng], abs=1e-6)
        assert shown["r"] == 40.0 and shown["onMap"] is True
        assert shown["form"] == pytest.approx([lat, lng], abs=1e-6)
        assert "±40 m" in shown["tip"] and "AML-HTTPS" in shown["tip"]
        assert "±40 m" in page.inner_text("[data-testid=active-call-location]")
        # The form's place line shows the AML point too.
        assert page.get_attribute("[data-testid=call-where]", "data-lat") is not None
        call = call_of(base, headers, number)
        assert call["state"] == "answered" and call["operator"] == ct.username
        assert call["location"]["id"] == loc["id"]
        page.screenshot(path=str(artifacts / "calls-02-answered-aml.png"))

        # Closing without an outcome: refused, and the call stays answered.
        page.click("[data-testid=call-close]")
        page.wait_for_function(
            "document.querySelector('[data-testid=outcome-result]').textContent.length > 0")
        refused = page.inner_text("[data-testid=outcome-result]")
        assert refused.startswith("Cannot close") and "no outcome" in refused, refused
        assert "error" in (page.get_attribute("[data-testid=outcome-result]", "class") or "")
        assert page.is_visible("[data-testid=active-call]")
        assert call_of(base, headers, number)["state"] == "answered"

        page.click("[data-testid=outcome-information]")
        page.wait_for_selector("[data-testid=outcome-now][data-outcome=information]")
        assert call_of(base, headers, number)["outcome"] == "information"
        page.click("[data-testid=call-close]")
        page.wait_for_selector("[data-testid=active-call]", state="hidden")
        closed = httpx.get(f"{base}/api/calls/{call['id']}", headers=headers).json()
        assert closed["state"] == "closed" and closed["outcome"] == "information"
        assert page.evaluate("window.gd.calls.amlCircle") is None
        assert page.evaluate("window.gd.map.hasLayer(window.gd.calls.layer) && "
                             "window.gd.calls.layer.getLayers().length") == 0


def test_duplicate_nearby_is_attached_as_additional_caller(
    call_page: Any, settings: Settings, accounts: dict[str, Account], artifacts: Path
) -> None:
    """An open incident of 2 minutes ago 120 m from the caller's AML point is listed with its
    distance; attaching makes the call an additional caller of it; the caller hanging up then
    closes the call and it leaves the screen. An incident far away is not listed."""
    page = call_page
    app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))
    ct: Account = accounts["call_taker"]
    number = phone()
    with running_server(app) as base:
        headers = login(base, ct.username, ct.password)
        near, far = [httpx.post(f"{base}/api/incidents", headers=headers, json={
            "idempotency_key": uuid.uuid4().hex, "lat": SCENE[0] + d, "lng": SCENE[1],
            "category": "theft", "caller_phone": phone(), "description": "bike stolen"})
            for d in (0.0, 0.02)]
        assert near.status_code == 201 and far.status_code == 201, (near.text, far.text)
        ref = near.json()["reference"]
        ext = ring(base, number)
        aml(base, number, SCENE[0] + 0.00108, SCENE[1], 25.0)  # ~120 m north
        log_in(page, base, ct)
        page.wait_for_selector(incoming(number) + " [data-testid=call-answer]")
        page.click(incoming(number) + " [data-testid=call-answer]")
        item = f"[data-testid=nearby-item]:has-text('{ref}')"
        page.wait_for_selector(item)
        text_ = page.inner_text(item)
        assert "120 m" in text_ or "119 m" in text_ or "121 m" in text_, text_
        assert far.json()["reference"] not in page.inner_text("[data-testid=nearby]")
        page.screenshot(path=str(artifacts / "calls-03-nearby.png"))
        page.click(item + " [data-testid=nearby-attach]")
        page.wait_for_selector("[data-testid=outcome-now][data-outcome=additional_caller]")
        call = call_of(base, headers, number)
        assert call["outcome"] == "additional_caller"
        assert call["incident_id"] == near.json()["id"]
        assert page.input_value("[data-testid=call-phone]") == ""  # no duplicate to register
        r = httpx.post(f"{base}/api/calls/events", json={"event": "hangup", "call_id": ext})
        assert r.json()["call"]["state"] == "closed"
        page.wait_for_selector("[data-testid=active-call]", state="hidden")


def test_registering_the_form_is_the_new_incident_outcome_and_callbacks(
    call_page: Any, settings: Settings, accounts: dict[str, Account]
) -> None:
    """A call without a location: the form has the number; registering it makes the call's
    outcome new_incident with that incident. A call abandoned while ringing is in the callback
    list and is marked reached from there."""
    page = call_page
    app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))
    ct: Account = accounts["call_taker"]
    number, missed = phone(), phone()
    with running_server(app) as base:
        headers = login(base, ct.username, ct.password)
        ring(base, number)
        gone = ring(base, missed)
        r = httpx.post(f"{base}/api/calls/events", json={"event": "hangup", "call_id": gone})
        assert r.json()["call"]["state"] == "abandoned"
        log_in(page, base, ct)
        cb = f"[data-testid=callback-item]:has-text('{missed}')"
        page.wait_for_selector(cb)
        assert "SMS sent" in page.inner_text(cb)
        page.click(cb + " [data-testid=callback-done]")
        page.wait_for_selector(cb, state="detached")
        items = httpx.get(f"{base}/api/calls/callbacks", params={"status": "done"},
                          headers=headers).json()["items"]
        assert any(x["phone"] == missed and x["done_by"] == ct.username for x in items)

        page.click(incoming(number) + " [data-testid=call-answer]")
        page.wait_for_selector("[data-testid=active-call]:visible")
        assert "location unknown" in page.inner_text("[data-testid=active-call-location]")
        assert page.input_value("[data-testid=call-phone]") == number
        page.fill("[data-testid=call-description]", "neighbours shouting")
        page.click("[data-testid=call-submit]")
        page.wait_for_selector("[data-testid=outcome-now][data-outcome=new_incident]")
        call = call_of(base, headers, number)
        inc_id = int(page.get_attribute("[data-testid=call-result]", "data-id") or 0)
        assert call["outcome"] == "new_incident" and call["incident_id"] == inc_id


def test_a_ringing_call_is_pushed_to_the_screen_without_polling(
    call_page: Any, settings: Settings, accounts: dict[str, Account]
) -> None:
    """With the screen open and its list read, a call that starts ringing appears through the
    live feed (a "calls" message) without the screen reading /api/calls again; its AML, which
    arrives after, is drawn the same way; a hang-up takes it off the ringing list."""
    page = call_page
    app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))
    ct: Account = accounts["call_taker"]
    number = phone()
    with running_server(app) as base:
        reads: list[str] = []
        page.on("request", lambda r: reads.append(r.url) if "/api/calls?" in r.url else None)
        log_in(page, base, ct)
        page.wait_for_function("window.gd.calls.fed === true && window.gd.calls.polls >= 1")
        page.wait_for_timeout(300)  # the first reads are done
        polls, n_reads = page.evaluate("window.gd.calls.polls"), len(reads)
        t0 = time.monotonic()
        ext = ring(base, number)
        page.wait_for_selector(incoming(number) + "[data-state=ringing]", timeout=5_000)
        shown_s = time.monotonic() - t0
        loc = aml(base, number, SCENE[0] + 0.001, SCENE[1], 25.0)
        page.wait_for_selector(incoming(number) + " .badge:has-text('AML')", timeout=5_000)
        r = httpx.post(f"{base}/api/calls/events", json={"event": "hangup", "call_id": ext})
        assert r.status_code == 200
        page.wait_for_selector(incoming(number), state="detached", timeout=5_000)
        page.wait_for_selector(f"[data-testid=callback-item]:has-text('{number}')",
                               timeout=5_000)
        state = page.evaluate("() => ({polls: window.gd.calls.polls,"
                              " pushes: window.gd.calls.pushes})")
    assert shown_s < 2.0, shown_s  # a push, not the next read of a poll
    assert state["polls"] == polls and len(reads) == n_reads, reads[n_reads:]
    assert state["pushes"] >= 3  # ring, located, abandoned
    assert loc["call_id"] is not None
