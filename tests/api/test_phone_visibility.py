"""Caller phone numbers: visible to call-takers, dispatchers and supervisors of the incident's
region only; never to analysts or the national centre, on any GET endpoint of the API."""

from __future__ import annotations

import re
from typing import Any

import httpx

from geodispatch.api.app import create_app
from geodispatch.api.policy import iter_routes
from geodispatch.settings import Settings
from tests.api.conftest import Account
from tests.helpers import login, running_server

PHONE = "+380671112233"
PHONE_DIGITS = "671112233"  # however it is formatted, these digits must not leak
KYIV = (50.4501, 30.5234)
_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")


def _get_routes(app: Any) -> list[str]:
    out = []
    for r in iter_routes(app.routes):
        path = getattr(r, "path_format", "")
        if "GET" in (getattr(r, "methods", None) or ()) and path.startswith("/api/"):
            out.append(path)
    return out


def _fill(path: str, incident: dict[str, Any]) -> str:
    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if "reference" in name or name == "ref":
            return str(incident.get("reference", incident["id"]))
        if "incident" in name or name == "id":
            return str(incident["id"])
        return "987654321"
    return _PARAM.sub(value, path)


def test_phone_visible_only_to_regional_operations(
    settings: Settings, accounts: dict[str, Account]
) -> None:
    """Register a call with a phone number, then read every GET endpoint as every role."""
    app = create_app(settings.model_copy(update={"serve_ingest": False}))
    routes = _get_routes(app)
    assert "/api/incidents/{incident_id}" in routes
    with running_server(app) as base:
        ct = login(base, accounts["call_taker"].username, accounts["call_taker"].password)
        r = httpx.post(f"{base}/api/incidents", headers=ct, json={
            "lat": KYIV[0], "lng": KYIV[1], "category": "theft", "caller_phone": PHONE,
            "description": "phone visibility test"})
        assert r.status_code in (200, 201), r.text
        incident = r.json()
        detail = f"{base}/api/incidents/{incident['id']}"
        for role in ("call_taker", "dispatcher", "supervisor"):
            a = accounts[role]
            body = httpx.get(detail, headers=login(base, a.username, a.password)).text
            assert PHONE_DIGITS in body, f"{role} of the region must see the caller's phone"
        other = accounts["other_dispatcher"]
        r = httpx.get(detail, headers=login(base, other.username, other.password))
        assert PHONE_DIGITS not in r.text, "a dispatcher of another region saw the phone"
        leaks = []
        for role in ("analyst", "national"):
            a = accounts[role]
            h = login(base, a.username, a.password)
            for path in routes:
                r = httpx.get(base + _fill(path, incident), headers=h, timeout=60)
                if PHONE_DIGITS in r.text:
                    leaks.append(f"{role}: GET {path} ({r.status_code})")
        assert not leaks, "caller phone leaked:\n" + "\n".join(leaks)
