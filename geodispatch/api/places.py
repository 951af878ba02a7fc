"""Map helpers for the dispatcher console: the area to show, and an offline address lookup.

Control rooms are often offline, so the address search does not call a geocoding service: it
accepts typed coordinates, or finds the street by name among our own road edges (the OSM ``name``
of each way) and returns the middle of the matching street nearest the area's centre.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.geo import LatLng, valid_latlng

_COORDS = re.compile(r"^\s*(-?\d{1,2}(?:\.\d+)?)\s*[,; ]\s*(-?\d{1,3}(?:\.\d+)?)\s*$")
# House numbers and common street-type words (Ukrainian and English) are not in way names as typed.
_NOISE = re.compile(
    r"\b(\d+[a-zа-яіїєґ]?|вул|вулиця|просп|проспект|пров|провулок|бул|бульвар|пл|площа|st|street|"
    r"ave|avenue|rd|road|blvd|boulevard)\b\.?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Place:
    """One address search hit."""

    label: str
    point: LatLng
    kind: str  # "coordinates" | "street"


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


def search_places(
    *, session: Session, query: str, near: LatLng | None = None, limit: int = 8
) -> list[Place]:
    """Coordinates typed as ``lat, lng``, or streets whose name contains the words typed."""
    m = _COORDS.match(query)
    if m:
        lat, lng = float(m.group(1)), float(m.group(2))
        if valid_latlng(lat, lng):
            label = f"{lat:.6f}, {lng:.6f}"
            return [Place(label=label, point=LatLng(lat, lng), kind="coordinates")]
        return []
    words = [w for w in _NOISE.sub(" ", query).replace(",", " ").split() if len(w) >= 2]
    if not words:
        return []
    conditions = " AND ".join(f"name ILIKE :w{i}" for i in range(len(words)))
    params: dict[str, object] = {f"w{i}": f"%{w}%" for i, w in enumerate(words)}
    params["limit"] = limit
    order = "length(name)"
    if near is not None:
        params["near"] = near.to_ewkt()
        order = "ST_Distance(c::geography, ST_GeomFromEWKT(:near)::geography)"
    rows = session.execute(text(f"""
        WITH streets AS (
            SELECT name, ST_LineMerge(ST_Collect(geom)) AS g
            FROM road_edges WHERE name IS NOT NULL AND {conditions}
            GROUP BY name
        ), points AS (
            SELECT name, ST_ClosestPoint(g, ST_Centroid(g)) AS c FROM streets
        )
        SELECT name, ST_Y(c) AS lat, ST_X(c) AS lng FROM points ORDER BY {order} LIMIT :limit
    """), params).all()
    return [Place(label=r.name, point=LatLng(float(r.lat), float(r.lng)), kind="street")
            for r in rows]
