"""The one place where coordinate order is decided.

h3 takes ``(lat, lng)``; shapely, GeoJSON and PostGIS take ``(lng, lat)``; osmnx ``X=lng, Y=lat``;
folium and Leaflet ``[lat, lng]``. Code passes :class:`LatLng` around and converts at the edge with
the helpers below, never by indexing tuples in between.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import h3
from shapely.geometry import Point

EARTH_RADIUS_M = 6_371_008.8


class LatLng(NamedTuple):
    """A WGS 84 point in degrees, latitude first (as people say it)."""

    lat: float
    lng: float

    def to_shapely(self) -> Point:
        return Point(self.lng, self.lat)

    def to_wkt(self) -> str:
        return f"POINT({self.lng!r} {self.lat!r})"

    def to_ewkt(self) -> str:
        return f"SRID=4326;{self.to_wkt()}"

    def to_geojson(self) -> dict[str, object]:
        return {"type": "Point", "coordinates": [self.lng, self.lat]}

    def to_leaflet(self) -> list[float]:
        return [self.lat, self.lng]

    def h3_cell(self, res: int) -> str:
        return str(h3.latlng_to_cell(self.lat, self.lng, res))

    @classmethod
    def from_shapely(cls, p: Point) -> LatLng:
        return cls(lat=float(p.y), lng=float(p.x))

    @classmethod
    def from_geojson(cls, coords: list[float] | tuple[float, float]) -> LatLng:
        return cls(lat=float(coords[1]), lng=float(coords[0]))


def valid_latlng(lat: float, lng: float) -> bool:
    """True for finite coordinates inside the WGS 84 ranges, excluding the (0, 0) null fix."""
    if not (math.isfinite(lat) and math.isfinite(lng)):
        return False
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0):
        return False
    return not (lat == 0.0 and lng == 0.0)


def haversine_m(a: LatLng, b: LatLng) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp = p2 - p1
    dl = math.radians(b.lng - a.lng)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))
