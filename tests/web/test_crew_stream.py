"""The crew push channel (``GET /api/crew/stream``, Server-Sent Events) over real HTTP against a
real uvicorn and PostGIS, and the crew app using it in a phone-sized Chromium."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from tests.api.conftest import Account
from tests.helpers import login, running_server
from tests.web.test_crew_app import START, new_incident, phone, send, sign_in

pytestmark = pytest.mark.browser

Event = dict[str, Any]


@pytest.fixture()
def server(settings: Settings) -> Iterator[str]:
    app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))
    with running_server(app) as base:
        yield base


def device(crew: dict[str, Any]) -> dict[str, str]:
    return {"X-Device-Id": crew["device"], "X-Device-Token": crew["token"]}


class Stream:
    """An SSE client in a thread: each event (``event``, ``id``, ``data`` text) lands in a queue;
    ``status`` is the response status, ``closed`` is set when the server ended the stream."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        self.events: queue.Queue[Event] = queue.Queue()
        self.status: int | None = None
        self.opened = threading.Event()
        self.closed = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=60.0))
        self._thread = threading.Thread(target=self._run, args=(base, headers), daemon=True)
        self._thread.start()
        assert self.opened.wait(10), "the stream did not answer"

    def _run(self, base: str, headers: dict[str, str]) -> None:
        try:
            with self._client.stream("GET", base + "/api/crew/stream", headers=headers) as r:
                self.status = r.status_code
                self.content_type = r.headers.get("content-type", "")
                self.opened.set()
                if r.status_code != 200:
                    r.read()
                    self.body = r.text
                    return
                ev: Event = {}
                for line in r.iter_lines():
                    if not line:
                        if "event" in ev:
                            self.events.put(ev)
                        ev = {}
                    elif not line.startswith(":"):
                        field, _, value = line.partition(":")
                        ev[field] = value.lstrip(" ")
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()
            self.closed.set()

    def next(self, timeout: float) -> Event:
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        self._client.close()


def screen(ev: Event) -> dict[str, Any]:
    import json

    assert ev["event"] == "assignment", ev
    out: dict[str, Any] = json.loads(ev["data"])
    return out


