"""HTTP ingest through the real API (uvicorn): the real tracker requests, auth, limits."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from geodispatch.users.service import upsert_user
from tests.helpers import login, running_server
from tests.tracking.conftest import drops, ensure_unit, positions_of, wait_for

OSMAND = "/api/ingest/osmand"
OWNTRACKS = "/api/ingest/owntracks"


@pytest.fixture(scope="module")
def app(settings: Settings, engine: Engine) -> FastAPI:
    # The vectors were recorded years ago: accept old fixes so the protocol is what is tested.
    return create_app(settings.model_copy(update={"serve_ingest": False,
                                                  "max_fix_age_s": 1e10}))


@pytest.fixture(scope="module")
def base(app: FastAPI) -> Iterator[str]:
    with running_server(app) as url:
        yield url


def _basic(user: str, pw: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}


def _send(base: str, v: dict[str, Any], token: str, user: str | None = None) -> httpx.Response:
    if v["protocol"] == "OwnTracks":
        assert user is not None
        return httpx.post(base + OWNTRACKS, content=v["body"], headers={
            **_basic(user, token), "Content-Type": "application/json",
            "X-Limit-U": user, "X-Limit-D": "phone"})
    if v["method"] == "GET":
        query = urlsplit(v["path_and_query"]).query
        return httpx.get(f"{base}{OSMAND}?{query}&token={token}")
    return httpx.post(f"{base}{OSMAND}?token={token}", content=v["body"],
                      headers={"Content-Type": v["content_type"]})


def _device(v: dict[str, Any]) -> str:
    if v["protocol"] == "OwnTracks":
        return "owntracks-vectors"
    if v["method"] == "GET":
        q = dict(x.split("=", 1) for x in urlsplit(v["path_and_query"]).query.split("&"))
        return q["id"]
    return str(httpx.Response(200, content=v["body"]).json()["device_id"])


def test_tracker_vectors(app: FastAPI, base: str, engine: Engine, settings: Settings,
                         vectors: list[dict[str, Any]]) -> None:
    """Every real request: verifyPosition/Attribute -> one position stored, verifyNotNull ->
    accepted without a stored fix."""
    for v in vectors:
        device = _device(v)
        unit_id, token = ensure_unit(engine, settings, device)
        app.state.tracking_http_ingest = None  # forget the validator's memory of the last fix
        r = _send(base, v, token, user=device)
        assert r.status_code == 200, (v, r.text)
        rows = positions_of(engine, unit_id)
        if v["traccar_assertion"] == "verifyNotNull":
            assert rows == [], v
            continue
        assert len(rows) == 1, v
        if v["protocol"] == "OwnTracks":
            assert r.json() == []
        if v["traccar_assertion"] == "verifyAttribute":
            assert rows[0].attributes[v["expect_attribute"]] == 12


def test_osmand_refusals(base: str, engine: Engine, settings: Settings) -> None:
    """Missing id -> 400, unknown device -> 400, wrong token -> 401, broken JSON -> 400, too
    large -> 413, impossible coordinates -> 400; each with a reason, each counted."""
    device = f"http-{uuid.uuid4().hex[:8]}"
    _uid, token = ensure_unit(engine, settings, device)
    before = drops(engine)
    cases = [
        (httpx.get(f"{base}{OSMAND}?lat=1&lon=2"), 400, "missing_field"),
        (httpx.get(f"{base}{OSMAND}?id=nobody-{uuid.uuid4().hex}&lat=1&lon=2&token=x"), 400,
         "unknown_device"),
        (httpx.get(f"{base}{OSMAND}?id={device}&lat=1&lon=2&token=wrong"), 401,
         "unauthenticated"),
        (httpx.post(f"{base}{OSMAND}?token={token}", content=b'{"device_id": "x", "loc',
                    headers={"Content-Type": "application/json"}), 400, "bad_json"),
        (httpx.post(f"{base}{OSMAND}?token={token}", content=b"{" + b" " * settings.http_max_body,
                    headers={"Content-Type": "application/json"}), 413, "too_large"),
        (httpx.get(f"{base}{OSMAND}?id={device}&lat=95&lon=2&token={token}"), 400,
         "out_of_range"),
    ]
    for resp, status, reason in cases:
        assert resp.status_code == status, (reason, resp.text)
        assert resp.json()["reason"] == reason
    after = drops(engine)
    for _r, _s, reason in cases:
        assert after.get(reason, 0) > before.get(reason, 0), reason


def test_owntracks_auth(base: str, engine: Engine, settings: Settings) -> None:
    """OwnTracks HTTP: no or wrong credentials -> 401 with a Basic challenge."""
    device = f"ot-{uuid.uuid4().hex[:8]}"
    _uid, token = ensure_unit(engine, settings, device)
    body = '{"_type":"location","lat":50.45,"lon":30.52,"tst":1764396000}'
    r = httpx.post(base + OWNTRACKS, content=body)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    r = httpx.post(base + OWNTRACKS, content=body, headers=_basic(device, "nope"))
    assert r.status_code == 401
    r = httpx.post(base + OWNTRACKS, content=body, headers=_basic(f"x{device}", token))
    assert r.status_code == 401
    r = httpx.post(base + OWNTRACKS, content='{"_type":"waypoint"}', headers=_basic(device, token))
    assert r.status_code == 200 and r.json() == []


def test_units_and_track_endpoints(base: str, engine: Engine, settings: Settings) -> None:
    """Units list as GeoJSON per region, a unit's track between two times, staleness."""
    kv_dev = f"kv-{uuid.uuid4().hex[:8]}"
    lv_dev = f"lv-{uuid.uuid4().hex[:8]}"
    kv_id, kv_token = ensure_unit(engine, settings, kv_dev, region="KV")
    lv_id, _ = ensure_unit(engine, settings, lv_dev, region="LV")
    import time

    t0 = int(time.time()) - 30
    for i in range(5):
        r = httpx.get(f"{base}{OSMAND}?id={kv_dev}&lat={50.45 + i * 0.0005}&lon=30.52"
                      f"&timestamp={t0 + i * 5}&speed=20&token={kv_token}")
        assert r.status_code == 200
    name = f"kv_disp_{uuid.uuid4().hex[:6]}"
    with Session(engine) as s, s.begin():
        upsert_user(session=s, username=name, password="pw-123456", role="dispatcher", region="KV")
    headers = login(base, name, "pw-123456")

    def listed() -> dict[int, Any]:
        units = httpx.get(f"{base}/api/units", headers=headers).json()
        return {f["properties"]["unit_id"]: f for f in units["features"]}

    # A unit created by another process reaches the live fleet at its next 1 s refresh.
    assert wait_for(lambda: kv_id in listed(), timeout=5)
    ids = listed()
    assert kv_id in ids and lv_id not in ids
    kv = ids[kv_id]
    assert kv["geometry"]["coordinates"] == [30.52, pytest.approx(50.452)]
    assert kv["properties"]["stale"] is False
    assert httpx.get(f"{base}/api/units/{lv_id}", headers=headers).status_code == 404
    from datetime import UTC, datetime

    start = datetime.fromtimestamp(t0 + 4, tz=UTC).isoformat()
    end = datetime.fromtimestamp(t0 + 16, tz=UTC).isoformat()
    track = httpx.get(f"{base}/api/units/{kv_id}/track", headers=headers,
                      params={"start": start, "end": end}).json()
    line, *points = track["features"]
    assert line["geometry"]["type"] == "LineString" and len(points) == 3
    assert httpx.get(f"{base}/api/units").status_code == 401


def test_crew_status_over_http(base: str, engine: Engine, settings: Settings) -> None:
    """POST /api/ingest/status reaches the dispatch workflow; a forbidden transition is a 409."""
    from sqlalchemy import text

    device = f"st-{uuid.uuid4().hex[:8]}"
    uid, token = ensure_unit(engine, settings, device)
    with engine.begin() as c:
        c.execute(text("UPDATE units SET status = 'off_duty' WHERE id = :u"), {"u": uid})
    url = f"{base}/api/ingest/status?id={device}&token={token}"
    assert httpx.post(url, content=b"transporting").status_code == 409
    assert httpx.post(url, content=b'{"status": "available"}').status_code == 200
    with engine.connect() as c:
        assert c.execute(text("SELECT status FROM units WHERE id = :u"), {"u": uid}).scalar() \
            == "available"
    bad = httpx.post(f"{base}/api/ingest/status?id={device}&token=nope", content=b"available")
    assert bad.status_code == 401
