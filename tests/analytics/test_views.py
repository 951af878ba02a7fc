"""Analytics over real HTTP: role checks, region scope, no caller phone numbers for analysts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geodispatch.analytics.intervals import refresh_intervals
from geodispatch.api.app import create_app
from geodispatch.geo import LatLng
from geodispatch.settings import Settings
from geodispatch.users.service import upsert_user
from tests.analytics.factories import make_assignment, make_incident
from tests.helpers import login, running_server

PHONE = "+380501234567"
T0 = datetime(2031, 5, 6, 9, 0, tzinfo=UTC)


@pytest.fixture()
def region(admin_engine: Engine) -> Iterator[str]:
    """A committed region of 30 incidents with phones; deleted again afterwards."""
    code = f"A{uuid.uuid4().hex[:7].upper()}"
    with Session(admin_engine) as s, s.begin():
        for k in range(30):
            at = LatLng(50.45 + 0.004 * (k % 5), 30.52 + 0.004 * (k // 5))
            inc = make_incident(s, received=T0 + timedelta(minutes=7 * k), at=at, region=code,
                                phone=PHONE, category="theft" if k % 2 else "assault")
            make_assignment(s, inc, dispatched_after_s=60, en_route_after_s=90,
                            on_scene_after_s=300 + 20 * k, cleared_after_s=3000)
        refresh_intervals(session=s, since=T0)
    yield code
    with Session(admin_engine) as s, s.begin():
        ids = "SELECT id FROM incidents WHERE region = :r"
        s.execute(text("DELETE FROM response_sketches WHERE region = :r"), {"r": code})
        s.execute(text(f"DELETE FROM response_intervals WHERE incident_id IN ({ids})"), {"r": code})
        # Incidents and assignments stay: the record is append-only (the region is unique).


def _user(engine: Engine, role: str, region: str | None) -> str:
    name = f"{role}_{uuid.uuid4().hex[:8]}"
    with Session(engine) as s, s.begin():
        upsert_user(session=s, username=name, password="pw-123456", role=role, region=region)
    return name


def test_roles_scope_and_no_phone_numbers(settings: Settings, engine: Engine, region: str) -> None:
    """Analysts read figures, maps and charts; others are refused; no phone number leaks."""
    analyst = _user(engine, "analyst", None)
    regional = _user(engine, "analyst", "ZZ")
    national = _user(engine, "national", None)
    dispatcher = _user(engine, "dispatcher", region)
    app = create_app(settings.model_copy(update={"serve_ingest": False}))
    with running_server(app) as base:
        h = login(base, analyst, "pw-123456")
        q = {"region": region, "res": 8}
        cells = httpx.get(f"{base}/api/analytics/cells", params=q, headers=h, timeout=30)
        assert cells.status_code == 200, cells.text
        body = cells.json()
        assert sum(c["count"] for c in body["cells"]) == 30
        summary = httpx.get(f"{base}/api/analytics/summary", headers=h, timeout=30,
                            params={"region": region, "by": ["category"]}).json()
        assert {r["category"] for r in summary} == {"theft", "assault"}
        incidents = httpx.get(f"{base}/api/analytics/incidents", params={"region": region},
                              headers=h, timeout=30)
        assert incidents.status_code == 200 and len(incidents.json()) == 30
        assert PHONE not in incidents.text and "phone" not in incidents.text
        page = httpx.get(f"{base}/api/analytics/heatmap", headers=h, timeout=60,
                         params={"region": region, "metric": "median_response"})
        assert page.status_code == 200 and "gd-legend" in page.text
        assert PHONE not in page.text
        png = httpx.get(f"{base}/api/analytics/charts/by_hour.png", headers=h, timeout=60,
                        params={"region": region})
        assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
        report = httpx.get(f"{base}/api/analytics/report", headers=h, timeout=60,
                           params={"region": region, "from": T0.isoformat()})
        assert report.status_code == 200, report.text
        assert f"Response times: region {region}" in report.text and "30 incidents" in report.text
        assert PHONE not in report.text
        nozone = httpx.get(f"{base}/api/analytics/report", headers=h, timeout=60,
                           params={"region": region, "zone": "NOPE"})
        assert nozone.status_code in (400, 404, 422) and "NOPE" in nozone.text
        refreshed = httpx.post(f"{base}/api/analytics/refresh", headers=h, timeout=60,
                               params={"since": T0.isoformat()})
        assert refreshed.status_code == 200 and refreshed.json()["refreshed"] >= 30

        hn = login(base, national, "pw-123456")
        assert httpx.get(f"{base}/api/analytics/cells", params=q, headers=hn).status_code == 200
        assert httpx.post(f"{base}/api/analytics/refresh", headers=hn).status_code == 403
        hd = login(base, dispatcher, "pw-123456")
        assert httpx.get(f"{base}/api/analytics/cells", params=q, headers=hd).status_code == 403
        hr = login(base, regional, "pw-123456")
        assert httpx.get(f"{base}/api/analytics/cells", params=q, headers=hr).status_code == 403
        assert httpx.get(f"{base}/api/analytics/report", params={"region": region},
                         headers=hr).status_code == 403
        assert httpx.get(f"{base}/api/analytics/cells", params=q).status_code == 401


def test_cells_geojson_matches_summary(settings: Settings, engine: Engine, region: str) -> None:
    """The heatmap's GeoJSON has the figures of /summary per cell, any interval and filter."""
    import h3

    analyst = _user(engine, "analyst", region)
    app = create_app(settings.model_copy(update={"serve_ingest": False}))
    with running_server(app) as base:
        h = login(base, analyst, "pw-123456")
        q = {"res": 9, "interval": "travel_s", "category": "theft", "from": T0.isoformat()}
        fc = httpx.get(f"{base}/api/analytics/cells.geojson", params=q, headers=h, timeout=30)
        assert fc.status_code == 200, fc.text
        body = fc.json()
        assert body["type"] == "FeatureCollection" and body["interval"] == "travel_s"
        summary = httpx.get(f"{base}/api/analytics/summary", headers=h, timeout=30,
                            params={**q, "by": ["h3_9"]}).json()
        by_cell = {r["h3_9"]: r for r in summary}
        props = {f["properties"]["cell"]: f["properties"] for f in body["features"]}
        assert sum(p["count"] for p in props.values()) == 15  # the theft half of 30
        assert props.keys() == by_cell.keys()
        for cell, p in props.items():
            assert {k: p[k] for k in ("count", "n", "median_s", "p90_s", "within_target")} == {
                k: by_cell[cell][k] for k in ("count", "n", "median_s", "p90_s", "within_target")}
        feature = body["features"][0]
        ring = feature["geometry"]["coordinates"][0]
        assert len(ring) == 7 and ring[0] == ring[-1]
        lng, lat = ring[0]
        assert 30 < lng < 31 and 50 < lat < 51  # GeoJSON order: [lng, lat] (Kyiv)
        assert h3.get_resolution(feature["properties"]["cell"]) == 9
        # Travel is on scene minus en route: 210 + 20 k s for the odd (theft) k.
        assert min(p["median_s"] for p in props.values()) >= 230
        for bad in ({"interval": "phone"}, {"res": 12}):
            r = httpx.get(f"{base}/api/analytics/cells.geojson", params=bad, headers=h)
            assert r.status_code in (400, 422) and list(bad)[0] in r.text, r.text
        other = httpx.get(f"{base}/api/analytics/cells.geojson", headers=h,
                          params={"region": "ZZ"})
        assert other.status_code == 403
