"""Offline address search over our own road edges, and the map extent (rolled-back rows)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.api.places import map_bounds, search_places
from geodispatch.geo import LatLng


def _road(db: Session, edge_id: int, name: str, wkt: str) -> None:
    db.execute(text("""
        INSERT INTO road_edges (id, source, target, highway, name, length_m, speed_kmh,
                                travel_time_s, geom)
        VALUES (:id, 1, 2, 'residential', :name, 100, 30, 12, ST_GeomFromText(:wkt, 4326))
    """), {"id": edge_id, "name": name, "wkt": wkt})


def test_typed_coordinates_are_taken_as_is(db: Session) -> None:
    """'lat, lng' typed by the call-taker is a place; impossible coordinates are not."""
    [hit] = search_places(session=db, query="50.4501, 30.5234")
    assert hit.kind == "coordinates" and hit.point == LatLng(50.4501, 30.5234)
    assert search_places(session=db, query="95.0, 30.0") == []


def test_street_name_with_house_number_and_type_word(db: Session) -> None:
    """'вул. Хрещатик 22' finds the street named Хрещатик; the nearest match comes first."""
    _road(db, 990_000_001, "вулиця Хрещатик", "LINESTRING(30.5200 50.4470, 30.5230 50.4500)")
    _road(db, 990_000_002, "вулиця Хрещатик", "LINESTRING(30.5230 50.4500, 30.5260 50.4530)")
    _road(db, 990_000_003, "Хрещатик (дублер)", "LINESTRING(35.00 48.00, 35.01 48.01)")
    hits = search_places(session=db, query="вул. Хрещатик 22", near=LatLng(50.45, 30.523))
    assert hits and hits[0].label == "вулиця Хрещатик"
    assert abs(hits[0].point.lat - 50.45) < 0.01
    assert hits[0].kind == "street"


def test_map_bounds_cover_the_roads(db: Session) -> None:
    """With roads present the extent includes them."""
    _road(db, 990_000_004, "Test Road", "LINESTRING(30.40 50.40, 30.60 50.50)")
    box = map_bounds(session=db, region="KV")
    assert box is not None
    min_lat, min_lng, max_lat, max_lng = box
    assert min_lat <= 50.40 and max_lat >= 50.50 and min_lng <= 30.40 and max_lng >= 30.60
