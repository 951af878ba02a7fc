"""HTTP endpoints of the geocoder (any logged-in role may read).

``GET /api/geocode/search?q=&lat=&lng=&limit=``
    Ranked candidates for a typed address, each with its precision and how it was found
    (``lat``/``lng``: the hint a street-only answer is placed nearest, e.g. the map centre).
``GET /api/geocode/reverse?lat=&lng=``
    The nearest house, else street, else named area (404 when nothing is near).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict

from geodispatch.api.deps import SessionDep, SettingsDep, require_roles
from geodispatch.api.security import ALL_ROLES, Principal
from geodispatch.errors import InvalidInput, NotFound
from geodispatch.geo import LatLng
from geodispatch.geocoding.service import GeocodeResult, IndexGeocoder

router = APIRouter(prefix="/api/geocode", tags=["geocoding"])

Reader = Annotated[Principal, Depends(require_roles(*ALL_ROLES))]


class GeocodeOut(BaseModel):
    """One geocoding answer (``lat``/``lng`` in degrees)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "label": "750 East Pratt Street", "lat": 39.2870835, "lng": -76.6052454,
        "precision": "house", "method": "house", "street_only": False, "score": 1.0,
        "street": "East Pratt Street", "housenumber": "750", "flat": None, "building": None,
        "note": None, "distance_m": None, "resolved": "750 East Pratt Street"}]})

    label: str
    resolved: str
    lat: float
    lng: float
    precision: str
    method: str
    street_only: bool
    score: float
    street: str | None
    housenumber: str | None
    building: str | None
    flat: str | None
    note: str | None
    distance_m: float | None

    @classmethod
    def of(cls, r: GeocodeResult) -> GeocodeOut:
        return cls(label=r.label, resolved=r.resolved, lat=r.point.lat, lng=r.point.lng,
                   precision=r.precision, method=r.method, street_only=r.street_only,
                   score=round(r.score, 3), street=r.street, housenumber=r.housenumber,
                   building=r.building, flat=r.flat, note=r.note, distance_m=r.distance_m)


def _hint(lat: float | None, lng: float | None) -> LatLng | None:
    if (lat is None) != (lng is None):
        raise InvalidInput("give both lat and lng for the hint, or neither")
    return LatLng(lat, lng) if lat is not None and lng is not None else None


@router.get("/search", response_model=list[GeocodeOut], summary="Find an address (offline)")
def search(
    principal: Reader,
    session: SessionDep,
    settings: SettingsDep,
    q: Annotated[str, Query(min_length=1, max_length=300, examples=["вул. Хрещатик, 22"])],
    lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    lng: Annotated[float | None, Query(ge=-180, le=180)] = None,
    limit: Annotated[int, Query(ge=1, le=20)] = 5,
) -> list[GeocodeOut]:
    """Houses, interpolated numbers, streets (placed nearest the hint), intersections
    (``A / B``), areas and landmarks; typed ``lat, lng`` is taken as a point."""
    hits = IndexGeocoder(session, settings).forward(q, near=_hint(lat, lng), limit=limit)
    return [GeocodeOut.of(h) for h in hits]


@router.get("/reverse", response_model=GeocodeOut, summary="Name a point")
def reverse(
    principal: Reader,
    session: SessionDep,
    settings: SettingsDep,
    lat: Annotated[float, Query(ge=-90, le=90)],
    lng: Annotated[float, Query(ge=-180, le=180)],
) -> GeocodeOut:
    """The nearest house within ``geocode_reverse_house_m``, else the nearest street."""
    hit = IndexGeocoder(session, settings).reverse(lon=lng, lat=lat)
    if hit is None:
        raise NotFound(f"no address within {settings.geocode_reverse_max_m:.0f} m")
    return GeocodeOut.of(hit)
