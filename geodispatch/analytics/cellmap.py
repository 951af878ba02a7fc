"""Per-H3-cell figures of any response interval as GeoJSON polygons (the console's heatmap).

:func:`cell_feature_collection` groups ``response_intervals`` by the cells of one resolution
with :func:`~geodispatch.analytics.aggregates.aggregate` (so category, priority and any interval
filter the same way as ``/api/analytics/summary``) and draws each cell's hexagon. h3 gives
boundaries as ``(lat, lng)``; GeoJSON wants ``[lng, lat]``: the order is swapped here only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from h3.api import basic_str as h3s
from sqlalchemy.orm import Session

from geodispatch.analytics.aggregates import aggregate
from geodispatch.analytics.intervals import RESOLUTIONS
from geodispatch.errors import InvalidInput


def cell_ring(cell: str) -> list[list[float]]:
    """The closed GeoJSON ring (``[lng, lat]`` pairs) of a hex H3 cell."""
    ring = [[lng, lat] for lat, lng in h3s.cell_to_boundary(cell)]
    ring.append(ring[0])
    return ring


def cell_feature_collection(
    *,
    session: Session,
    res: int,
    interval: str,
    start: datetime | None,
    end: datetime | None,
    region: str | None,
    category: str | None,
    priority: int | None,
    target_s: float,
) -> dict[str, Any]:
    """One GeoJSON Feature per cell with incidents: ``cell``, ``count``, ``n``, ``median_s``,
    ``p90_s`` and ``within_target`` of ``interval`` (the figures of ``/summary?by=h3_<res>``)."""
    if res not in RESOLUTIONS:
        raise InvalidInput(f"H3 resolution must be one of {RESOLUTIONS}, not {res}")
    rows = aggregate(session=session, by=[f"h3_{res}"], interval=interval, start=start, end=end,
                     region=region, category=category, priority=priority, target_s=target_s)
    features = []
    for row in rows:
        cell = str(row.key[f"h3_{res}"])
        props = {"cell": cell, "count": row.count, "n": row.n, "median_s": row.median_s,
                 "p90_s": row.p90_s, "within_target": row.within_target}
        features.append({"type": "Feature", "properties": props,
                         "geometry": {"type": "Polygon", "coordinates": [cell_ring(cell)]}})
    return {"type": "FeatureCollection", "interval": interval, "res": res, "target_s": target_s,
            "features": features}
