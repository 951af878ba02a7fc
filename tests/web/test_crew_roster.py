"""The crew roster over real HTTP against a real uvicorn and PostGIS, and in a phone-sized
Chromium: an officer's own sign-in bound to a unit, the supervisor's view and sign-off, and an
officer's access ending at once with the shift."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from geodispatch.tracking.service import create_unit
from geodispatch.users.service import upsert_user
from tests.api.conftest import REGION, Account
from tests.helpers import login, running_server
from tests.web.test_crew_app import START, new_incident, phone, send
from tests.web.test_crew_stream import Stream, screen

pytestmark = pytest.mark.browser


@pytest.fixture()
def server(settings: Settings) -> Iterator[str]:
    app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))
    with running_server(app) as base:
        yield base


@pytest.fixture()
def cars(engine: Engine) -> Iterator[list[dict[str, Any]]]:
    """Two available units and two officers of our region. A roster is part of the signed
    record, which is never deleted: afterwards the units and officers are only deactivated."""
    tag = uuid.uuid4().hex[:5].upper()
    out: list[dict[str, Any]] = []
    with Session(engine) as s, s.begin():
        for k in range(2):
            unit, token = create_unit(session=s, call_sign=f"R{tag}{k}", kind="patrol_car",
                                      capabilities=["patrol"], region=REGION,
                                      status="available")
            name = f"officer_{tag.lower()}{k}"
            upsert_user(session=s, username=name, password="pw-" + name, role="officer",
                        region=REGION, full_name=f"Officer {k} {tag}")
            out.append({"id": unit.id, "call_sign": unit.call_sign, "device": unit.device_id,
                        "token": token, "officer": name, "password": "pw-" + name,
                        "full_name": f"Officer {k} {tag}"})
    yield out
    with Session(engine) as s, s.begin():
        s.execute(text("UPDATE units SET active = false, status = 'off_duty' "
                       "WHERE id = ANY(:ids)"), {"ids": [c["id"] for c in out]})
        s.execute(text("UPDATE users SET active = false WHERE username = ANY(:u)"),
                  {"u": [c["officer"] for c in out]})


def sign_on(base: str, car: dict[str, Any], call_sign: str | None = None) -> dict[str, Any]:
    r = httpx.post(f"{base}/api/crew/session", json={
        "username": car["officer"], "password": car["password"],
        "call_sign": call_sign or car["call_sign"]})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def shift_headers(body: dict[str, Any]) -> dict[str, str]:
    return {"X-Crew-Shift": body["shift"]["token"]}


def roster_of(base: str, h: dict[str, str]) -> dict[int, dict[str, Any]]:
    r = httpx.get(f"{base}/api/crew/roster", headers=h)
    assert r.status_code == 200, r.text
    return {u["unit_id"]: u for u in r.json()["units"]}


def test_a_supervisor_sees_the_roster_and_signs_an_officer_off(
    server: str, cars: list[dict[str, Any]], accounts: dict[str, Account], engine: Engine
) -> None:
    """The roster shows the officer in the car; the supervisor's sign-off ends the officer's
    open stream at once (``revoked``) and the next request is 401; both steps are events of the
    unit's record."""
    a = cars[0]
    on = sign_on(server, a)
    assert on["unit"]["call_sign"] == a["call_sign"]
    assert on["shift"]["username"] == a["officer"] and "token" in on["shift"]
    disp = login(server, accounts["dispatcher"].username, accounts["dispatcher"].password)
    sup = login(server, accounts["supervisor"].username, accounts["supervisor"].password)
    ct = login(server, accounts["call_taker"].username, accounts["call_taker"].password)
    seen = roster_of(server, disp)[a["id"]]
    assert [(s["username"], s["full_name"]) for s in seen["on_shift"]] == [
        (a["officer"], a["full_name"])]
    assert httpx.get(f"{server}/api/crew/roster", headers=ct).status_code == 403
    assert httpx.post(f"{server}/api/crew/roster/{on['shift']['shift_id']}/sign-off",
                      headers=disp, json={}).status_code == 403
    # An officer's own password opens no console.
    r = httpx.post(f"{server}/api/auth/token",
                   data={"username": a["officer"], "password": a["password"]})
    assert r.status_code == 403, r.text

    h = shift_headers(on)
    assert httpx.get(f"{server}/api/crew/assignment", headers=h).json()["unit"]["id"] == a["id"]
    stream = Stream(server, h)
    try:
        assert stream.status == 200
        assert screen(stream.next(5))["unit"]["id"] == a["id"]
        r = httpx.post(f"{server}/api/crew/roster/{on['shift']['shift_id']}/sign-off",
                       headers=sup, json={"reason": "left the car"})
        assert r.status_code == 200, r.text
        t0 = time.monotonic()
        ev = stream.next(3)
        assert ev["event"] == "revoked" and '"signed_off"' in ev["data"], ev
        assert stream.closed.wait(2), "the server did not end the stream"
        assert time.monotonic() - t0 <= 1.0, "the stream outlived the sign-off by over 1 s"
    finally:
        stream.close()
    for path in ("/api/crew/assignment", "/api/crew/stream"):
        r = httpx.get(server + path, headers=h, timeout=5)
        assert r.status_code == 401, (path, r.status_code)
    r = httpx.post(f"{server}/api/crew/status", headers=h, json={"status": "break"})
    assert r.status_code == 401
    assert a["id"] not in roster_of(server, disp)
    again = httpx.post(f"{server}/api/crew/roster/{on['shift']['shift_id']}/sign-off",
                       headers=sup, json={})
    assert again.status_code == 409
    with Session(engine) as s:
        rows = s.execute(text("SELECT kind, actor, data->>'reason' FROM incident_events "
                              "WHERE unit_id = :u ORDER BY incident_seq"), {"u": a["id"]}).all()
    assert [tuple(r) for r in rows] == [("crew_signed_on", a["officer"], None),
                                        ("crew_signed_off", accounts["supervisor"].username,
                                         "left the car")]


