"""Coverage: which zone cells an available crew can reach within a target time, and the gaps.

One multi-source search over the road graph (``Router.multi_source_times``) gives, for every road
node, the drive time from the nearest crew. Each node lies in one H3 cell at the zone resolution,
so a cell's time is the minimum over its nodes. Cells of the zones with no road node at all are
unreachable by car and reported as gaps too (``no_road``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
from h3.api import basic_int as h3i
from shapely.geometry import mapping
from sqlalchemy import text

from geodispatch.geo import LatLng
from geodispatch.routing.graph import RoadGraph

if TYPE_CHECKING:
    from geodispatch.tracking.fleet import LiveFleet
from geodispatch.zones.cells import cells_to_multipolygon

FloatArray = npt.NDArray[np.float64]


class TimesRouter(Protocol):
    """What coverage needs from ``geodispatch.routing.engine.Router``."""

    @property
    def graph(self) -> RoadGraph: ...

    def multi_source_times(self, sources: Sequence[LatLng], limit_s: float) -> FloatArray: ...


@dataclass(frozen=True)
class NodeCells:
    """Road nodes grouped by H3 cell: ``cells[k]`` holds nodes ``order[starts[k]:starts[k+1]]``."""

    res: int
    cells: npt.NDArray[np.int64]
    order: npt.NDArray[np.int64]
    starts: npt.NDArray[np.int64]

    @classmethod
    def build(cls, node_lat: npt.ArrayLike, node_lng: npt.ArrayLike, res: int) -> NodeCells:
        lat = np.asarray(node_lat, dtype=np.float64)
        lng = np.asarray(node_lng, dtype=np.float64)
        to_cell = h3i.latlng_to_cell
        node_cell = np.fromiter(
            (to_cell(a, b, res) for a, b in zip(lat.tolist(), lng.tolist(), strict=True)),
            dtype=np.uint64,
            count=lat.size,
        ).astype(np.int64)
        order = np.argsort(node_cell, kind="stable")
        sorted_cells = node_cell[order]
        first = np.flatnonzero(np.r_[True, sorted_cells[1:] != sorted_cells[:-1]])
        return cls(res=res, cells=sorted_cells[first], order=order, starts=first)

    def cell_times(self, node_times: FloatArray) -> FloatArray:
        """Minimum node time per cell (``inf`` where no node was reached)."""
        if self.cells.size == 0:
            return np.empty(0)
        ordered = np.asarray(node_times, dtype=np.float64)[self.order]
        return np.minimum.reduceat(ordered, self.starts)


_NODE_CELLS: dict[tuple[int, int], tuple[object, NodeCells]] = {}


def node_cells_for(router: TimesRouter | RoadGraph, res: int) -> NodeCells:
    """Node -> cell grouping of the router's graph, computed once per graph and resolution."""
    graph = router if isinstance(router, RoadGraph) else router.graph
    key = (id(graph), res)
    hit = _NODE_CELLS.get(key)
    if hit is not None and hit[0] is graph:
        return hit[1]
    nc = NodeCells.build(graph.node_lat, graph.node_lng, res)
    _NODE_CELLS.clear()  # one graph per process; do not keep old ones alive
    _NODE_CELLS[key] = (graph, nc)
    return nc


@dataclass
class CoverageResult:
    """Coverage of a cell set at a target time."""

    target_s: float
    res: int
    crews: int
    cells_total: int
    cells_covered: int
    gap_cells: list[int]
    no_road_cells: list[int]
    cell_times: dict[int, float] = field(repr=False)
    elapsed_ms: float = 0.0

    @property
    def coverage_pct(self) -> float:
        return 100.0 * self.cells_covered / self.cells_total if self.cells_total else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "target_s": self.target_s,
            "res": self.res,
            "crews": self.crews,
            "cells_total": self.cells_total,
            "cells_covered": self.cells_covered,
            "coverage_pct": round(self.coverage_pct, 2),
            "gap_cells": len(self.gap_cells),
            "no_road_cells": len(self.no_road_cells),
            "elapsed_ms": round(self.elapsed_ms, 1),
        }

    def gaps_hex(self) -> list[str]:
        return [h3i.int_to_str(c) for c in self.gap_cells]


