"""Map helpers for the dispatcher console: the area to show.

(Address search moved to :mod:`geodispatch.geocoding`.)
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session


def map_bounds(*, session: Session, region: str | None) -> tuple[float, float, float, float] | None:
    """``(min_lat, min_lng, max_lat, max_lng)`` of what we have: roads, else zones, else units."""
    queries = [
        ("SELECT ST_Extent(geom) FROM road_edges", {}),
        ("SELECT ST_Extent(geom) FROM zones WHERE valid_to IS NULL"
         + (" AND region = :region" if region else ""), {"region": region}),
        ("SELECT ST_Extent(l.geom) FROM unit_latest l JOIN units u ON u.id = l.unit_id"
         + (" WHERE u.region = :region" if region else ""), {"region": region}),
        ("SELECT ST_Extent(location) FROM incidents"
         + (" WHERE region = :region" if region else ""), {"region": region}),
    ]
    for sql, params in queries:
        box = session.execute(
            text(f"SELECT ST_YMin(b), ST_XMin(b), ST_YMax(b), ST_XMax(b) FROM ({sql}) AS t(b)"),
            params,
        ).one()
        if box[0] is not None:
            return float(box[0]), float(box[1]), float(box[2]), float(box[3])
    return None