def test_an_officer_sees_and_acts_only_on_their_own_crews_assignment(
    server: str, cars: list[dict[str, Any]], accounts: dict[str, Account], engine: Engine
) -> None:
    """Signed on to A, an officer never sees B's assignment and cannot acknowledge it; after
    signing off on the terminal, the token opens nothing."""
    a, b = cars
    disp = login(server, accounts["dispatcher"].username, accounts["dispatcher"].password)
    on = sign_on(server, a)
    h = shift_headers(on)
    stream = Stream(server, h)
    try:
        assert screen(stream.next(5))["assignment"] is None
        inc = new_incident(server, disp, "B's call only")
        bid = send(server, disp, inc["id"], b["id"])
        assert httpx.get(f"{server}/api/crew/assignment", headers=h).json()["assignment"] is None
        r = httpx.get(f"{server}/api/crew/route", headers=h,
                      params={"lat": START[0], "lng": START[1]})
        assert r.status_code == 404
        r = httpx.post(f"{server}/api/crew/status", headers=h, json={
            "status": "acknowledged", "assignment_id": bid, "key": uuid.uuid4().hex})
        assert r.status_code == 404 and "has no assignment" in r.json()["detail"], r.text
        with pytest.raises(Exception):  # noqa: B017 - queue.Empty: nothing of B's call
            stream.next(1.0)
    finally:
        stream.close()
    with Session(engine) as s:
        ack = s.execute(text("SELECT acknowledged_at FROM assignments WHERE id = :i"),
                        {"i": bid}).scalar()
    assert ack is None, "A's officer acknowledged B's assignment"
    # The officer's GPS goes through the tracker ingest as A's fix.
    r = httpx.post(f"{server}/api/crew/position", headers=h, params={
        "lat": START[0], "lon": START[1], "timestamp": int(time.time()), "accuracy": 6})
    assert r.status_code == 200 and r.json()["stored"] == 1, r.text
    with Session(engine) as s:
        latest = s.execute(text("SELECT unit_id FROM unit_latest WHERE unit_id = ANY(:ids)"),
                           {"ids": [a["id"], b["id"]]}).scalars().all()
    assert latest == [a["id"]]
    r = httpx.post(f"{server}/api/crew/sign-off", headers=h)
    assert r.status_code == 200 and r.json()["signed_off"]["signed_off_by"] == a["officer"]
    for call in (lambda: httpx.get(f"{server}/api/crew/assignment", headers=h),
                 lambda: httpx.post(f"{server}/api/crew/position", headers=h,
                                    params={"lat": START[0], "lon": START[1]})):
        assert call().status_code == 401


