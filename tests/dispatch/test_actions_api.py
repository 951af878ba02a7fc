"""The console's incident actions over real HTTP: dispositions on closure, notes, lead crew,
per-incident SMS, nearby open incidents and search."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

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


def _crews(engine: Engine, n: int) -> list[int]:
    from sqlalchemy.orm import Session

    from tests.dispatch.conftest import add_crew

    with Session(engine) as s, s.begin():
        return [add_crew(s, HERE) for _ in range(n)]


def test_lead_crew(api: tuple[str, dict[str, dict[str, str]]], engine: Engine) -> None:
    """The lead moves to another crew on the incident; a crew not on it cannot lead."""
    base, h = api
    inc = _register(base, h["call_taker"])
    one, two, spare = _crews(engine, 3)
    for uid in (one, two):
        r = httpx.post(f"{base}/api/incidents/{inc['id']}/assignments",
                       json={"unit_id": uid, "override_reason": "nearest by radio"},
                       headers=h["dispatcher"])
        assert r.status_code == 201, r.text
    r = httpx.post(f"{base}/api/incidents/{inc['id']}/lead", json={"unit_id": two},
                   headers=h["dispatcher"])
    assert r.status_code == 200, r.text
    leads = {a["unit_id"]: a["is_lead"] for a in r.json()["assignments"]}
    assert leads == {one: False, two: True}
    r = httpx.post(f"{base}/api/incidents/{inc['id']}/lead", json={"unit_id": spare},
                   headers=h["dispatcher"])
    assert r.status_code == 422 and "no active assignment" in r.json()["detail"]
    assert httpx.post(f"{base}/api/incidents/{inc['id']}/lead", json={"unit_id": one},
                      headers=h["call_taker"]).status_code == 403
    ev = httpx.get(f"{base}/api/incidents/{inc['id']}/events", headers=h["dispatcher"]).json()
    [changed] = [e for e in ev["events"] if e["kind"] == "lead_changed"]
    assert changed["data"]["unit_id"] == two and changed["data"]["previous_unit_id"] == one
    assert changed["data"]["call_sign"] and changed["data"]["previous_call_sign"]


def test_do_not_sms(api: tuple[str, dict[str, dict[str, str]]]) -> None:
    """Switching SMS off suppresses the queued messages and stops new ones; on again allows."""
    base, h = api
    inc = _register(base, h["call_taker"])
    sms = f"{base}/api/incidents/{inc['id']}/sms"
    r = httpx.post(sms, json={"enabled": False, "reason": "caller asked"},
                   headers=h["call_taker"])
    assert r.status_code == 200 and r.json()["sms_opt_out"] is True
    # (the registration message may have gone out already: the worker runs in the app)
    [registered] = httpx.get(sms, headers=h["dispatcher"]).json()["items"]
    assert registered["template"] == "registered" and registered["status"] != "pending"
    r = httpx.post(f"{base}/api/incidents/{inc['id']}/close", json={"disposition": "02"},
                   headers=h["dispatcher"])
    assert r.status_code == 200
    assert len(httpx.get(sms, headers=h["dispatcher"]).json()["items"]) == 1  # no "closed"
    assert httpx.post(sms, json={"enabled": True}, headers=h["analyst"]).status_code == 403
    r = httpx.post(sms, json={"enabled": True}, headers=h["supervisor"])
    assert r.status_code == 200 and r.json()["sms_opt_out"] is False
    kinds = [e["kind"] for e in httpx.get(f"{base}/api/incidents/{inc['id']}/events",
                                          headers=h["dispatcher"]).json()["events"]]
    assert "sms_disabled" in kinds and "sms_enabled" in kinds
    assert httpx.post(sms, json={"enabled": "maybe"}, headers=h["dispatcher"]).status_code == 422


def test_nearby_open_incidents(api: tuple[str, dict[str, dict[str, str]]]) -> None:
    """Merge candidates: open incidents close by or from the same number, nearest first; not
    itself, not closed ones, not far ones from another number."""
    base, h = api
    here = LatLng(50.3001, 30.6534)  # no other test registers here
    me = _register(base, h["call_taker"], here, caller_phone="+380501110001")
    near = _register(base, h["call_taker"], LatLng(here.lat + 0.001, here.lng),
                     caller_phone="+380501110002")
    nearer = _register(base, h["call_taker"], LatLng(here.lat + 0.0004, here.lng),
                       caller_phone="+380501110003")
    far_same = _register(base, h["call_taker"], LatLng(here.lat + 0.2, here.lng),
                         caller_phone="+380501110001")
    far_other = _register(base, h["call_taker"], LatLng(here.lat + 0.2, here.lng + 0.01),
                          caller_phone="+380501110004")
    closed = _register(base, h["call_taker"], LatLng(here.lat + 0.0002, here.lng),
                       caller_phone="+380501110005")
    httpx.post(f"{base}/api/incidents/{closed['id']}/close", json={"disposition": "02"},
               headers=h["dispatcher"]).raise_for_status()
    r = httpx.get(f"{base}/api/incidents/{me['id']}/nearby", params={"radius_m": 500},
                  headers=h["dispatcher"])
    assert r.status_code == 200, r.text
    ids = [i["id"] for i in r.json()["items"]]
    assert ids[:3] == [far_same["id"], nearer["id"], near["id"]]
    assert me["id"] not in ids and closed["id"] not in ids and far_other["id"] not in ids
    first = r.json()["items"][1]
    assert first["reference"] == nearer["reference"] and 30 < first["distance_m"] < 60
    assert httpx.get(f"{base}/api/incidents/{me['id']}/nearby", params={"radius_m": 0},
                     headers=h["dispatcher"]).status_code == 422
    assert httpx.get(f"{base}/api/incidents/{me['id']}/nearby",
                     headers=h["other_dispatcher"]).status_code == 404


def test_search(api: tuple[str, dict[str, dict[str, str]]], engine: Engine) -> None:
    """Search by reference, address, crew call sign and (for phone roles) number; filters by
    status (closed included), priority, category, zone and time; bad filters are 422s."""
    base, h = api
    tag = uuid.uuid4().hex[:6]
    a = _register(base, h["call_taker"], address=f"вулиця Пошукова {tag}, 5",
                  caller_phone="+380509876543")
    b = _register(base, h["call_taker"], category="robbery", description="second")
    [uid] = _crews(engine, 1)
    with engine.connect() as c:
        call_sign = c.execute(text("SELECT call_sign FROM units WHERE id = :u"),
                              {"u": uid}).scalar_one()
    httpx.post(f"{base}/api/incidents/{b['id']}/assignments",
               json={"unit_id": uid, "override_reason": "by radio"},
               headers=h["dispatcher"]).raise_for_status()
    httpx.post(f"{base}/api/incidents/{a['id']}/close", json={"disposition": "01"},
               headers=h["dispatcher"]).raise_for_status()

    def ids(who: str = "dispatcher", **params: Any) -> list[int]:
        r = httpx.get(f"{base}/api/incidents", params=params, headers=h[who])
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    assert ids(q=a["reference"]) == [a["id"]]
    assert ids(q=f"пошукова {tag}") == [a["id"]]  # address, case-insensitive
    assert ids(q=call_sign.lower()) == [b["id"]]
    assert a["id"] in ids(q="9876543")  # the caller's number, for a dispatcher
    assert a["id"] not in ids("analyst", q="9876543")  # an analyst never matches a number
    assert a["id"] in ids(status="closed") and b["id"] not in ids(status="closed")
    assert b["id"] in ids(status="assigned,queued")
    assert b["id"] in ids(category="robbery", priority="1")
    assert b["id"] not in ids(category="robbery", priority="3")
    assert ids(q="%") == ids(q="%", limit=1000)  # a literal %, not a wildcard
    received = a["received_at"]
    assert a["id"] in ids(**{"from": received, "to": received})
    assert a["id"] not in ids(**{"from": "2020-01-01T00:00:00+00:00",
                                 "to": "2020-01-02T00:00:00+00:00"})
    assert ids("other_dispatcher", q=a["reference"]) == []  # another region
    for bad in ({"status": "done"}, {"priority": "7"}, {"priority": "x"},
                {"category": "nonsense"}, {"zone": "NO-SUCH-ZONE"},
                {"from": "2026-12-02T00:00:00+00:00", "to": "2026-12-01T00:00:00+00:00"},
                {"from": "2026-12-01T00:00:00"}):
        r = httpx.get(f"{base}/api/incidents", params=bad, headers=h["dispatcher"])
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["detail"]
