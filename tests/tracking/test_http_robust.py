"""HTTP ingest under hostile or unlucky input: failed writes, batches, NUL, bounds, order."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, text

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from tests.helpers import running_server
from tests.tracking.conftest import ensure_unit, positions_of

OSMAND = "/api/ingest/osmand"
OWNTRACKS = "/api/ingest/owntracks"


@pytest.fixture(scope="module")
def base(settings: Settings, engine: Engine) -> Iterator[str]:
    app: FastAPI = create_app(settings.model_copy(update={"serve_ingest": False}))
    with running_server(app) as url:
        yield url


@pytest.fixture()
def unit(engine: Engine, settings: Settings) -> tuple[int, str, str]:
    device = f"hr-{uuid.uuid4().hex[:10]}"
    uid, token = ensure_unit(engine, settings, device)
    return uid, device, token


def _loc(lat: float, lon: float, t: float, **coords: Any) -> dict[str, Any]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    return {"timestamp": stamp, "coords": {"latitude": lat, "longitude": lon, **coords}}


def _json(base: str, token: str, body: Any) -> httpx.Response:
    return httpx.post(base + OSMAND, content=orjson.dumps(body),
                      headers={"Content-Type": "application/json", "X-Device-Token": token})


def test_fix_whose_write_failed_is_stored_when_resent(base: str, unit: tuple[int, str, str],
                                                      engine: Engine, admin_engine: Engine,
                                                      settings: Settings) -> None:
    """The write fails (the database refuses the insert): 503, nothing remembered; the phone
    resends the same fix once the database is back and it is stored (not 'duplicate')."""
    uid, device, token = unit
    params = {"id": device, "lat": "50.45", "lon": "30.52", "timestamp": str(int(time.time()))}
    role = settings.app_db_role
    with admin_engine.begin() as c:
        c.execute(text(f'REVOKE INSERT ON positions FROM "{role}"'))
    try:
        r = httpx.get(base + OSMAND, params=params, headers={"X-Device-Token": token})
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "5" and r.json()["reason"] == "unavailable"
    finally:
        with admin_engine.begin() as c:
            c.execute(text(f'GRANT INSERT ON positions TO "{role}"'))
    assert positions_of(engine, uid) == []
    again = httpx.get(base + OSMAND, params=params, headers={"X-Device-Token": token})
    assert again.status_code == 200 and "X-Ingest-Dropped" not in again.headers, again.headers
    assert len(positions_of(engine, uid)) == 1


def test_batched_json_stores_valid_members(base: str, unit: tuple[int, str, str],
                                           engine: Engine) -> None:
    """`location: [valid, lat=91, valid]`: both valid fixes stored, member 1 reported."""
    uid, device, token = unit
    now = time.time() - 60
    body = {"device_id": device, "location": [_loc(50.45, 30.52, now), _loc(91.0, 30.52, now + 1),
                                              _loc(50.4501, 30.52, now + 2)]}
    r = _json(base, token, body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["stored"] == 2
    assert [(m["index"], m["reason"]) for m in answer["rejected"]] == [(1, "out_of_range")]
    assert r.headers["X-Ingest-Rejected"] == "1:out_of_range"
    assert len(positions_of(engine, uid)) == 2
    bad = {"device_id": device, "location": [_loc(91.0, 30.0, now), {"coords": {}}]}
    r = _json(base, token, bad)
    assert r.status_code == 400
    assert [(m["index"], m["reason"]) for m in r.json()["members"]] == [
        (0, "out_of_range"), (1, "missing_field")]


def test_owntracks_array_stores_valid_members(base: str, unit: tuple[int, str, str],
                                              engine: Engine) -> None:
    """An OwnTracks array `[valid, bad]`: the valid one stored, `[]` answered, the bad named."""
    uid, device, token = unit
    now = int(time.time()) - 30
    body = [{"_type": "location", "lat": 50.45, "lon": 30.52, "tst": now},
            {"_type": "location", "lat": 50.45, "tst": now + 1}]
    r = httpx.post(base + OWNTRACKS, content=orjson.dumps(body), auth=(device, token),
                   headers={"Content-Type": "application/json", "X-Limit-D": "phone"})
    assert r.status_code == 200 and r.json() == []
    assert r.headers["X-Ingest-Rejected"] == "1:missing_field"
    assert len(positions_of(engine, uid)) == 1


@pytest.mark.parametrize("where", ["device", "attribute", "json_device", "json_extra"])
def test_nul_is_a_400_with_reason(base: str, unit: tuple[int, str, str], engine: Engine,
                                  where: str) -> None:
    """U+0000 in a device id or an attribute: 400 `unstorable`, never a 500 or a reset."""
    uid, device, token = unit
    t = str(int(time.time()))
    headers = {"X-Device-Token": token}
    if where == "device":
        r = httpx.get(base + OSMAND, params={"id": device + "\x00", "lat": "50.4", "lon": "30.5"},
                      headers=headers)
    elif where == "attribute":
        r = httpx.get(base + OSMAND, params={"id": device, "lat": "50.4", "lon": "30.5",
                                             "timestamp": t, "note": "a\x00b"}, headers=headers)
    elif where == "json_device":
        r = _json(base, token, {"device_id": "x\x00", "location": _loc(50.4, 30.5, time.time())})
    else:
        loc = {**_loc(50.4, 30.5, time.time()), "extras": {"k\x00": 1}}
        r = _json(base, token, {"device_id": device, "location": loc})
    assert r.status_code == 400, r.text
    assert r.json()["reason"] == "unstorable"
    assert positions_of(engine, uid) == []


def test_long_input_is_not_echoed(base: str) -> None:
    """A 10 kB device id is refused with a short message, not echoed back."""
    r = httpx.get(base + OSMAND, params={"id": "x" * 10_000, "lat": "50.4", "lon": "30.5"})
    assert r.status_code == 400 and len(r.content) < 600, len(r.content)
    r = httpx.get(base + OSMAND, params={"id": "dev", "lat": "50.4", "lon": "30.5",
                                         "timestamp": "y" * 10_000})
    assert r.status_code == 400 and len(r.content) < 600, len(r.content)


@pytest.mark.parametrize(("field", "value"), [("batt", "1e308"), ("bearing", "720"),
                                              ("altitude", "-1e9"), ("speed", "1e300"),
                                              ("accuracy", "-5")])
def test_implausible_values_are_refused(base: str, unit: tuple[int, str, str], engine: Engine,
                                        field: str, value: str) -> None:
    """Numbers outside the plausibility bounds (settings) are refused, not stored as sent."""
    uid, device, token = unit
    r = httpx.get(base + OSMAND, params={"id": device, "lat": "50.4", "lon": "30.5",
                                         "timestamp": str(int(time.time())), field: value},
                  headers={"X-Device-Token": token})
    assert r.status_code == 400, r.text
    assert r.json()["reason"] == "implausible"
    assert r.json()["detail"].split()[0] in {"battery", "heading", "altitude", "speed",
                                             "accuracy"}
    assert positions_of(engine, uid) == []


def test_out_of_order_fix_far_away_is_refused(base: str, unit: tuple[int, str, str],
                                              engine: Engine) -> None:
    """Fixes at t and t+60 s in Kyiv; a late fix for t+30 s 1,000 km away is a speed jump
    against its neighbours in time, a late one nearby is kept."""
    uid, device, token = unit
    t0 = int(time.time()) - 600

    def send(lat: float, t: int) -> httpx.Response:
        return httpx.get(base + OSMAND, params={"id": device, "lat": str(lat), "lon": "30.52",
                                                "timestamp": str(t)},
                         headers={"Authorization": f"Bearer {token}"})

    assert send(50.45, t0).status_code == 200
    assert send(50.451, t0 + 60).status_code == 200
    far = send(41.45, t0 + 30)
    assert far.status_code == 200 and far.headers["X-Ingest-Dropped"] == "speed_jump"
    near = send(50.4505, t0 + 30)
    assert near.status_code == 200 and "X-Ingest-Dropped" not in near.headers
    assert [round(r.lat, 4) for r in positions_of(engine, uid)] == [50.45, 50.4505, 50.451]