def coverage_from_times(
    node_times: FloatArray,
    node_cells: NodeCells,
    *,
    target_s: float,
    cells: Iterable[int] | None = None,
    crews: int = 0,
) -> CoverageResult:
    """Aggregate node times to cells and split the cells into covered and gaps.

    Parameters
    ----------
    node_times : ndarray of float
        Drive time from the nearest crew to each road node (``inf`` = not reached).
    node_cells : NodeCells
        Grouping of the same nodes by cell.
    target_s : float
        A cell is covered when its best time is ``<= target_s``.
    cells : iterable of int, optional
        The cells that should be covered (a region's zone cells). Default: every cell with a node.

    Returns
    -------
    CoverageResult
        ``gap_cells`` includes cells without any road node (also listed in ``no_road_cells``).
    """
    times = node_cells.cell_times(node_times)
    by_cell = dict(zip(node_cells.cells.tolist(), times.tolist(), strict=True))
    wanted = list(by_cell) if cells is None else list(dict.fromkeys(int(c) for c in cells))
    inf = float("inf")
    cell_times = {c: by_cell.get(c, inf) for c in wanted}
    no_road = sorted(c for c in wanted if c not in by_cell)
    gaps = sorted(c for c, t in cell_times.items() if not t <= target_s)
    return CoverageResult(
        target_s=target_s,
        res=node_cells.res,
        crews=crews,
        cells_total=len(wanted),
        cells_covered=len(wanted) - len(gaps),
        gap_cells=gaps,
        no_road_cells=no_road,
        cell_times=cell_times,
    )


def compute_coverage(
    *,
    router: TimesRouter,
    sources: Sequence[LatLng],
    target_s: float,
    res: int,
    cells: Iterable[int] | None = None,
) -> CoverageResult:
    """Coverage of ``cells`` by crews at ``sources`` within ``target_s``: one multi-source search.

    The search is bounded at ``target_s`` (nothing beyond it matters for coverage), so its cost
    grows with the covered area, not with the graph.
    """
    t0 = time.perf_counter()
    nc = node_cells_for(router, res)
    if sources:
        node_times = router.multi_source_times(list(sources), float(target_s))
    else:
        node_times = np.full(nc.order.size, np.inf)
    result = coverage_from_times(node_times, nc, target_s=target_s, cells=cells, crews=len(sources))
    result.elapsed_ms = (time.perf_counter() - t0) * 1000.0
    return result


def fleet_sources(fleet: LiveFleet, *, region: str | None = None) -> list[LatLng]:
    """Positions of available, non-stale crews of the live fleet (optionally of one region)."""
    out: list[LatLng] = []
    for u in fleet.snapshot():
        if getattr(u, "status", None) != "available" or getattr(u, "stale", False):
            continue
        if u.position is None or (region is not None and u.region != region):
            continue
        out.append(u.position)
    return out


def coverage_geojson(result: CoverageResult, *, merge: bool = True) -> dict[str, Any]:
    """Map layer: covered and gap areas (merged polygons) or one feature per cell.

    With ``merge`` the layer has at most two features, ``covered`` and ``gap``, each the outline
    of its cells; otherwise every cell is a feature with its best time in seconds.
    """
    features: list[dict[str, Any]] = []
    gap_set = set(result.gap_cells)
    if merge:
        covered = [c for c in result.cell_times if c not in gap_set]
        for status, cells in (("covered", covered), ("gap", result.gap_cells)):
            if cells:
                features.append(
                    {
                        "type": "Feature",
                        "geometry": mapping(cells_to_multipolygon(cells)),
                        "properties": {"status": status, "cells": len(cells)},
                    }
                )
    else:
        for c, t in result.cell_times.items():
            ring = [[lng, lat] for lat, lng in h3i.cell_to_boundary(c)]
            ring.append(ring[0])
            features.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                    "properties": {
                        "cell": h3i.int_to_str(c),
                        "time_s": None if t == float("inf") else round(t, 1),
                        "status": "gap" if c in gap_set else "covered",
                    },
                }
            )
    return {
        "type": "FeatureCollection",
        "features": features,
        "properties": result.summary(),
    }


def database_sources(
    *, session: Any, stale_after_s: float, region: str | None = None
) -> list[LatLng]:
    """Positions of available, active crews with a fresh fix, read from ``unit_latest``.

    For processes without a live fleet in memory (the CLI); the API uses :func:`fleet_sources`.
    """
    rows = session.execute(
        text(
            "SELECT ST_Y(ul.geom), ST_X(ul.geom) FROM unit_latest ul "
            "JOIN units u ON u.id = ul.unit_id "
            "WHERE u.active AND u.status = 'available' "
            "AND ul.fix_time > now() - make_interval(secs => :stale) "
            "AND (CAST(:region AS text) IS NULL OR u.region = :region)"
        ),
        {"stale": stale_after_s, "region": region},
    ).all()
    return [LatLng(float(lat), float(lng)) for lat, lng in rows]
