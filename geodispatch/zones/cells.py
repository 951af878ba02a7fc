"""The typed adapter over h3 for zones: integer cells, polygons <-> cell sets, compaction.

Zones handle H3 cells as Python ``int`` (what PostgreSQL stores in ``BIGINT``); h3's string form
never leaves this module. Coordinates arrive as :class:`~geodispatch.geo.LatLng` or as GeoJSON
(``lng, lat``) and are converted here, nowhere else.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from h3.api import basic_int as h3i
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry

from geodispatch.geo import LatLng

M_PER_DEG_LAT = 111_320.0


def cell_of(p: LatLng, res: int) -> int:
    """The H3 cell (as int) containing ``p`` at ``res``."""
    return int(h3i.latlng_to_cell(p.lat, p.lng, res))


def to_res(cell: int, res: int) -> int:
    """``cell`` brought to ``res``: its parent when finer, its centre child when coarser."""
    r = h3i.get_resolution(cell)
    if r == res:
        return cell
    if r > res:
        return int(h3i.cell_to_parent(cell, res))
    return int(h3i.cell_to_center_child(cell, res))


def cell_center(cell: int) -> LatLng:
    lat, lng = h3i.cell_to_latlng(cell)
    return LatLng(lat=float(lat), lng=float(lng))


def cell_boundary(cell: int) -> list[LatLng]:
    return [LatLng(lat=float(a), lng=float(b)) for a, b in h3i.cell_to_boundary(cell)]


def edge_length_m(res: int) -> float:
    """Average hexagon edge length at ``res`` in metres."""
    return float(h3i.average_hexagon_edge_length(res, "m"))


def compact(cells: Iterable[int]) -> list[int]:
    """Compacted representation (mixed resolutions) of a same-resolution cell set, sorted."""
    return sorted(int(c) for c in h3i.compact_cells(sorted(set(cells))))


def uncompact(cells: Iterable[int], res: int) -> set[int]:
    """Expand a compacted set back to ``res``."""
    cells = list(cells)
    if not cells:
        return set()
    return {int(c) for c in h3i.uncompact_cells(cells, res)}


def geometry_to_cells(geom: BaseGeometry | Mapping[str, Any], res: int) -> set[int]:
    """Cells whose centre lies inside a (Multi)Polygon given as shapely or GeoJSON (lng, lat).

    Centre containment (h3's ``polyfill``) assigns each cell to at most one of several
    non-overlapping polygons, so adjacent official boundaries partition the cells cleanly.
    """
    g = geom if isinstance(geom, BaseGeometry) else shape(geom)
    if g.is_empty:
        return set()
    return {int(c) for c in h3i.geo_to_cells(mapping(g), res)}


def bbox_cells(bbox: tuple[float, float, float, float], res: int) -> set[int]:
    """Cells covering ``(min_lat, min_lng, max_lat, max_lng)``, any overlap counts."""
    min_lat, min_lng, max_lat, max_lng = bbox
    if not (min_lat < max_lat and min_lng < max_lng):
        raise ValueError(f"empty bbox {bbox}")
    poly = Polygon(
        [(min_lng, min_lat), (max_lng, min_lat), (max_lng, max_lat), (min_lng, max_lat)]
    )
    shp = h3i.geo_to_h3shape(mapping(poly))
    return {int(c) for c in h3i.h3shape_to_cells_experimental(shp, res, contain="overlap")}


def cells_to_multipolygon(cells: Iterable[int]) -> MultiPolygon:
    """The outline of a cell set as a shapely MultiPolygon in (lng, lat)."""
    cells = list(cells)
    if not cells:
        return MultiPolygon()
    g = shape(h3i.cells_to_geo(cells))
    if isinstance(g, Polygon):
        return MultiPolygon([g])
    assert isinstance(g, MultiPolygon)
    return g


def neighbours(cell: int) -> list[int]:
    return [int(c) for c in h3i.grid_disk(cell, 1) if c != cell]


def deg_per_m(lat: float) -> tuple[float, float]:
    """Degrees of latitude and of longitude per metre at latitude ``lat``."""
    return 1.0 / M_PER_DEG_LAT, 1.0 / (M_PER_DEG_LAT * max(0.01, math.cos(math.radians(lat))))


def parent(cell: int, res: int) -> int:
    """The ancestor of ``cell`` at the coarser ``res``."""
    return int(h3i.cell_to_parent(cell, res))
