"""Pydantic shapes of the road endpoints."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class SnapOut(BaseModel):
    """Where a point meets the road graph."""

    node: int = Field(description="Nearer end node of the snapped road segment.")
    distance_m: float = Field(description="Distance from the point to the road.")
    on_road: bool = Field(description="False when further than snap_max_m from any road.")
    lat: float = Field(description="Snapped point on the road.")
    lng: float
    segment: int


class RouteProperties(BaseModel):
    eta_s: float = Field(description="Drive time in seconds.")
    distance_m: float = Field(description="Road distance in metres.")


class RouteFeature(BaseModel):
    """A GeoJSON Feature: the LineString of the drive (``[lng, lat]``), its time and length."""

    model_config = {"json_schema_extra": {"examples": [{
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": [[-76.61, 39.29], [-76.60, 39.29]]},
        "properties": {"eta_s": 95.2, "distance_m": 812.4},
    }]}}

    type: str = "Feature"
    geometry: dict[str, Any]
    properties: RouteProperties


class GraphInfo(BaseModel):
    """The road graph loaded by this process."""

    nodes: int
    edges: int
    segments: int
    spurs: int = Field(0, description="roads left out of the network but kept snappable "
                       "(placed at the junction they are reached from)")
    oneway_segments: int
    directed_km: float
    bbox: list[float] | None = Field(description="[min_lat, min_lng, max_lat, max_lng]")
    source: str | None = None
    built_at: str | None = None
