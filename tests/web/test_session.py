"""A shift-long session in a real browser, with a 6 s token lifetime: the console renews its
token before it runs out, the live feed takes the new token on the same socket (no reconnect)
and an incident registered after the first token expired still arrives on it."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import pytest

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from tests.api.conftest import Account
from tests.helpers import running_server
from tests.web.test_dispatcher_map import SCENE, log_in

pytestmark = pytest.mark.browser

# Counts the sockets the page opens (a reconnect would be a second one).
COUNT_SOCKETS = """
(() => {
  const Real = window.WebSocket;
  window.__sockets = 0;
  window.WebSocket = function (...args) { window.__sockets += 1; return new Real(...args); };
  window.WebSocket.prototype = Real.prototype;
  Object.assign(window.WebSocket,
    { OPEN: Real.OPEN, CLOSED: Real.CLOSED, CONNECTING: Real.CONNECTING });
})();
"""


def test_console_outlives_its_first_token_without_reconnecting(
    page: Any, settings: Settings, accounts: dict[str, Account]
) -> None:
    """Over four token lifetimes the console stays logged in and live on one socket, renews its
    token at least three times (each a new one, kept in sessionStorage), and shows an incident
    registered after its first token expired."""
    page.add_init_script("localStorage.setItem('gd.lang', 'en')")
    page.add_init_script(COUNT_SOCKETS)
    app = create_app(settings.model_copy(update={
        "serve_ingest": False, "tile_url": "", "jwt_ttl_minutes": 0.1,
        "live_incident_poll_s": 0.2}))
    with running_server(app) as base:
        acc = accounts["dispatcher"]
        log_in(page, base, acc)
        first = page.evaluate("window.gd.token")
        # Timed from the first token's own expiry (not from when this test got the page: under
        # load the login is slow, and renewals are scheduled from each token's issue).
        payload = first.split(".")[1]
        expires = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]
        page.wait_for_function("window.gd.sessionUi.refreshes >= 2", timeout=20_000)
        assert time.time() > expires  # past the first token's expiry
        token = page.evaluate("window.gd.token")
        r = httpx.post(f"{base}/api/incidents", headers={"Authorization": f"Bearer {token}"},
                       json={"lat": SCENE[0], "lng": SCENE[1], "category": "theft",
                             "description": f"session test {uuid.uuid4().hex[:8]}"})
        assert r.status_code in (200, 201), r.text
        inc = r.json()
        try:
            page.wait_for_selector(f"[data-testid=queue-item][data-id='{inc['id']}']")
            page.wait_for_function("window.gd.sessionUi.refreshes >= 3", timeout=20_000)
            assert time.time() > expires + 6  # a whole second lifetime past it
            state = page.evaluate(
                "({sockets: window.__sockets, conn: document.querySelector('[data-testid=conn]')"
                ".dataset.state, console: !document.querySelector('#console').hidden,"
                " token: window.gd.token, stored: sessionStorage.getItem('gd.token'),"
                " open: window.gd.ws && window.gd.ws.readyState === 1})")
            assert state["sockets"] == 1
            assert state["conn"] == "live" and state["console"] and state["open"]
            assert state["token"] != first and state["stored"] == state["token"]
            me = httpx.get(f"{base}/api/auth/me",
                           headers={"Authorization": f"Bearer {state['token']}"})
            assert me.json()["username"] == acc.username
        finally:
            token = page.evaluate("window.gd.token")
            page.goto("about:blank")
            httpx.post(f"{base}/api/incidents/{inc['id']}/cancel",
                       headers={"Authorization": f"Bearer {token}"},
                       json={"reason": "browser test done"})
