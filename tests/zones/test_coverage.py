"""Coverage: one multi-source search, node times to H3 cells, gaps listed and mapped.

The routing engine's ``Router`` is replaced here by a tiny router over a synthetic grid graph
(scipy's Dijkstra), which exposes the same ``multi_source_times`` and ``graph.node_lat/lng``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
from h3.api import basic_int as h3i
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from geodispatch.geo import LatLng, haversine_m
from geodispatch.zones.coverage import (
    NodeCells,
    compute_coverage,
    coverage_from_times,
    coverage_geojson,
    fleet_sources,
)

RES = 8
SPEED = 10.0  # m/s


@dataclass
class _Graph:
    node_lat: npt.NDArray[np.float64]
    node_lng: npt.NDArray[np.float64]
    matrix: csr_matrix


class GridRouter:
    """A square street grid (``n`` x ``n`` nodes, ``step_m`` apart) driven at 10 m/s."""

    def __init__(self, origin: LatLng, n: int = 40, step_m: float = 100.0) -> None:
        dlat = step_m / 111_320.0
        dlng = dlat / np.cos(np.radians(origin.lat))
        ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        lat = origin.lat + ii.ravel() * dlat
        lng = origin.lng + jj.ravel() * dlng
        idx = (ii * n + jj)
        rows, cols = [], []
        for a, b in ((idx[:, :-1], idx[:, 1:]), (idx[:-1, :], idx[1:, :])):
            rows += [a.ravel(), b.ravel()]
            cols += [b.ravel(), a.ravel()]
        r, c = np.concatenate(rows), np.concatenate(cols)
        w = np.full(r.size, step_m / SPEED)
        self.graph = _Graph(lat, lng, csr_matrix((w, (r, c)), shape=(n * n, n * n)))

    def multi_source_times(self, sources: Sequence[LatLng], limit_s: float) -> np.ndarray:
        g = self.graph
        nodes = sorted({
            int(np.argmin((g.node_lat - p.lat) ** 2 + (g.node_lng - p.lng) ** 2)) for p in sources
        })
        return dijkstra(g.matrix, indices=nodes, min_only=True, limit=limit_s)


ORIGIN = LatLng(42.50, 1.50)


def test_one_crew_covers_cells_within_target() -> None:
    """Cells whose nearest node is within 3 min of the crew are covered, the others are gaps."""
    router = GridRouter(ORIGIN)
    crew = LatLng(float(router.graph.node_lat[820]), float(router.graph.node_lng[820]))
    result = compute_coverage(router=router, sources=[crew], target_s=180.0, res=RES)
    assert result.crews == 1 and 0 < result.cells_covered < result.cells_total
    for cell, t in result.cell_times.items():
        lat, lng = h3i.cell_to_latlng(cell)
        if t <= 180.0:
            assert cell not in result.gap_cells
        else:
            assert cell in result.gap_cells
    # Manhattan distance bounds: nothing further than 1.8 km as the crow flies is covered.
    for cell, t in result.cell_times.items():
        if t <= 180.0:
            assert haversine_m(crew, LatLng(*h3i.cell_to_latlng(cell))) < 1800 + 600


def test_more_crews_never_reduce_coverage() -> None:
    """Adding crews can only add covered cells."""
    router = GridRouter(ORIGIN)
    g = router.graph
    one = [LatLng(float(g.node_lat[0]), float(g.node_lng[0]))]
    two = one + [LatLng(float(g.node_lat[-1]), float(g.node_lng[-1]))]
    r1 = compute_coverage(router=router, sources=one, target_s=120.0, res=RES)
    r2 = compute_coverage(router=router, sources=two, target_s=120.0, res=RES)
    assert set(r2.gap_cells) <= set(r1.gap_cells) and r2.cells_covered > r1.cells_covered


def test_cells_without_roads_are_gaps() -> None:
    """A zone cell with no road node is a gap and listed as no_road; no crews = all gaps."""
    router = GridRouter(ORIGIN, n=10)
    far = h3i.latlng_to_cell(42.0, 1.0, RES)
    nc = NodeCells.build(router.graph.node_lat, router.graph.node_lng, RES)
    zone = [*nc.cells.tolist(), far]
    result = compute_coverage(router=router, sources=[ORIGIN], target_s=600.0, res=RES, cells=zone)
    assert result.gap_cells == [far] and result.no_road_cells == [far]
    empty = compute_coverage(router=router, sources=[], target_s=600.0, res=RES, cells=zone)
    assert empty.cells_covered == 0 and len(empty.gap_cells) == len(zone)


def test_cell_time_is_min_over_nodes() -> None:
    """coverage_from_times takes the minimum node time within each cell."""
    lat = np.array([42.5, 42.5, 42.6])
    lng = np.array([1.5, 1.5, 1.6])
    nc = NodeCells.build(lat, lng, RES)
    res = coverage_from_times(np.array([50.0, 20.0, np.inf]), nc, target_s=30.0)
    c0 = h3i.latlng_to_cell(42.5, 1.5, RES)
    assert res.cell_times[c0] == 20.0 and res.cells_covered == 1 and res.cells_total == 2


def test_geojson_layer() -> None:
    """The merged layer has a covered and a gap feature; per-cell features carry the time."""
    router = GridRouter(ORIGIN, n=20)
    result = compute_coverage(router=router, sources=[ORIGIN], target_s=60.0, res=RES)
    layer = coverage_geojson(result)
    assert {f["properties"]["status"] for f in layer["features"]} == {"covered", "gap"}
    assert layer["properties"]["cells_total"] == result.cells_total
    cells = coverage_geojson(result, merge=False)["features"]
    assert len(cells) == result.cells_total
    ring = cells[0]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and 1.4 < ring[0][0] < 1.7  # (lng, lat) order


@pytest.mark.parametrize("status,stale,counted", [("available", False, True),
                                                  ("dispatched", False, False),
                                                  ("available", True, False)])
def test_fleet_sources_only_available_fresh(status: str, stale: bool, counted: bool) -> None:
    """Only available, non-stale crews with a position are coverage sources."""

    @dataclass
    class U:
        status: str
        stale: bool
        position: LatLng | None
        region: str

    class Fleet:
        def snapshot(self) -> list[U]:
            return [U(status, stale, ORIGIN, "ADX"), U("available", False, None, "ADX")]

    assert (fleet_sources(Fleet()) == [ORIGIN]) is counted
    assert fleet_sources(Fleet(), region="KV") == []