def test_an_officer_signs_in_on_the_phone_and_is_signed_off_by_a_supervisor(
    chromium: Any, server: str, cars: list[dict[str, Any]], accounts: dict[str, Account],
    engine: Engine
) -> None:
    """In the app: the officer's sign-in shows the car and the officer's name, the assignment
    arrives, GPS is stored as the car's; the supervisor's sign-off returns the phone to the
    sign-in screen with the reason within 2 s."""
    a = cars[0]
    disp = login(server, accounts["dispatcher"].username, accounts["dispatcher"].password)
    sup = login(server, accounts["supervisor"].username, accounts["supervisor"].password)
    context, page = phone(chromium, START)
    try:
        page.goto(server + "/crew")
        assert page.text_content("[data-testid=mode-officer]") == "Officer"  # en-GB phone
        page.click("[data-testid=mode-officer]")
        page.fill("[data-testid=officer-username]", a["officer"])
        page.fill("[data-testid=officer-password]", "wrong")
        page.fill("[data-testid=officer-callsign]", a["call_sign"])
        page.click("[data-testid=officer-submit]")
        page.wait_for_selector("[data-testid=officer-login-error]:has-text('Wrong username')")
        page.fill("[data-testid=officer-password]", a["password"])
        page.click("[data-testid=officer-submit]")
        page.wait_for_selector("[data-testid=crew-conn][data-state=live]")
        page.wait_for_selector(f"[data-testid=crew-callsign]:text-is('{a['call_sign']}')")
        assert page.text_content("[data-testid=crew-officer]") == a["full_name"]
        inc = new_incident(server, disp, "officer's first call")
        send(server, disp, inc["id"], a["id"])
        page.wait_for_selector(f"[data-testid=crew-reference]:text-is('{inc['reference']}')",
                               timeout=3000)
        deadline = time.monotonic() + 10
        while True:
            with Session(engine) as s:
                fixed = s.execute(text("SELECT count(*) FROM unit_latest WHERE unit_id = :u"),
                                  {"u": a["id"]}).scalar()
            if fixed or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert fixed == 1, "the phone's GPS fix was not stored as the car's"
        shift_id = roster_of(server, sup)[a["id"]]["on_shift"][0]["shift_id"]
        r = httpx.post(f"{server}/api/crew/roster/{shift_id}/sign-off", headers=sup, json={})
        assert r.status_code == 200
        page.wait_for_selector("[data-testid=crew-login]:visible", timeout=2000)
        assert page.is_visible("[data-testid=officer-username]")
        assert "signed off" in (page.text_content("[data-testid=officer-login-error]") or "")
    finally:
        context.close()


def test_presses_queued_for_one_car_are_never_sent_as_anothers(
    chromium: Any, server: str, cars: list[dict[str, Any]], accounts: dict[str, Account],
    engine: Engine
) -> None:
    """Offline, an officer on car A presses "break"; signed off meanwhile, the phone is signed
    in as car B: the queued press is dropped, never applied to B."""
    a, b = cars
    sup = login(server, accounts["supervisor"].username, accounts["supervisor"].password)
    context, page = phone(chromium, START)
    try:
        page.goto(server + "/crew")
        page.click("[data-testid=mode-officer]")
        page.fill("[data-testid=officer-username]", a["officer"])
        page.fill("[data-testid=officer-password]", a["password"])
        page.fill("[data-testid=officer-callsign]", a["call_sign"])
        page.click("[data-testid=officer-submit]")
        page.wait_for_selector("[data-testid=crew-conn][data-state=live]")
        page.wait_for_selector("[data-testid=crew-queued]:text-is('0')")
        context.set_offline(True)
        page.click("[data-testid=btn-break]")
        page.wait_for_selector("[data-testid=crew-queued]:not(:text-is('0'))")
        shift_id = roster_of(server, sup)[a["id"]]["on_shift"][0]["shift_id"]
        r = httpx.post(f"{server}/api/crew/roster/{shift_id}/sign-off", headers=sup, json={})
        assert r.status_code == 200
        context.set_offline(False)
        page.wait_for_selector("[data-testid=crew-login]:visible", timeout=10_000)
        page.click("[data-testid=mode-device]")
        page.fill("[data-testid=crew-device]", b["device"])
        page.fill("[data-testid=crew-token]", b["token"])
        page.click("[data-testid=crew-submit]")
        page.wait_for_selector(f"[data-testid=crew-callsign]:text-is('{b['call_sign']}')")
        page.wait_for_selector("[data-testid=crew-queued]:text-is('0')", timeout=10_000)
        assert any(x["result"] == "other_unit" for x in page.evaluate("window.gdCrew.sent"))
    finally:
        context.close()
    with Session(engine) as s:
        st = dict(s.execute(text("SELECT id, status FROM units WHERE id = ANY(:i)"),
                            {"i": [a["id"], b["id"]]}).all())
    assert st[b["id"]] == "available", "A's queued press was applied to B"
    assert st[a["id"]] == "available"
