"""HTTP endpoints of the road graph (any logged-in role may read).

``GET /api/roads/edges?bbox=west,south,east,north``
    Road edges from PostGIS as GeoJSON (two-way streets once, ``oneway`` flagged) for the
    offline map; ``bbox`` is in Leaflet's ``toBBoxString()`` order (lng, lat, lng, lat).
``GET /api/roads/route?from_lat=&from_lng=&to_lat=&to_lng=``
    The fastest drive as a GeoJSON Feature with ``eta_s`` and ``distance_m``.
``GET /api/roads/snap?lat=&lng=``
    The nearest road point, its distance and the off-road flag.
``GET /api/roads/graph``
    Size and provenance of the loaded graph.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from geodispatch.api.deps import SessionDep, get_state, require_roles
from geodispatch.api.security import ALL_ROLES, Principal
from geodispatch.errors import ConfigurationError, InvalidInput
from geodispatch.geo import LatLng, valid_latlng
from geodispatch.routing.engine import Router
from geodispatch.routing.schemas import GraphInfo, RouteFeature, RouteProperties, SnapOut
from geodispatch.routing.service import edges_geojson

router = APIRouter(prefix="/api/roads", tags=["roads"])

Reader = Annotated[Principal, Depends(require_roles(*ALL_ROLES))]
RouterDep = Annotated[Router | None, Depends(get_state("router"))]

MAX_BBOX_DEG = 0.5


def _need_router(r: Router | None) -> Router:
    if r is None:
        raise ConfigurationError("no road graph loaded: run `geodispatch graph import`")
    return r


def _point(lat: float, lng: float) -> LatLng:
    if not valid_latlng(lat, lng):
        raise InvalidInput(f"invalid coordinates {lat}, {lng}")
    return LatLng(lat, lng)


@router.get("/edges", summary="Road edges in a bounding box (GeoJSON)")
def road_edges(
    session: SessionDep,
    _: Reader,
    bbox: Annotated[str, Query(description="west,south,east,north in degrees",
                               examples=["-76.62,39.28,-76.60,39.30"])],
    limit: Annotated[int, Query(ge=1, le=50000)] = 20000,
) -> dict[str, Any]:
    try:
        west, south, east, north = (float(x) for x in bbox.split(","))
    except ValueError:
        raise InvalidInput("bbox must be four numbers: west,south,east,north") from None
    if not (west < east and south < north and valid_latlng(south, west)
            and valid_latlng(north, east)):
        raise InvalidInput("bbox must be west<east, south<north, inside WGS 84")
    if east - west > MAX_BBOX_DEG or north - south > MAX_BBOX_DEG:
        raise InvalidInput(f"bbox larger than {MAX_BBOX_DEG} degrees; zoom in")
    return edges_geojson(session=session, west=west, south=south, east=east, north=north,
                         limit=limit)


@router.get("/route", summary="Fastest drive between two points", response_model=RouteFeature)
async def road_route(
    _: Reader,
    r: RouterDep,
    from_lat: float,
    from_lng: float,
    to_lat: float,
    to_lng: float,
) -> RouteFeature:
    rt = _need_router(r)
    route = await run_in_threadpool(rt.route, _point(from_lat, from_lng), _point(to_lat, to_lng))
    return RouteFeature(geometry=route.to_geojson(),
                        properties=RouteProperties(eta_s=round(route.eta_s, 1),
                                                   distance_m=round(route.distance_m, 1)))


@router.get("/snap", summary="Nearest road point", response_model=SnapOut)
def road_snap(_: Reader, r: RouterDep, lat: float, lng: float) -> SnapOut:
    s = _need_router(r).snap(_point(lat, lng))
    assert s.point is not None
    return SnapOut(node=s.node, distance_m=round(s.distance_m, 2), on_road=s.on_road,
                   lat=s.point.lat, lng=s.point.lng, segment=s.segment)


@router.get("/graph", summary="The loaded road graph", response_model=GraphInfo)
def road_graph(_: Reader, r: RouterDep) -> GraphInfo:
    g = _need_router(r).graph
    return GraphInfo(**g.summary(), source=g.meta.get("source"), built_at=g.meta.get("built_at"))
