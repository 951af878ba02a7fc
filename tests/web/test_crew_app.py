"""The crew terminal (/crew) in a real browser: a phone-sized Chromium with emulated geolocation,
against a real uvicorn, PostGIS and the real tracker ingest."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from tests.api.conftest import Account
from tests.helpers import login, running_server

pytestmark = pytest.mark.browser

SCENE = (39.2904, -76.6122)
START = (39.2990, -76.6200)
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True,
         "has_touch": True, "locale": "en-GB", "permissions": ["geolocation"]}


@pytest.fixture()
def server(settings: Settings) -> Iterator[str]:
    app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))
    with running_server(app) as base:
        yield base


def phone(chromium: Any, at: tuple[float, float]) -> tuple[Any, Any]:
    context = chromium.new_context(**PHONE, geolocation={"latitude": at[0], "longitude": at[1],
                                                         "accuracy": 8})
    page = context.new_page()
    page.set_default_timeout(15_000)
    return context, page


def sign_in(page: Any, base: str, crew: dict[str, Any]) -> None:
    page.goto(base + "/crew")
    page.fill("[data-testid=crew-device]", crew["device"])
    page.fill("[data-testid=crew-token]", crew["token"])
    page.click("[data-testid=crew-submit]")
    page.wait_for_selector("[data-testid=crew-conn][data-state=live]")
    page.wait_for_selector(f"[data-testid=crew-callsign]:text('{crew['call_sign']}')")


def new_incident(base: str, h: dict[str, str], notes: str) -> dict[str, Any]:
    r = httpx.post(f"{base}/api/incidents", headers=h, json={
        "lat": SCENE[0], "lng": SCENE[1], "category": "theft", "description": notes,
        "address": "750 East Pratt Street", "idempotency_key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    return dict(r.json())


def send(base: str, h: dict[str, str], incident_id: int, unit_id: int) -> int:
    r = httpx.post(f"{base}/api/incidents/{incident_id}/assignments", headers=h,
                   json={"unit_id": unit_id, "override_reason": "crew terminal test"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def events(base: str, h: dict[str, str], incident_id: int) -> list[dict[str, Any]]:
    r = httpx.get(f"{base}/api/incidents/{incident_id}/events", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    return list(body["events"])


def wait_queue_empty(page: Any) -> None:
    page.wait_for_selector("[data-testid=crew-queued]:text-is('0')")


def press(page: Any, status: str, unit_status: str | None = None) -> None:
    page.click(f"[data-testid=btn-{status}]")
    wait_queue_empty(page)
    if unit_status:
        page.wait_for_selector(f"[data-testid=crew-unit-status][data-status={unit_status}]")


def test_crew_app_is_an_installable_pwa(server: str) -> None:
    """The page links a web manifest and registers a service worker scoped to /crew."""
    m = httpx.get(server + "/crew/manifest.webmanifest")
    assert m.status_code == 200 and m.json()["start_url"] == "/crew"
    sw = httpx.get(server + "/crew/sw.js")
    assert sw.status_code == 200 and "fetch" in sw.text
    assert httpx.get(server + "/crew/nope.js").status_code == 404
    html = httpx.get(server + "/crew").text
    assert 'rel="manifest"' in html


def test_assign_acknowledge_en_route_on_scene_cleared(
    chromium: Any, server: str, crews: list[dict[str, Any]], accounts: dict[str, Account]
) -> None:
    """The crew sees a new assignment within 1 s with its details and route, presses through
    it, and the dispatcher's timeline shows each step with its time."""
    a, b = crews
    disp = accounts["dispatcher"]
    h = login(server, disp.username, disp.password)
    context, page = phone(chromium, START)
    try:
        sign_in(page, server, a)
        page.wait_for_selector("[data-testid=crew-none]:visible")
        page.wait_for_selector("[data-testid=crew-gps]:has-text('39.29')")
        inc = new_incident(server, h, "Caller waits at the gate; dog in the yard")
        send(server, h, inc["id"], b["id"])  # another crew on the same call (the lead)
        aid = send(server, h, inc["id"], a["id"])
        t0 = time.monotonic()  # the dispatcher's assign request has answered
        page.wait_for_selector(f"[data-testid=crew-reference]:text-is('{inc['reference']}')",
                               timeout=3000)
        shown_s = time.monotonic() - t0
        assert shown_s <= 1.0, f"assignment took {shown_s:.2f} s to reach the crew page"
        assert page.text_content("[data-testid=crew-category]") == "theft"
        assert "Pratt" in (page.text_content("[data-testid=crew-address]") or "")
        assert "dog in the yard" in (page.text_content("[data-testid=crew-notes]") or "")
        crews_text = page.text_content("[data-testid=crew-crews]") or ""
        assert a["call_sign"] in crews_text and b["call_sign"] in crews_text
        assert "lead" in crews_text
        page.wait_for_selector("[data-testid=crew-new]:visible")
        page.wait_for_selector("[data-testid=crew-route][data-eta-s]")
        assert int(page.get_attribute("[data-testid=crew-route]", "data-eta-s") or 0) > 0
        # The big buttons are real touch targets on a phone.
        box = page.locator("[data-testid=btn-en_route]").bounding_box()
        assert box and box["height"] >= 48 and box["width"] >= 140
        press(page, "acknowledged")
        page.wait_for_selector("[data-testid=crew-new]", state="hidden")
        press(page, "en_route", "en_route")
        press(page, "on_scene", "on_scene")
        press(page, "cleared", "cleared")
        page.wait_for_selector("[data-testid=crew-none]:visible")
    finally:
        context.close()
    evs = [e for e in events(server, h, inc["id"])
           if (e["data"] or {}).get("unit_id") == a["id"]]
    steps = [e["kind"] if e["kind"] != "crew_status" else e["data"]["to"] for e in evs]
    for step in ("assigned", "assignment_delivered", "assignment_acknowledged", "en_route",
                 "on_scene", "cleared"):
        assert steps.count(step) == 1, steps
    order = [steps.index(s) for s in ("assigned", "assignment_acknowledged", "en_route",
                                      "on_scene", "cleared")]
    assert order == sorted(order), steps
    # The crew's own steps happened in that order, and their times say so. (Delivery
    # bookkeeping such as assignment_sent may be recorded after a later step, with the earlier
    # time it happened at, so it is not part of this check.)
    crew_steps = ("assigned", "assignment_acknowledged", "en_route", "on_scene", "cleared")
    times = [datetime.fromisoformat(evs[steps.index(s)]["at"]) for s in crew_steps]
    assert all(x <= y for x, y in zip(times, times[1:], strict=False)), list(
        zip(crew_steps, times, strict=True))
    r = httpx.get(f"{server}/api/incidents/{inc['id']}/assignments", headers=h)
    mine = next(x for x in r.json()["items"] if x["id"] == aid)
    assert mine["status"] == "cleared"


