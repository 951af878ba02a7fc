"""The role matrix: every route of the app x every role, called over real HTTP.

Routes are discovered from the app itself (including routers other domains add), and each one's
policy is read from its ``require_roles`` dependencies. The test then checks three things:

* the policy matches the declared matrix below where one is declared, and every *public* route is
  declared public on purpose (an endpoint that forgot its auth dependency fails here);
* national (read-only) is never allowed to call an unsafe method;
* real requests agree: allowed roles are not refused (no 401/403), other roles get 403,
  anonymous gets 401.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import websockets

from geodispatch.api.app import create_app
from geodispatch.api.policy import iter_routes, route_policy
from geodispatch.api.security import ALL_ROLES
from geodispatch.settings import Settings
from tests.api.conftest import Account
from tests.helpers import running_server

ANON = "anonymous"
EVERY_ROLE = frozenset(ALL_ROLES)
OPS = frozenset({"call_taker", "dispatcher", "supervisor", "admin"})
ANALYTICS = frozenset({"analyst", "supervisor", "admin", "national"})
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}

# Routes anyone may call (documentation, the login itself, the static page).
PUBLIC = {
    ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect"), ("GET", "/redoc"),
    ("POST", "/api/auth/token"), ("GET", "/"), ("GET", "/map"),
    # The crew terminal's pages (its API below authenticates with the unit's device token).
    ("GET", "/crew"), ("GET", "/crew/"), ("GET", "/crew/{name}"),
    # The base map's vector tiles: only the OpenStreetMap extract, drawn by every page.
    ("GET", "/tiles/{z}/{x}/{y}.pbf"), ("GET", "/tiles/metadata.json"),
}
# Routes for trackers: they authenticate with a device token, never a console JWT.
DEVICE = {
    ("GET", "/api/ingest/osmand"), ("POST", "/api/ingest/osmand"),
    ("POST", "/api/ingest/owntracks"), ("POST", "/api/ingest/status"),
    ("POST", "/api/crew/session"), ("GET", "/api/crew/assignment"), ("GET", "/api/crew/route"),
    ("POST", "/api/crew/status"), ("GET", "/api/crew/stream"),
    # (an officer's shift token, from an officer's own sign-in: the crew roster)
    ("POST", "/api/crew/sign-off"), ("POST", "/api/crew/position"),
    # Centre to centre (NENA-STA-024): a centre's Ed25519 signature, never a console JWT.
    ("GET", "/incidents/{incident_id}"), ("POST", "/api/federation/notifications"),
    # Phone systems (PBX webhook, SIP edge, SMS centre's AML): the centre's phone-system token.
    ("POST", "/api/calls/events"), ("POST", "/api/calls/sip"), ("POST", "/api/calls/sip/batch"),
    ("POST", "/api/calls/aml/sms"),
    ("POST", "/api/calls/aml/https"),
}
# The declared matrix: (method, path) -> roles allowed. Routes not listed here must still be
# role-checked (not public) and obey the national-read-only rule.
DECLARED: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/api/auth/me"): EVERY_ROLE,
    # A shift-long session: every role renews its own token (same user and role).
    ("POST", "/api/auth/refresh"): EVERY_ROLE,
    ("GET", "/api/dispatch/limits"): EVERY_ROLE,
    ("GET", "/api/web/config"): EVERY_ROLE,
    ("GET", "/api/crew/roster"): frozenset({"dispatcher", "supervisor", "admin", "national"}),
    ("POST", "/api/crew/roster/{shift_id}/sign-off"): frozenset({"supervisor", "admin"}),
    ("GET", "/api/geocode/search"): EVERY_ROLE,
    ("GET", "/api/geocode/reverse"): EVERY_ROLE,
    ("WS", "/api/live"): frozenset({"call_taker", "dispatcher", "supervisor", "admin", "national"}),
    ("POST", "/api/units"): frozenset({"admin"}),
    ("POST", "/api/incidents"): frozenset({"call_taker", "dispatcher", "supervisor", "admin"}),
    ("POST", "/api/incidents/{incident_id}/assignments"): frozenset(
        {"dispatcher", "supervisor", "admin"}),
    ("POST", "/api/incidents/{incident_id}/recommend"): frozenset(
        {"dispatcher", "supervisor", "admin"}),
    ("GET", "/api/incidents/{incident_id}"): EVERY_ROLE,
    # The console's incident actions.
    ("GET", "/api/incidents/dispositions"): EVERY_ROLE,
    ("POST", "/api/incidents/{incident_id}/notes"): frozenset(
        {"call_taker", "dispatcher", "supervisor"}),
    ("POST", "/api/incidents/{incident_id}/reclassify"): OPS,
    **{("POST", f"/api/incidents/{{incident_id}}/{action}"): frozenset(
        {"dispatcher", "supervisor", "admin"})
       for action in ("close", "cancel", "merge", "reopen", "lead")},
    ("POST", "/api/incidents/{incident_id}/sms"): OPS,
    ("GET", "/api/incidents/{incident_id}/nearby"): frozenset(
        {"call_taker", "dispatcher", "supervisor", "analyst", "admin", "national"}),
    # Analytics (the console's analyst page reads these).
    **{("GET", f"/api/analytics/{name}"): ANALYTICS
       for name in ("cells", "cells.geojson", "summary", "incidents", "heatmap",
                    "charts/{name}.png", "report")},
    ("POST", "/api/analytics/refresh"): frozenset({"analyst", "supervisor", "admin"}),
    # The supervisor's board: supervisors, admins and the national centre (read-only); not
    # call-takers, dispatchers or analysts.
    ("GET", "/api/supervisor/board"): frozenset({"supervisor", "admin", "national"}),
}
# Unsafe routes national may call: only the token refresh, which changes nothing recorded
# (national is read-only). Login is public, not "national".
NATIONAL_WRITES: set[tuple[str, str]] = {("POST", "/api/auth/refresh")}

_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")
DUMMY_ID = "987654321"


def _discover(app: Any) -> list[tuple[str, str, Any]]:
    """(method, path template, policy) for every HTTP and WebSocket route."""
    out = []
    for route in iter_routes(app.routes):
        path = getattr(route, "path_format", None) or getattr(route, "path", None)
        if not path:
            continue
        policy = route_policy(route)
        methods = getattr(route, "methods", None)
        if methods is None:
            if policy is not None and type(route).__name__.endswith("WebSocketRoute"):
                out.append(("WS", path, policy))
            continue  # mounts (static files)
        for m in sorted(methods - {"HEAD", "OPTIONS"}):
            out.append((m, path, policy))
    return out


def _allowed(method: str, path: str, policy: Any) -> frozenset[str]:
    if (method, path) in PUBLIC:
        return EVERY_ROLE | {ANON}
    if (method, path) in DEVICE:
        return frozenset()
    return frozenset(policy.roles)


@pytest.fixture(scope="module")
def app_and_routes(settings: Settings) -> tuple[Any, list[tuple[str, str, Any]]]:
    app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))
    return app, _discover(app)


def test_every_route_has_a_deliberate_policy(app_and_routes: tuple[Any, list[Any]]) -> None:
    """Public routes are declared public; declared roles match the code; national never writes."""
    _, routes = app_and_routes
    assert len(routes) >= 5
    problems = []
    for method, path, policy in routes:
        key = (method, path)
        if policy is None:
            if key in PUBLIC:
                continue
            problems.append(f"{method} {path}: no dependant to read a policy from")
            continue
        if policy.public and key not in PUBLIC and key not in DEVICE:
            problems.append(f"{method} {path}: public but not declared public")
        if key in DECLARED and frozenset(policy.roles) != DECLARED[key]:
            problems.append(f"{method} {path}: roles {sorted(policy.roles)} != declared "
                            f"{sorted(DECLARED[key])}")
        if method in UNSAFE and "national" in policy.roles and key not in NATIONAL_WRITES:
            problems.append(f"{method} {path}: national is read-only but may call it")
    assert not problems, "\n".join(problems)


def _tokens(base: str, accounts: dict[str, Account]) -> dict[str, str]:
    out = {}
    for role in ALL_ROLES:
        a = accounts[role]
        r = httpx.post(f"{base}/api/auth/token",
                       data={"username": a.username, "password": a.password})
        r.raise_for_status()
        out[role] = r.json()["access_token"]
    return out


async def _ws_outcome(url: str) -> str:
    """'allowed' when the snapshot arrives, else the close code."""
    try:
        async with websockets.connect(url, open_timeout=10) as ws:
            if "token=" not in url:
                await ws.send("{}")  # an anonymous client has no token to offer
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            return "allowed" if msg.get("type") == "snapshot" else f"unexpected {msg}"
    except websockets.ConnectionClosed as exc:
        return str(exc.rcvd.code if exc.rcvd else "closed")
    except TimeoutError:
        return "timeout"


@dataclass
class Sweep:
    """Outcome of calling every route as every role."""

    refusals: list[str] = field(default_factory=list)  # wrong allow/refuse decisions
    crashes: list[str] = field(default_factory=list)  # 500s and dropped connections
    calls: int = 0


def _request(http: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return http.request(method, url, **kwargs)
    except httpx.TransportError:
        # uvicorn drops a keep-alive connection after an unhandled error: retry once, fresh.
        return httpx.request(method, str(http.base_url.join(url)), timeout=60, **kwargs)


@pytest.fixture(scope="module")
def sweep(app_and_routes: tuple[Any, list[Any]], accounts: dict[str, Account]) -> Sweep:
    app, routes = app_and_routes
    out = Sweep()
    with running_server(app) as base, httpx.Client(base_url=base, timeout=60) as http:
        tokens = _tokens(base, accounts)
        for method, path, policy in routes:
            allowed = _allowed(method, path, policy)
            url = _PARAM.sub(DUMMY_ID, path)
            for who in (*ALL_ROLES, ANON):
                out.calls += 1
                token = tokens.get(who)
                if method == "WS":
                    query = f"?token={token}" if token else ""
                    ws_url = base.replace("http", "ws", 1) + url + query
                    outcome = asyncio.run(_ws_outcome(ws_url))
                    if (outcome == "allowed") != (who in allowed):
                        out.refusals.append(f"WS {path} as {who}: {outcome}")
                    continue
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                kwargs: dict[str, Any] = {"headers": headers}
                if method in UNSAFE and (method, path) != ("POST", "/api/auth/token"):
                    kwargs["json"] = {}
                try:
                    r = _request(http, method, url, **kwargs)
                except httpx.TransportError as exc:
                    out.crashes.append(f"{method} {path} as {who}: connection failed ({exc!r})")
                    continue
                refused = r.status_code in (401, 403)
                if r.status_code == 500:
                    out.crashes.append(f"{method} {path} as {who}: {r.text[:160]}")
                if who in allowed:
                    if refused:
                        out.refusals.append(
                            f"{method} {path} as {who}: refused {r.status_code} {r.text[:120]}")
                elif (method, path) in DEVICE:
                    if r.status_code < 400:
                        out.refusals.append(f"{method} {path} as {who}: a console token fed a "
                                            f"device endpoint ({r.status_code})")
                else:
                    want = 401 if who == ANON else 403
                    if r.status_code != want:
                        out.refusals.append(
                            f"{method} {path} as {who}: {r.status_code}, want {want}")
                    elif not r.headers.get("content-type", "").startswith(
                            "application/problem+json"):
                        out.refusals.append(f"{method} {path} as {who}: refusal is not a problem")
    return out


def test_role_matrix_over_http(sweep: Sweep) -> None:
    """Each route x each role over real HTTP: allowed roles get through, others get 401/403."""
    assert sweep.calls > 0
    assert not sweep.refusals, f"{len(sweep.refusals)} role-matrix failures:\n" + "\n".join(
        sweep.refusals)


def test_no_route_crashes_on_empty_input(sweep: Sweep) -> None:
    """The same sweep (dummy ids, empty bodies, default parameters) never produces a 500."""
    assert not sweep.crashes, f"{len(sweep.crashes)} crashes:\n" + "\n".join(sweep.crashes)
