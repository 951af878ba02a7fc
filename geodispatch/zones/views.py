"""HTTP endpoints of zones: zone maps per level, point/cell look-ups, coverage and gaps, import.

``GET /api/zones?level=sector`` (GeoJSON FeatureCollection of the caller's region),
``GET /api/zones/lookup?lat=&lng=``, ``GET /api/zones/cells/{cell}`` (hex H3 id),
``GET /api/zones/coverage?minutes=10`` (summary, gap cells and a GeoJSON layer),
``GET /api/zones/validate`` (hierarchy report), ``POST /api/zones/import?level=`` (admin, GeoJSON
body; ``dry_run=true`` validates only) and ``POST /api/zones/reload`` (admin).
Users see their own region; a user without a region (national centre, admins) sees all.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from h3.api import basic_int as h3i
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from geodispatch.api.deps import SessionDep, SettingsDep, require_roles
from geodispatch.api.security import (
    ADMIN,
    ANALYST,
    CALL_TAKER,
    DISPATCHER,
    NATIONAL,
    SUPERVISOR,
    Principal,
)
from geodispatch.errors import ConfigurationError, InvalidInput
from geodispatch.geo import LatLng, valid_latlng
from geodispatch.zones.coverage import compute_coverage, coverage_geojson, fleet_sources
from geodispatch.zones.geojson import import_geojson, zones_feature_collection
from geodispatch.zones.index import ZoneIndex, ZoneRef
from geodispatch.zones.models import LEVELS
from geodispatch.zones.service import validate_hierarchy

router = APIRouter(prefix="/api/zones", tags=["zones"])

VIEWERS = (CALL_TAKER, DISPATCHER, SUPERVISOR, ANALYST, ADMIN, NATIONAL)
Viewer = Annotated[Principal, Depends(require_roles(*VIEWERS))]
Planner = Annotated[Principal, Depends(require_roles(SUPERVISOR, ANALYST, ADMIN, NATIONAL))]
Admin = Annotated[Principal, Depends(require_roles(ADMIN))]


class ZoneLookup(BaseModel):
    """The zones of a point or cell."""

    cell: str
    sector_id: int | None
    sector_code: str | None
    district_id: int | None
    district_code: str | None
    region: str



def _index(request: Request) -> ZoneIndex:
    index: ZoneIndex | None = getattr(request.app.state, "zone_index", None)
    if index is None:
        raise ConfigurationError("zone index not loaded")
    return index


def _describe(index: ZoneIndex, cell: int, ref: ZoneRef) -> ZoneLookup:
    def code(zid: int | None) -> str | None:
        z = index.zones.get(zid) if zid is not None else None
        return z.code if z else None

    return ZoneLookup(
        cell=h3i.int_to_str(cell),
        sector_id=ref.sector_id,
        sector_code=code(ref.sector_id),
        district_id=ref.district_id,
        district_code=code(ref.district_id),
        region=ref.region,
    )


@router.get("", summary="Current zones of one level as GeoJSON")
def list_zones(
    session: SessionDep,
    principal: Viewer,
    level: Annotated[str, Query(description="country, region, district or sector")] = "sector",
    region: str | None = None,
) -> dict[str, Any]:
    if level not in LEVELS:
        raise InvalidInput(f"level must be one of {', '.join(LEVELS)}")
    scope = principal.scope(region)
    if level == "country" and principal.region is not None:
        scope = None  # the country outline is not regional information
    return zones_feature_collection(session=session, level=level, region=scope)


@router.get("/lookup", response_model=ZoneLookup, summary="Zones of a point")
def lookup_point(request: Request, principal: Viewer, lat: float, lng: float) -> ZoneLookup:
    if not valid_latlng(lat, lng):
        raise InvalidInput("coordinates out of range")
    index = _index(request)
    p = LatLng(lat, lng)
    return _describe(index, int(h3i.latlng_to_cell(lat, lng, index.res)), index.lookup(p))


@router.get("/cells/{cell}", response_model=ZoneLookup, summary="Zones of an H3 cell")
def lookup_cell(request: Request, principal: Viewer, cell: str) -> ZoneLookup:
    try:
        value = h3i.str_to_int(cell)
        ok = h3i.is_valid_cell(value)
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise InvalidInput(f"{cell!r} is not an H3 cell")
    index = _index(request)
    if h3i.get_resolution(value) < index.res:
        raise InvalidInput(f"cell resolution must be >= {index.res}")
    zc = int(h3i.cell_to_parent(value, index.res))
    return _describe(index, zc, index.lookup_cell(value))


@router.get("/coverage", summary="Cells an available crew reaches within the target, and the gaps")
async def coverage(
    request: Request,
    settings: SettingsDep,
    principal: Planner,
    minutes: Annotated[float, Query(gt=0, le=120)] = 10.0,
    region: str | None = None,
    per_cell: bool = False,
) -> dict[str, Any]:
    scope = principal.scope(region)
    index = _index(request)
    road = getattr(request.app.state, "router", None)
    fleet = getattr(request.app.state, "fleet", None)
    if road is None:
        raise ConfigurationError("no road graph loaded: coverage needs the routing engine")
    sources = fleet_sources(fleet, region=scope) if fleet is not None else []
    cells = index.cells(region=scope)
    result = await run_in_threadpool(
        compute_coverage,
        router=road,
        sources=sources,
        target_s=minutes * 60.0,
        res=index.res,
        cells=cells or None,
    )
    return {
        "summary": result.summary(),
        "gaps": result.gaps_hex(),
        "layer": coverage_geojson(result, merge=not per_cell),
    }


@router.get("/validate", summary="Per level: uncovered and orphan cells")
def validate(session: SessionDep, principal: Planner) -> dict[str, dict[str, int]]:
    return validate_hierarchy(session=session)


@router.post("/import", summary="Import zones of one level from GeoJSON polygons (admin)")
def import_zones(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Admin,
    geojson: Annotated[dict[str, Any], Body(description="GeoJSON FeatureCollection")],
    level: str,
    region: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    report = import_geojson(
        session=session, geojson=geojson, level=level, region=region, settings=settings,
        dry_run=dry_run,
    )
    if report.applied:
        request.app.state.zone_index = ZoneIndex.load(session, settings)
    return report.summary()


@router.post("/reload", summary="Reload the in-memory zone index (admin)")
def reload_index(
    request: Request, session: SessionDep, settings: SettingsDep, principal: Admin
) -> dict[str, int]:
    index = ZoneIndex.load(session, settings)
    request.app.state.zone_index = index
    return {"zones": len(index.zones), "cells": len(index.cell_combo)}
