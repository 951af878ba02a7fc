"""HTTP endpoints of analytics (analysts, supervisors, admins, the national centre).

* ``GET /api/analytics/cells`` per-H3-cell count / median / p90 / share within target (JSON);
* ``GET /api/analytics/summary`` the same figures grouped by hour, dow, category, priority,
  sector, region or cell;
* ``GET /api/analytics/cells.geojson`` any interval's figures per H3 cell as GeoJSON hexagons,
  filtered by category and priority (the console's heatmap and its GeoJSON export);
* ``GET /api/analytics/incidents`` per-incident intervals (never the caller's phone number);
* ``GET /api/analytics/heatmap`` the self-contained folium page;
* ``GET /api/analytics/charts/{name}.png`` distribution / by-hour charts;
* ``GET /api/analytics/report`` the commander's self-contained HTML report of a zone or region;
* ``POST /api/analytics/refresh`` recompute intervals (not the read-only national role).

Regional users see their own region only; a ``region`` outside it is refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text

from geodispatch.analytics.aggregates import DIMENSIONS, INTERVALS, aggregate, cell_stats
from geodispatch.analytics.cellmap import cell_feature_collection
from geodispatch.analytics.charts import chart_png
from geodispatch.analytics.heatmap import METRICS, heatmap_html
from geodispatch.analytics.intervals import refresh_intervals
from geodispatch.analytics.report import build_report, resolve_scope
from geodispatch.api.deps import SessionDep, SettingsDep, get_state, require_roles
from geodispatch.api.security import ADMIN, ANALYST, NATIONAL, SUPERVISOR, Principal
from geodispatch.errors import InvalidInput

router = APIRouter(prefix="/api/analytics", tags=["analytics"])

Reader = Annotated[Principal, Depends(require_roles(ANALYST, SUPERVISOR, ADMIN, NATIONAL))]
Writer = Annotated[Principal, Depends(require_roles(ANALYST, SUPERVISOR, ADMIN))]
From = Annotated[datetime | None, Query(alias="from", description="received at or after (ISO)")]
To = Annotated[datetime | None, Query(alias="to", description="received before (ISO)")]
Res = Annotated[int, Query(ge=7, le=9, description="H3 resolution (7, 8 or 9)")]


class CellOut(BaseModel):
    """Figures of one H3 cell (``cell`` as hex); times in seconds, ``within_target`` 0..1."""

    cell: str
    count: int
    n: int
    median_s: float | None
    p90_s: float | None
    within_target: float | None


class CellsOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "res": 8, "target_s": 600.0, "cells": [{"cell": "88283082a3fffff", "count": 31, "n": 29,
                                                "median_s": 402.0, "p90_s": 655.2,
                                                "within_target": 0.862}]}]})

    res: int
    target_s: float
    cells: list[CellOut]


class IncidentIntervals(BaseModel):
    """One incident's intervals; no caller data."""

    reference: str
    received_at: datetime
    region: str
    category: str
    priority: int
    sector_id: int | None
    registration_s: float | None
    queue_s: float | None
    call_processing_s: float | None
    turnout_s: float | None
    travel_s: float | None
    total_response_s: float | None
    on_scene_s: float | None
    crews: int



@router.get("/cells", summary="Total response per H3 cell: count, median, p90, within target")
def cells(
    session: SessionDep, settings: SettingsDep, principal: Reader, res: Res = 8,
    start: From = None, end: To = None, region: str | None = None,
    target_s: float | None = None,
) -> CellsOut:
    target = settings.response_target_s if target_s is None else target_s
    stats = cell_stats(session=session, res=res, start=start, end=end,
                       region=principal.scope(region), target_s=target)
    return CellsOut(res=res, target_s=target, cells=[CellOut(**r) for r in stats.rows()])


@router.get("/cells.geojson",
            summary="Any interval's figures per H3 cell as GeoJSON hexagons (category, priority)")
def cells_geojson(
    session: SessionDep, settings: SettingsDep, principal: Reader, res: Res = 8,
    interval: Annotated[str, Query(description=f"one of {', '.join(INTERVALS)}")] = (
        "total_response_s"),
    start: From = None, end: To = None, region: str | None = None,
    category: str | None = None, priority: int | None = None, target_s: float | None = None,
) -> dict[str, Any]:
    target = settings.response_target_s if target_s is None else target_s
    return cell_feature_collection(session=session, res=res, interval=interval, start=start,
                                   end=end, region=principal.scope(region), category=category,
                                   priority=priority, target_s=target)