def test_offline_presses_and_fixes_arrive_once_in_order(
    chromium: Any, server: str, crews: list[dict[str, Any]], accounts: dict[str, Account],
    engine: Engine
) -> None:
    """Offline, the crew presses en route and on scene and moves; back online every press and
    fix is stored exactly once, in order, with its device time."""
    a = crews[0]
    disp = accounts["dispatcher"]
    h = login(server, disp.username, disp.password)
    context, page = phone(chromium, START)
    try:
        sign_in(page, server, a)
        inc = new_incident(server, h, "offline test")
        send(server, h, inc["id"], a["id"])
        page.wait_for_selector(f"[data-testid=crew-reference]:text-is('{inc['reference']}')")
        press(page, "acknowledged")
        context.set_offline(True)
        page.wait_for_selector("[data-testid=crew-conn][data-state=lost]")
        page.click("[data-testid=btn-en_route]")
        moves = [(39.2986, -76.6196), (39.2982, -76.6192)]  # ~55 m each: a plausible drive
        context.set_geolocation({"latitude": moves[0][0], "longitude": moves[0][1],
                                 "accuracy": 8})
        page.wait_for_selector("[data-testid=crew-queue] li[data-kind=fix]")
        time.sleep(1.1)
        page.click("[data-testid=btn-on_scene]")
        context.set_geolocation({"latitude": moves[1][0], "longitude": moves[1][1],
                                 "accuracy": 8})
        page.wait_for_function(
            "() => document.querySelectorAll('[data-testid=crew-queue] li[data-kind=fix]')"
            ".length >= 2")
        queued = int(page.text_content("[data-testid=crew-queued]") or 0)
        assert queued >= 4
        offline_until = time.time()
        time.sleep(1.0)
        context.set_offline(False)
        page.wait_for_selector("[data-testid=crew-conn][data-state=live]")
        wait_queue_empty(page)
        page.wait_for_selector("[data-testid=crew-unit-status][data-status=on_scene]")
    finally:
        context.close()
    evs = events(server, h, inc["id"])
    statuses = [(e["data"]["to"], datetime.fromisoformat(e["at"])) for e in evs
                if e["kind"] == "crew_status" and e["data"].get("unit_id") == a["id"]]
    assert [s for s, _ in statuses] == ["en_route", "on_scene"], statuses
    assert all(at.timestamp() < offline_until for _, at in statuses), statuses
    assert statuses[0][1] < statuses[1][1]
    with engine.connect() as c:
        rows = c.execute(text(
            "SELECT ST_Y(geom), ST_X(geom), fix_time, received_at FROM positions"
            " WHERE unit_id = :u ORDER BY fix_time"), {"u": a["id"]}).all()
    for lat, lng in moves:
        same = [r for r in rows if abs(r[0] - lat) < 1e-6 and abs(r[1] - lng) < 1e-6]
        assert len(same) == 1, rows
        assert same[0][2].timestamp() < offline_until  # the device's fix time, not arrival
    fixes = [(round(r[0], 4), round(r[1], 4)) for r in rows]
    assert fixes.index((round(moves[0][0], 4), round(moves[0][1], 4))) < \
        fixes.index((round(moves[1][0], 4), round(moves[1][1], 4)))


