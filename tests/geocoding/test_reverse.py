"""Reverse geocoding of points along the simulated crews' routes (Baltimore), checked against
a brute-force search over every house and street of the index."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import shapely
import shapely.affinity
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.geo import LatLng
from geodispatch.geocoding.service import IndexGeocoder
from geodispatch.routing.engine import Router
from geodispatch.routing.importer import import_osm_file
from geodispatch.settings import Settings
from geodispatch.sim.roads import RouterRoads


@pytest.fixture(scope="module")
def route_points(data_dir: Path) -> list[LatLng]:
    """Points every ~150 m along 30 simulated crew drives across downtown Baltimore."""
    roads = RouterRoads(Router(import_osm_file(
        data_dir / "osm" / "baltimore_downtown_2015.osm.pbf", progress=False)))
    rng = random.Random(5)
    points: list[LatLng] = []
    while len(points) < 300:
        drive = roads.route(roads.random_point(rng), roads.random_point(rng))
        if drive is None:
            continue
        step = max(1, len(drive.coords) // 8)
        for a, b in zip(drive.coords[::step], drive.coords[1::step], strict=False):
            points.append(a)  # a vertex (often a crossing)
            points.append(LatLng((a.lat + b.lat) / 2, (a.lng + b.lng) / 2))  # mid-block
    return points[:300]


def _local(lat0: float) -> tuple[float, float]:
    return 111_320.0 * math.cos(math.radians(lat0)), 110_540.0


def test_reverse_names_the_nearest_house_else_street(
        db: Session, address_index: object, settings: Settings,
        route_points: list[LatLng]) -> None:
    """Every point along the routes gets the nearest house within the house radius, else the
    nearest street, as a brute force over all of them says (a point at a crossing is equally
    near two streets: either is right, so equal distances within 1.5 m count as the same)."""
    kx, ky = _local(39.29)
    houses = [(label, shapely.affinity.scale(shapely.from_wkb(bytes(g)), kx, ky, origin=(0, 0)))
              for label, g in db.execute(text(
                  "SELECT label, ST_AsBinary(geom) FROM geocode_features WHERE kind = 'house' "
                  "AND ST_Y(ST_Centroid(geom)) BETWEEN 39 AND 40"))]
    streets = [(name, shapely.affinity.scale(shapely.from_wkb(bytes(g)), kx, ky, origin=(0, 0)))
               for name, g in db.execute(text(
                   "SELECT name, ST_AsBinary(geom) FROM geocode_streets WHERE source = 'road' "
                   "AND ST_Y(ST_Centroid(geom)) BETWEEN 39 AND 40"))]
    geocoder = IndexGeocoder(db)
    wrong = []
    for p in route_points:
        q = shapely.Point(p.lng * kx, p.lat * ky)
        h_d = min(h[1].distance(q) for h in houses)
        s_d = min(s[1].distance(q) for s in streets)
        if h_d <= settings.geocode_reverse_house_m:
            ok = {label for label, g in houses if g.distance(q) <= h_d + 1.5}
        else:
            ok = {name for name, g in streets if g.distance(q) <= s_d + 1.5}
        got = geocoder.reverse(lon=p.lng, lat=p.lat)
        assert got is not None, p
        if got.label not in ok:
            wrong.append((p, got.label, got.distance_m, sorted(ok)))
    assert len(wrong) <= len(route_points) // 100, wrong[:5]


def test_reverse_far_from_everything_is_none(db: Session, address_index: object) -> None:
    """Mid-Atlantic has no address."""
    assert IndexGeocoder(db).reverse(lon=-40.0, lat=30.0) is None
