"""The console's incident actions over real HTTP: dispositions on closure, notes, lead crew,
per-incident SMS, nearby open incidents and search."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from geodispatch.api.app import create_app
from geodispatch.geo import LatLng
from geodispatch.settings import Settings
from tests.api.conftest import Account
from tests.helpers import login, running_server

#: Away from the other tests' incidents, so "nearby" finds ours.
HERE = LatLng(50.3301, 30.7134)


@pytest.fixture(scope="module")
def api(settings: Settings, engine: Engine, accounts: dict[str, Account]
        ) -> Iterator[tuple[str, dict[str, dict[str, str]]]]:
    app = create_app(settings.model_copy(update={"serve_ingest": False}))
    with running_server(app) as base:
        yield base, {k: login(base, a.username, a.password) for k, a in accounts.items()}


def _register(base: str, h: dict[str, str], p: LatLng = HERE, **kw: Any) -> dict[str, Any]:
    body = {"lat": p.lat, "lng": p.lng, "category": "theft", "caller_phone": "+380671112233",
            "caller_lang": "en", "idempotency_key": uuid.uuid4().hex, **kw}
    r = httpx.post(f"{base}/api/incidents", json=body, headers=h)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def test_dispositions_list(api: tuple[str, dict[str, dict[str, str]]]) -> None:
    """The list offers the local codes first, then all 45 APCO codes with their names."""
    base, h = api
    r = httpx.get(f"{base}/api/incidents/dispositions", headers=h["dispatcher"])
    assert r.status_code == 200
    items = r.json()["dispositions"]
    local = [d for d in items if d["local"]]
    apco = [d for d in items if not d["local"]]
    assert items[: len(local)] == local and len(apco) == 45
    assert {"code": "11", "apco": "11", "apco_name": "Field Interview", "local": False,
            "label": {"en": "Field Interview"}} in apco
    assert all(d["label"]["uk"] and d["apco"] in {a["code"] for a in apco} for d in local)


def test_close_with_unknown_disposition_is_422_with_the_list(
        api: tuple[str, dict[str, dict[str, str]]]) -> None:
    """An unknown code: 422 problem naming the accepted codes; the incident stays open."""
    base, h = api
    inc = _register(base, h["call_taker"])
    r = httpx.post(f"{base}/api/incidents/{inc['id']}/close", json={"disposition": "99"},
                   headers=h["dispatcher"])
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert "99" in problem["detail"] and "01-45" in problem["detail"]
    assert {"01", "45", "DUBL"} <= {a["code"] for a in problem["accepted"]}
    again = httpx.get(f"{base}/api/incidents/{inc['id']}", headers=h["dispatcher"]).json()
    assert again["status"] != "closed"
    r = httpx.post(f"{base}/api/incidents/{inc['id']}/close", json={"disposition": "TELEFON"},
                   headers=h["dispatcher"])
    assert r.status_code == 200 and r.json()["disposition"] == "05"


def test_notes_over_http(api: tuple[str, dict[str, dict[str, str]]]) -> None:
    """Call-taker, dispatcher and supervisor add notes; they come back with the incident, in
    the timeline, and the record verifies. Empty notes and other regions are refused."""
    base, h = api
    inc = _register(base, h["call_taker"])
    url = f"{base}/api/incidents/{inc['id']}/notes"
    for who in ("call_taker", "dispatcher", "supervisor"):
        r = httpx.post(url, json={"text": f"note by {who}"}, headers=h[who])
        assert r.status_code == 201, r.text
        assert r.json()["text"] == f"note by {who}" and r.json()["at"]
    for who in ("analyst", "national"):
        assert httpx.post(url, json={"text": "x"}, headers=h[who]).status_code == 403
    r = httpx.post(url, json={"text": "   "}, headers=h["dispatcher"])
    assert r.status_code == 422 and "text" in r.json()["detail"]
    assert httpx.post(url, json={}, headers=h["dispatcher"]).status_code == 422
    assert httpx.post(url, json={"text": "x"}, headers=h["other_dispatcher"]).status_code == 404
    got = httpx.get(f"{base}/api/incidents/{inc['id']}", headers=h["analyst"]).json()
    assert [n["text"] for n in got["notes"]] == [
        "note by call_taker", "note by dispatcher", "note by supervisor"]
    assert [n["actor"] for n in got["notes"]][0].startswith("call_taker_")
    ev = httpx.get(f"{base}/api/incidents/{inc['id']}/events", headers=h["dispatcher"]).json()
    assert [e["kind"] for e in ev["events"]].count("note") == 3
    v = httpx.get(f"{base}/api/incidents/verify", params={"reference": inc["reference"]},
                  headers=h["supervisor"])
    assert v.status_code == 200 and v.json()["ok"], v.text