@router.get("/summary", summary="An interval's figures grouped by hour, category, zone, cell...")
def summary(
    session: SessionDep, settings: SettingsDep, principal: Reader,
    by: Annotated[list[str] | None, Query(description=f"any of {', '.join(DIMENSIONS)}")] = None,
    interval: Annotated[str, Query(description=f"one of {', '.join(INTERVALS)}")] = (
        "total_response_s"),
    start: From = None, end: To = None, region: str | None = None,
    category: str | None = None, priority: int | None = None, target_s: float | None = None,
) -> list[dict[str, Any]]:
    target = settings.response_target_s if target_s is None else target_s
    rows = aggregate(session=session, by=by or [], interval=interval, start=start, end=end,
                     region=principal.scope(region), category=category, priority=priority,
                     target_s=target)
    return [r.as_dict() for r in rows]


@router.get("/incidents", summary="Per-incident response intervals (no caller data)")
def incidents(
    session: SessionDep, principal: Reader, start: From = None, end: To = None,
    region: str | None = None, limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> list[IncidentIntervals]:
    where, params = ["TRUE"], dict[str, Any](limit=limit)
    scope = principal.scope(region)
    for cond, name, value in (("r.received_at >= :s", "s", start), ("r.received_at < :e", "e", end),
                              ("r.region = :g", "g", scope)):
        if value is not None:
            where.append(cond)
            params[name] = value
    rows = session.execute(text(
        "SELECT i.reference, r.received_at, r.region, r.category, r.priority, r.sector_id, "
        "r.registration_s, r.queue_s, r.call_processing_s, r.turnout_s, r.travel_s, "
        "r.total_response_s, r.on_scene_s, r.crews FROM response_intervals r "
        f"JOIN incidents i ON i.id = r.incident_id WHERE {' AND '.join(where)} "
        "ORDER BY r.received_at DESC LIMIT :limit"), params).mappings().all()
    return [IncidentIntervals(**row) for row in rows]


@router.get("/heatmap", summary="Self-contained folium heatmap page of one metric per H3 cell",
            response_class=HTMLResponse)
def heatmap(
    session: SessionDep, settings: SettingsDep, principal: Reader,
    router_: Annotated[object, Depends(get_state("router"))],
    metric: Annotated[str, Query(description=f"one of {', '.join(sorted(METRICS))}")] = (
        "p90_response"),
    res: Res = 8, start: From = None, end: To = None, region: str | None = None,
    target_s: float | None = None,
) -> HTMLResponse:
    page = heatmap_html(session=session, metric=metric, res=res, start=start, end=end,
                        region=principal.scope(region), target_s=target_s, settings=settings,
                        router=router_)
    return HTMLResponse(page)


@router.get("/charts/{name}.png", summary="PNG chart: response-time distribution or by hour",
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
def chart(
    session: SessionDep, settings: SettingsDep, principal: Reader,
    name: Literal["distribution", "by_hour"], start: From = None, end: To = None,
    region: str | None = None, target_s: float | None = None,
) -> Response:
    target = settings.response_target_s if target_s is None else target_s
    png = chart_png(name, session=session, start=start, end=end,
                    region=principal.scope(region), target_s=target)
    return Response(png, media_type="image/png")


@router.get("/report", summary="Self-contained HTML report of a zone or region over a period",
            response_class=HTMLResponse)
def report(
    session: SessionDep, settings: SettingsDep, principal: Reader,
    zone: Annotated[str | None, Query(description="zone code (with the zones below it)")] = None,
    start: From = None, end: To = None, region: str | None = None,
    category: str | None = None,
    priority: Annotated[int | None, Query(ge=1, le=4)] = None,
    target_s: float | None = None,
) -> HTMLResponse:
    scope = resolve_scope(session=session, start=start, end=end, region=principal.scope(region),
                          zone=zone, category=category, priority=priority)
    return HTMLResponse(build_report(session=session, scope=scope, target_s=target_s,
                                     settings=settings))


class RefreshOut(BaseModel):
    refreshed: int


@router.post("/refresh", summary="Recompute response intervals (all, or changed since)")
def refresh(session: SessionDep, principal: Writer, since: datetime | None = None) -> RefreshOut:
    if since is not None and since.tzinfo is None:
        raise InvalidInput("since needs a time zone")
    return RefreshOut(refreshed=refresh_intervals(session=session, since=since))