def test_a_crew_sees_and_acts_only_on_its_own_assignment(
    chromium: Any, server: str, crews: list[dict[str, Any]], accounts: dict[str, Account]
) -> None:
    """Crew B, signed in, sees no assignment while A has one, and cannot acknowledge A's; a
    wrong token signs nobody in; bad input is a 4xx, never a 500."""
    a, b = crews
    disp = accounts["dispatcher"]
    h = login(server, disp.username, disp.password)
    inc = new_incident(server, h, "secret notes for crew A only")
    aid = send(server, h, inc["id"], a["id"])
    context, page = phone(chromium, START)
    try:
        page.goto(server + "/crew")
        page.fill("[data-testid=crew-device]", b["device"])
        page.fill("[data-testid=crew-token]", a["token"])
        page.click("[data-testid=crew-submit]")
        page.wait_for_selector("[data-testid=crew-login-error]:not(:empty)")
        sign_in(page, server, b)
        page.wait_for_selector("[data-testid=crew-none]:visible")
        time.sleep(1.0)
        assert page.is_hidden("[data-testid=crew-assignment]")
        assert "secret" not in (page.content())
    finally:
        context.close()
    hb = {"X-Device-Id": b["device"], "X-Device-Token": b["token"]}
    r = httpx.post(f"{server}/api/crew/status", headers=hb,
                   json={"status": "acknowledged", "assignment_id": aid, "key": "x1"})
    assert r.status_code == 404, r.text
    r = httpx.get(f"{server}/api/crew/assignment", headers=hb)
    assert r.json()["assignment"] is None
    wrong = {"X-Device-Id": a["device"], "X-Device-Token": b["token"]}
    assert httpx.get(f"{server}/api/crew/assignment", headers=wrong).status_code == 401
    assert httpx.get(f"{server}/api/crew/assignment").status_code == 401
    ha = {"X-Device-Id": a["device"], "X-Device-Token": a["token"]}
    for bad in ({"status": "flying"}, {"status": "en_route", "t": "yesterday"},
                {"status": "en_route", "key": "k" * 300}, {"status": "acknowledged",
                                                           "assignment_id": -4}, [1, 2], {}):
        r = httpx.post(f"{server}/api/crew/status", headers=ha, json=bad)
        assert 400 <= r.status_code < 500, (bad, r.status_code, r.text)
    r = httpx.get(f"{server}/api/crew/route", headers=ha, params={"lat": 999, "lng": 0})
    assert r.status_code == 422
    r = httpx.post(f"{server}/api/crew/session", json={"device_id": a["device"], "token": "no"})
    assert r.status_code == 401

