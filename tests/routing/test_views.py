"""The /api/roads endpoints: map edges, routes and snapping for any logged-in role."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from geodispatch.api import errors
from geodispatch.api.security import ANALYST, CALL_TAKER
from geodispatch.routing import views
from geodispatch.routing.engine import Router
from geodispatch.routing.graph import RoadGraph
from geodispatch.routing.service import write_edges
from geodispatch.settings import Settings
from tests.helpers import account_check, bearer, running_server


def _app(settings: Settings, db: Session, router: Router | None) -> FastAPI:
    app = FastAPI()
    errors.install(app)
    app.include_router(views.router)
    app.state.settings = settings
    app.state.accounts = account_check()
    # Requests join the test's rolled-back transaction.
    app.state.session_factory = sessionmaker(bind=db.connection(),
                                             join_transaction_mode="create_savepoint")
    app.state.router = router
    return app


@pytest.fixture()
def client(settings: Settings, db: Session, baltimore: RoadGraph,
           baltimore_router: Router) -> Iterator[httpx.Client]:
    write_edges(session=db, graph=baltimore)
    auth = bearer(ANALYST, None)
    with running_server(_app(settings, db, baltimore_router)) as base, httpx.Client(
            base_url=base, headers=auth) as c:
        yield c


def test_edges_in_bbox(client: httpx.Client, baltimore: RoadGraph) -> None:
    """GET /api/roads/edges returns a GeoJSON FeatureCollection of the box's roads."""
    lat0, lng0 = float(np.median(baltimore.node_lat)), float(np.median(baltimore.node_lng))
    bbox = f"{lng0 - 0.004},{lat0 - 0.004},{lng0 + 0.004},{lat0 + 0.004}"
    r = client.get("/api/roads/edges", params={"bbox": bbox})
    assert r.status_code == 200
    assert r.json()["features"][0]["geometry"]["type"] == "LineString"


def test_edges_bad_bbox_is_422(client: httpx.Client) -> None:
    """A malformed bounding box is a problem response, not a 500."""
    r = client.get("/api/roads/edges", params={"bbox": "1,2,3"})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")


def test_route_endpoint(client: httpx.Client, baltimore: RoadGraph) -> None:
    """GET /api/roads/route returns the drive's line with its time and distance."""
    a, b = baltimore.node(10), baltimore.node(2000)
    r = client.get("/api/roads/route", params={"from_lat": a.lat, "from_lng": a.lng,
                                               "to_lat": b.lat, "to_lng": b.lng})
    assert r.status_code == 200
    body = r.json()
    assert body["properties"]["eta_s"] > 0 and body["properties"]["distance_m"] > 0
    assert body["geometry"]["coordinates"][0] == pytest.approx([a.lng, a.lat], abs=1e-5)


def test_snap_endpoint_flags_off_road(client: httpx.Client, baltimore: RoadGraph) -> None:
    """GET /api/roads/snap reports the distance and on_road=false far from any road."""
    min_lat, min_lng, _, _ = baltimore.bbox()
    r = client.get("/api/roads/snap", params={"lat": min_lat - 0.02, "lng": min_lng})
    assert r.status_code == 200 and r.json()["on_road"] is False


def test_requires_login(client: httpx.Client) -> None:
    """Without a token the road endpoints answer 401."""
    r = client.get("/api/roads/graph", headers={"Authorization": ""})
    assert r.status_code == 401


def test_no_graph_is_503(settings: Settings, db: Session) -> None:
    """Before a graph is imported, routing endpoints say so with a 503."""
    auth = bearer(CALL_TAKER, "KV")
    with running_server(_app(settings, db, None)) as base:
        r = httpx.get(f"{base}/api/roads/graph", headers=auth)
    assert r.status_code == 503
    assert "graph import" in r.json()["detail"]