def test_the_stream_pushes_the_crews_own_assignment_and_nobody_elses(
    server: str, crews: list[dict[str, Any]], accounts: dict[str, Account]
) -> None:
    """A's stream starts with A's screen and gets A's new assignment within 1 s; B's stream
    stays silent; nobody opens A's stream without A's own token."""
    a, b = crews
    h = login(server, accounts["dispatcher"].username, accounts["dispatcher"].password)
    sa, sb = Stream(server, device(a)), Stream(server, device(b))
    try:
        assert sa.status == 200 and sa.content_type.startswith("text/event-stream")
        first = screen(sa.next(5))
        assert first["unit"]["id"] == a["id"] and first["assignment"] is None
        assert screen(sb.next(5))["unit"]["id"] == b["id"]
        inc = new_incident(server, h, "stream notes for A")
        aid = send(server, h, inc["id"], a["id"])
        t0 = time.monotonic()
        ev = sa.next(3)
        took = time.monotonic() - t0
        pushed = screen(ev)
        assert took <= 1.0, f"the assignment took {took:.2f} s to reach the stream"
        assert pushed["assignment"]["id"] == aid
        assert pushed["assignment"]["incident"]["notes"] == "stream notes for A"
        assert ev["id"].count(".") == 1
        # The terminal marks it delivered; the stream follows (one screen per change).
        r = httpx.post(f"{server}/api/crew/status", headers=device(a), json={
            "status": "delivered", "assignment_id": aid, "key": f"dlv-{aid}"})
        assert r.status_code == 200 and r.json()["result"] == "applied"
        assert screen(sa.next(3))["assignment"]["delivered_at"] is not None
        with pytest.raises(queue.Empty):
            print(sb.next(1.0))  # B saw nothing of A's call
    finally:
        sa.close()
        sb.close()
    for headers in ({"X-Device-Id": b["device"], "X-Device-Token": a["token"]},
                    {"X-Device-Id": a["device"]}, {},
                    {"X-Device-Id": a["device"], "X-Device-Token": a["token"] + "x"}, h):
        r = httpx.get(f"{server}/api/crew/stream", headers=headers, timeout=5)
        assert r.status_code == 401, (headers.keys(), r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")


def test_a_terminal_resumes_with_last_event_id(
    server: str, crews: list[dict[str, Any]], accounts: dict[str, Account]
) -> None:
    """Reconnecting with the last event id it saw, a terminal gets no repeat of an unchanged
    screen, but the current one when its unit changed meanwhile (or the id is not ours)."""
    a = crews[0]
    h = login(server, accounts["dispatcher"].username, accounts["dispatcher"].password)
    s1 = Stream(server, device(a))
    try:
        last = s1.next(5)["id"]
    finally:
        s1.close()
    s2 = Stream(server, {**device(a), "Last-Event-ID": last})
    try:
        with pytest.raises(queue.Empty):
            print(s2.next(1.0))  # nothing missed, nothing sent
    finally:
        s2.close()
    inc = new_incident(server, h, "while away")
    aid = send(server, h, inc["id"], a["id"])  # made while no stream of A was open
    s3 = Stream(server, {**device(a), "Last-Event-ID": last})
    try:
        caught_up = s3.next(3)
        assert screen(caught_up)["assignment"]["id"] == aid
        assert caught_up["id"] != last
    finally:
        s3.close()
    s4 = Stream(server, {**device(a), "Last-Event-ID": "elsewhere.99999999"})
    try:
        assert screen(s4.next(3))["assignment"]["id"] == aid
    finally:
        s4.close()


@pytest.mark.parametrize("how", ["deactivated", "token_rotated"])
def test_a_revoked_token_loses_the_stream(
    server: str, crews: list[dict[str, Any]], accounts: dict[str, Account], engine: Engine,
    how: str
) -> None:
    """Deactivating the unit, or replacing its token, ends its open stream within about 2 s
    with ``event: revoked``; the old token cannot open it again."""
    a = crews[0]
    s = Stream(server, device(a))
    try:
        s.next(5)
        if how == "deactivated":
            ha = login(server, accounts["admin"].username, accounts["admin"].password)
            r = httpx.post(f"{server}/api/units/{a['id']}/deactivate", headers=ha)
            assert r.status_code == 200, r.text
        else:
            from geodispatch.tracking.models import Unit
            from geodispatch.tracking.service import rotate_token

            with Session(engine) as session, session.begin():
                unit = session.get(Unit, a["id"])
                assert unit is not None
                rotate_token(session=session, unit=unit)
        t0 = time.monotonic()
        ev = s.next(4)
        assert ev["event"] == "revoked", ev
        assert s.closed.wait(2), "the server did not end the stream"
        assert time.monotonic() - t0 <= 2.5
    finally:
        s.close()
    r = httpx.get(f"{server}/api/crew/stream", headers=device(a), timeout=5)
    assert r.status_code == 401


def test_the_crew_app_gets_its_assignment_through_the_stream(
    chromium: Any, server: str, crews: list[dict[str, Any]], accounts: dict[str, Account]
) -> None:
    """On a phone, the assignment arrives pushed within 1 s with no polling at all; it sounds
    (the audio element plays) and vibrates, again until acknowledged, and then stops."""
    a = crews[0]
    h = login(server, accounts["dispatcher"].username, accounts["dispatcher"].password)
    context, page = phone(chromium, START)
    # Record (and still do) what the page asks of the vibration motor and the audio element.
    context.add_init_script("""
        window.__vibrations = [];
        window.__played = [];
        const vib = navigator.vibrate ? navigator.vibrate.bind(navigator) : null;
        navigator.vibrate = (p) => { window.__vibrations.push(p); return vib ? vib(p) : false; };
        const play = HTMLMediaElement.prototype.play;
        HTMLMediaElement.prototype.play = function () {
            window.__played.push(this.id);
            return play.call(this);
        };
    """)
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/api/crew/assignment" in r.url
            else None)
    try:
        sign_in(page, server, a)
        page.wait_for_selector("[data-testid=crew-conn][data-channel=stream]")
        page.wait_for_selector("[data-testid=crew-none]:visible")
        inc = new_incident(server, h, "pushed to the phone")
        send(server, h, inc["id"], a["id"])
        t0 = time.monotonic()
        page.wait_for_selector(f"[data-testid=crew-reference]:text-is('{inc['reference']}')",
                               timeout=3000)
        shown_s = time.monotonic() - t0
        assert shown_s <= 1.0, f"assignment took {shown_s:.2f} s to reach the crew page"
        assert polls == [], polls
        assert page.evaluate("window.gdCrew.pushed") >= 2  # the empty screen, then this one
        page.wait_for_selector("[data-testid=crew-new]:visible")
        assert page.evaluate("window.__played") == ["alert-sound"]
        vib = page.evaluate("window.__vibrations")
        assert vib and vib[0] == [300, 150, 300, 150, 300], vib
        # Not acknowledged: it sounds and vibrates again.
        page.wait_for_function("() => window.__played.length >= 2", timeout=8000)
        page.click("[data-testid=btn-acknowledged]")
        page.wait_for_selector("[data-testid=crew-queued]:text-is('0')")
        page.wait_for_selector("[data-testid=crew-new]", state="hidden")
        played = len(page.evaluate("window.__played"))
        assert page.evaluate("window.__vibrations").count(0) >= 1  # the motor is stopped
        time.sleep(5.5)
        assert len(page.evaluate("window.__played")) == played  # acknowledged: quiet
        assert polls == [], polls
    finally:
        context.close()


def test_the_crew_app_polls_while_the_stream_is_down(
    chromium: Any, server: str, crews: list[dict[str, Any]], accounts: dict[str, Account]
) -> None:
    """With the stream refused, the app falls back to polling and still shows the assignment
    within about a second; the stream is used again as soon as it answers."""
    a = crews[0]
    h = login(server, accounts["dispatcher"].username, accounts["dispatcher"].password)
    context, page = phone(chromium, START)
    blocked = {"on": True}

    def stream_route(route: Any) -> None:
        if blocked["on"]:
            route.abort()
        else:
            route.continue_()

    page.route("**/api/crew/stream", stream_route)
    try:
        sign_in(page, server, a)
        page.wait_for_selector("[data-testid=crew-conn][data-channel=poll]")
        inc = new_incident(server, h, "polled")
        send(server, h, inc["id"], a["id"])
        t0 = time.monotonic()
        page.wait_for_selector(f"[data-testid=crew-reference]:text-is('{inc['reference']}')",
                               timeout=3000)
        assert time.monotonic() - t0 <= 1.5
        blocked["on"] = False
        page.wait_for_selector("[data-testid=crew-conn][data-channel=stream]", timeout=5000)
    finally:
        context.close()
