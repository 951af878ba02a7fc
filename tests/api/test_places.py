"""The map extent (rolled-back rows); address search is tested in tests/geocoding."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.api.places import map_bounds


def _road(db: Session, edge_id: int, name: str, wkt: str) -> None:
    db.execute(text("""
        INSERT INTO road_edges (id, source, target, highway, name, length_m, speed_kmh,
                                travel_time_s, geom)
        VALUES (:id, 1, 2, 'residential', :name, 100, 30, 12, ST_GeomFromText(:wkt, 4326))
    """), {"id": edge_id, "name": name, "wkt": wkt})


def test_map_bounds_cover_the_roads(db: Session) -> None:
    """With roads present the extent includes them."""
    _road(db, 990_000_004, "Test Road", "LINESTRING(30.40 50.40, 30.60 50.50)")
    box = map_bounds(session=db, region="KV")
    assert box is not None
    min_lat, min_lng, max_lat, max_lng = box
    assert min_lat <= 50.40 and max_lat >= 50.50 and min_lng <= 30.40 and max_lng >= 30.60
