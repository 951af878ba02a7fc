"""Zone endpoints: region-scoped GeoJSON, look-ups, coverage layer and gaps, admin-only import.

A real uvicorn serves an app with only the zones router, its request session bound to the
test's rolled-back transaction (requests are sequential), so generated zones need no commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from h3.api import basic_int as h3i
from sqlalchemy.orm import Session

from geodispatch.api import errors
from geodispatch.api.deps import get_session
from geodispatch.geo import LatLng
from geodispatch.settings import Settings
from geodispatch.zones import cells as hc
from geodispatch.zones.generation import GeneratedZones
from geodispatch.zones.index import ZoneIndex
from geodispatch.zones.views import router
from tests.helpers import account_check, bearer, running_server
from tests.zones.test_coverage import GridRouter


@dataclass
class _Unit:
    status: str
    stale: bool
    position: LatLng | None
    region: str


class _Fleet:
    def __init__(self, units: list[_Unit]) -> None:
        self.units = units

    def snapshot(self) -> list[_Unit]:
        return self.units


@pytest.fixture()
def client(db: Session, settings: Settings, andorra: GeneratedZones) -> Iterator[httpx.Client]:
    app = FastAPI()
    app.state.settings = settings
    app.state.accounts = account_check()
    errors.install(app)
    app.include_router(router)

    def session() -> Iterator[Session]:
        yield db

    app.dependency_overrides[get_session] = session
    app.state.zone_index = ZoneIndex.load(db, settings)
    centre = hc.cell_center(sorted(hc.uncompact(andorra.sectors[0].cells, 8))[0])
    app.state.router = GridRouter(LatLng(centre.lat - 0.01, centre.lng - 0.01), n=30)
    app.state.fleet = _Fleet([_Unit("available", False, centre, "ADX")])
    with running_server(app) as base, httpx.Client(base_url=base) as c:
        yield c


def _auth(settings: Settings, role: str, region: str | None) -> dict[str, str]:
    return bearer(role, region)


def test_zones_geojson_scoped_to_region(client: httpx.Client, settings: Settings,
                                        andorra: GeneratedZones) -> None:
    """A dispatcher of ADX gets ADX sectors; a KV dispatcher may not ask for ADX."""
    r = client.get("/api/zones", params={"level": "sector"},
                   headers=_auth(settings, "dispatcher", "ADX"))
    assert r.status_code == 200
    feats = r.json()["features"]
    assert len(feats) == len(andorra.sectors)
    assert feats[0]["geometry"]["type"] == "MultiPolygon"
    assert 1.3 < feats[0]["geometry"]["coordinates"][0][0][0][0] < 1.8  # lng first
    kv = _auth(settings, "dispatcher", "KV")
    assert client.get("/api/zones", params={"level": "sector"}, headers=kv).json()["features"] == []
    assert client.get("/api/zones", params={"region": "ADX"}, headers=kv).status_code == 403
    national = client.get("/api/zones", params={"level": "district"},
                          headers=_auth(settings, "national", None))
    assert len(national.json()["features"]) == len(andorra.districts)
    assert client.get("/api/zones").status_code == 401


def test_lookup_point_and_cell(client: httpx.Client, settings: Settings,
                               andorra: GeneratedZones) -> None:
    """Point and cell look-ups name the sector and district."""
    s = andorra.sectors[1]
    cell = sorted(hc.uncompact(s.cells, s.res))[0]
    p = hc.cell_center(cell)
    h = _auth(settings, "call_taker", "ADX")
    body = client.get("/api/zones/lookup", params={"lat": p.lat, "lng": p.lng}, headers=h).json()
    assert body["sector_id"] == s.id and body["sector_code"] == s.code and body["region"] == "ADX"
    child = h3i.int_to_str(h3i.cell_to_center_child(cell, 10))
    assert client.get(f"/api/zones/cells/{child}", headers=h).json()["sector_id"] == s.id
    assert client.get("/api/zones/cells/nothex", headers=h).status_code == 422
    bad = client.get("/api/zones/lookup", params={"lat": 95, "lng": 0}, headers=h)
    assert bad.status_code == 422


def test_coverage_endpoint(client: httpx.Client, settings: Settings) -> None:
    """Coverage returns figures, gap cells and a map layer; call-takers may not ask."""
    r = client.get("/api/zones/coverage", params={"minutes": 3},
                   headers=_auth(settings, "supervisor", "ADX"))
    assert r.status_code == 200, r.text
    body = r.json()
    summary = body["summary"]
    assert summary["crews"] == 1 and 0 < summary["cells_covered"] < summary["cells_total"]
    assert len(body["gaps"]) == summary["gap_cells"]
    assert body["layer"]["type"] == "FeatureCollection"
    denied = client.get("/api/zones/coverage", headers=_auth(settings, "call_taker", "ADX"))
    assert denied.status_code == 403


def test_import_admin_only(client: httpx.Client, settings: Settings) -> None:
    """Only admins import; a dry run reports without changing the index."""
    fc = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"code": "X"},
        "geometry": {"type": "Polygon", "coordinates": [[[1.5, 42.5], [1.55, 42.5],
                                                         [1.55, 42.55], [1.5, 42.5]]]}}]}
    params = {"level": "sector", "dry_run": "true"}
    r = client.post("/api/zones/import", params=params, json=fc,
                    headers=_auth(settings, "dispatcher", "ADX"))
    assert r.status_code == 403
    r = client.post("/api/zones/import", params=params, json=fc,
                    headers=_auth(settings, "admin", None))
    assert r.status_code == 200 and r.json()["applied"] is False and r.json()["cells"] > 0
