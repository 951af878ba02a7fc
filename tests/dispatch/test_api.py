"""The HTTP API end to end under uvicorn: register, recommend, assign, status, close, verify."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine, delete, text
from sqlalchemy.orm import Session

from geodispatch.api.app import create_app
from geodispatch.geo import LatLng
from geodispatch.settings import Settings
from geodispatch.users.models import User
from geodispatch.users.service import upsert_user
from tests.dispatch.conftest import add_crew
from tests.helpers import login, running_server

PW = "correct horse battery"
#: Far from the other tests' crews, so the recommendation's top entries are ours.
KYIV = LatLng(50.2101, 30.9034)


@pytest.fixture(scope="module")
def users(engine: Engine) -> Iterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:6]
    roles = {"call_taker": ("call_taker", "KV"), "dispatcher": ("dispatcher", "KV"),
             "supervisor": ("supervisor", "KV"), "national": ("national", None),
             "analyst": ("analyst", "KV"), "other": ("dispatcher", "LV")}
    names = {k: f"dsp_{k}_{tag}" for k in roles}
    with Session(engine) as s, s.begin():
        for k, (role, region) in roles.items():
            upsert_user(session=s, username=names[k], password=PW, role=role, region=region)
    yield names
    with Session(engine) as s, s.begin():
        s.execute(delete(User).where(User.username.in_(list(names.values()))))


def test_dispatch_over_http(settings: Settings, engine: Engine, users: dict[str, str],
                            tmp_path: object) -> None:
    """A call goes from registration to closure through the API; the log verifies."""
    with Session(engine) as s, s.begin():
        uid = add_crew(s, KYIV)
    app = create_app(settings.model_copy(update={"serve_ingest": False}))
    with running_server(app) as base:
        h = {k: login(base, v, PW) for k, v in users.items()}
        key = uuid.uuid4().hex
        body = {"lat": KYIV.lat, "lng": KYIV.lng, "category": "theft",
                "caller_phone": "+380671112233", "idempotency_key": key, "caller_lang": "en"}
        r = httpx.post(f"{base}/api/incidents", json=body, headers=h["call_taker"])
        assert r.status_code == 201, r.text
        inc = r.json()
        again = httpx.post(f"{base}/api/incidents", json=body, headers=h["call_taker"])
        assert again.status_code == 200 and again.json()["id"] == inc["id"]
        assert httpx.post(f"{base}/api/incidents", json=body,
                          headers=h["national"]).status_code == 403
        # A number that is not a phone number still registers the call: kept, flagged, no SMS.
        r = httpx.post(f"{base}/api/incidents", json={**body, "caller_phone": "12",
                                                      "idempotency_key": None},
                       headers=h["call_taker"])
        assert r.status_code == 201 and "not a" in " ".join(r.json()["warnings"])
        odd = r.json()["id"]
        assert httpx.get(f"{base}/api/incidents/{odd}",
                         headers=h["dispatcher"]).json()["caller_phone"] == "12"
        assert httpx.post(f"{base}/api/incidents", json={}, headers=h["call_taker"]
                          ).status_code == 422  # nothing at all to register
        iid = inc["id"]
        detail = httpx.get(f"{base}/api/incidents/{iid}", headers=h["dispatcher"]).json()
        assert detail["caller_phone"] == "+380671112233"
        assert "caller_phone" not in httpx.get(f"{base}/api/incidents/{iid}",
                                               headers=h["analyst"]).json()
        assert httpx.get(f"{base}/api/incidents/{iid}", headers=h["other"]).status_code == 404
        reco = httpx.post(f"{base}/api/incidents/{iid}/recommend", json={"top_n": 50},
                          headers=h["dispatcher"])
        assert reco.status_code == 200, reco.text
        assert uid in [c["unit_id"] for c in reco.json()["ranked"]]
        r = httpx.post(f"{base}/api/incidents/{iid}/assignments", json={"unit_id": uid},
                       headers=h["dispatcher"])
        assert r.status_code == 201, r.text
        r = httpx.post(f"{base}/api/dispatch/units/{uid}/status", json={"status": "en_route"},
                       headers=h["dispatcher"])
        assert r.status_code == 200, r.text
        r = httpx.post(f"{base}/api/dispatch/units/{uid}/status", json={"status": "off_duty"},
                       headers=h["dispatcher"])
        assert r.status_code == 409
        alerts = httpx.get(f"{base}/api/dispatch/alerts", headers=h["supervisor"])
        assert alerts.status_code == 200 and "items" in alerts.json()
        r = httpx.post(f"{base}/api/incidents/{iid}/close", json={"disposition": "01"},
                       headers=h["dispatcher"])
        assert r.status_code == 200 and r.json()["status"] == "closed"
        ev = httpx.get(f"{base}/api/incidents/{iid}/events", headers=h["supervisor"]).json()
        # (the SMS worker records each message's outcome when it has sent it: sms_* events may
        # come after the close)
        kinds = [e["kind"] for e in ev["events"] if not e["kind"].startswith("sms_")]
        assert kinds[0] == "registered" and "assigned" in kinds and kinds[-1] == "closed"
        v = httpx.get(f"{base}/api/incidents/verify", params={"reference": inc["reference"]},
                      headers=h["supervisor"])
        assert v.status_code == 200 and v.json()["ok"], v.text
        cats = httpx.get(f"{base}/api/incidents/categories", headers=h["call_taker"]).json()
        assert any(c["code"] == "theft" for c in cats["categories"])
    with engine.connect() as c:
        st = c.execute(text("SELECT status FROM units WHERE id = :u"), {"u": uid}).scalar()
    assert st == "available"
