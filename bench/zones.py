"""Benchmark of zones: point -> zone look-ups and fleet coverage.

What is measured

1. **Cell look-up**: 1,000,000 random points over a Kyiv-sized extent (about 40 x 40 km, res-8
   cells, sectors = res-7 parents, districts = res-6 parents, generated with
   ``generate_zones`` inside a transaction that is rolled back at the end) resolved to
   (sector, district, region) by ``ZoneIndex.lookup_many`` (target >= 1,000,000 points/s), by
   per-point ``ZoneIndex.lookup`` (h3 + dict, for reference), and by PostGIS: ``ST_Contains``
   against the sector polygons (GiST index) and the ``zone_cells`` primary-key join, on a subset
   of ``--sql-points`` points (PostGIS is orders of magnitude slower; the subset is stated).
2. **Coverage**: one multi-source search from 500 crews over a >= 100k-node road graph, bounded
   at 10 minutes, then node -> cell aggregation (target <= 200 ms). The graph is the routing
   engineer's synthetic city (``geodispatch.routing.synthetic.synthetic_city``, ~108k nodes) driven
   through ``geodispatch.routing.engine.Router.multi_source_times`` when both exist; otherwise a
   320 x 320 perturbed street grid (102,400 nodes, travel times 8-20 s per 110 m block) searched
   with ``scipy.sparse.csgraph.dijkstra(min_only=True, limit=...)``, which is what the Router does.
   The output says which was used. The one-off node -> cell grouping (cached per graph) is timed
   separately.

Usage: ``python bench/zones.py [--points 1000000] [--sql-points 20000] [--crews 500]``.
Prints a table, then one JSON object (the last line of output).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from geodispatch.geo import LatLng  # noqa: E402

KYIV = LatLng(50.4501, 30.5234)
HALF_DEG_LAT = 0.18  # ~20 km
HALF_DEG_LNG = 0.28  # ~20 km at 50.45 N


def _best(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


# --- look-ups ----------------------------------------------------------------------------------


def bench_lookup(n_points: int, sql_points: int) -> dict[str, Any]:
    from sqlalchemy import text

    from geodispatch.db import app_engine, check_database, session_factory
    from geodispatch.settings import get_settings
    from geodispatch.zones.generation import generate_zones
    from geodispatch.zones.index import ZoneIndex

    settings = get_settings()
    engine = app_engine(settings)
    check_database(engine)
    bbox = (KYIV.lat - HALF_DEG_LAT, KYIV.lng - HALF_DEG_LNG,
            KYIV.lat + HALF_DEG_LAT, KYIV.lng + HALF_DEG_LNG)
    rng = np.random.default_rng(42)
    # Points over the extent plus a 10 % margin, so some fall outside every zone.
    lats = rng.uniform(bbox[0] - 0.02, bbox[2] + 0.02, n_points)
    lngs = rng.uniform(bbox[1] - 0.03, bbox[3] + 0.03, n_points)
    out: dict[str, Any] = {"points": n_points}
    with session_factory(engine)() as session:
        try:
            t = time.perf_counter()
            gen = generate_zones(session=session, bbox=bbox, country_code="BENCHC",
                                 region_code="BENCH", settings=settings)
            out["generate_s"] = time.perf_counter() - t
            out["sectors"] = len(gen.sectors)
            out["districts"] = len(gen.districts)
            t = time.perf_counter()
            index = ZoneIndex.load(session, settings)
            out["index_load_s"] = time.perf_counter() - t
            out["cells"] = len(index.cell_combo)
            assert index.grid is not None
            out["grid_mixed_pct"] = float((index.grid.values == -1).mean() * 100)

            index.lookup_many(lats[:1000], lngs[:1000])  # warm-up
            dt, res = _best(lambda: index.lookup_many(lats, lngs))
            out["lookup_many_s"] = dt
            out["lookup_many_pps"] = n_points / dt
            out["inside_pct"] = float((res.sector_id >= 0).mean() * 100)

            k = min(n_points, 200_000)
            pts = [LatLng(a, b) for a, b in zip(lats[:k].tolist(), lngs[:k].tolist(), strict=True)]
            dt, refs = _best(lambda: [index.lookup(p) for p in pts], repeat=1)
            out["lookup_loop_pps"] = k / dt
            agree = all((r.sector_id or -1) == int(s) for r, s in zip(refs, res.sector_id[:k],
                                                                      strict=True))
            out["loop_agrees"] = agree

            m = min(sql_points, n_points)
            out["sql_points"] = m
            params = {"lat": lats[:m].tolist(), "lng": lngs[:m].tolist()}
            st_contains = text(
                "SELECT count(z.id) FROM unnest(CAST(:lat AS float8[]), CAST(:lng AS float8[])) "
                "AS p(lat, lng) LEFT JOIN zones z ON z.level = 'sector' AND z.valid_to IS NULL "
                "AND ST_Contains(z.geom, ST_SetSRID(ST_MakePoint(p.lng, p.lat), 4326))"
            )
            session.execute(text("ANALYZE zones"))  # new rows: let the planner use the GiST index
            dt, hits = _best(lambda: session.execute(st_contains, params).scalar_one(), repeat=2)
            out["st_contains_pps"] = m / dt
            from h3.api import basic_int as h3i

            cells = [h3i.latlng_to_cell(a, b, settings.h3_zone_res)
                     for a, b in zip(params["lat"], params["lng"], strict=True)]
            cell_join = text(
                "SELECT count(zc.zone_id) FROM unnest(CAST(:cells AS bigint[])) AS p(cell) "
                "LEFT JOIN zone_cells zc ON zc.cell = p.cell AND zc.level = 'sector'"
            )
            dt, hits2 = _best(lambda: session.execute(cell_join, {"cells": cells}).scalar_one(),
                              repeat=2)
            out["zone_cells_join_pps"] = m / dt
            out["sql_agree"] = int(hits) == int(hits2) == int((res.sector_id[:m] >= 0).sum())
        finally:
            session.rollback()
    engine.dispose()
    return out


# --- coverage ----------------------------------------------------------------------------------


class _GridRouter:
    """A perturbed square street grid with an O(1) snap; same search as the Router."""

    def __init__(self, n: int = 320, spacing_m: float = 110.0, seed: int = 3) -> None:
        from scipy.sparse import csr_matrix

        rng = np.random.default_rng(seed)
        dlat = spacing_m / 111_320.0
        dlng = dlat / np.cos(np.radians(KYIV.lat))
        self.n, self.dlat, self.dlng = n, dlat, dlng
        self.lat0 = KYIV.lat - n / 2 * dlat
        self.lng0 = KYIV.lng - n / 2 * dlng
        ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        idx = ii * n + jj
        rows, cols = [], []
        for a, b in ((idx[:, :-1], idx[:, 1:]), (idx[:-1, :], idx[1:, :])):
            rows += [a.ravel(), b.ravel()]
            cols += [b.ravel(), a.ravel()]
        r, c = np.concatenate(rows), np.concatenate(cols)
        w = rng.uniform(8.0, 20.0, r.size)  # 110 m at 20-50 km/h
        self.matrix = csr_matrix((w, (r, c)), shape=(n * n, n * n))

        class G:
            pass

        self.graph = G()
        self.graph.node_lat = (self.lat0 + ii.ravel() * dlat).astype(np.float64)  # type: ignore[attr-defined]
        self.graph.node_lng = (self.lng0 + jj.ravel() * dlng).astype(np.float64)  # type: ignore[attr-defined]
        self.n_nodes = n * n

    def multi_source_times(self, sources: Sequence[LatLng], limit_s: float) -> np.ndarray:
        from scipy.sparse.csgraph import dijkstra

        la = np.array([p.lat for p in sources])
        ln = np.array([p.lng for p in sources])
        i = np.clip(np.rint((la - self.lat0) / self.dlat), 0, self.n - 1).astype(np.int64)
        j = np.clip(np.rint((ln - self.lng0) / self.dlng), 0, self.n - 1).astype(np.int64)
        nodes = np.unique(i * self.n + j)
        return dijkstra(self.matrix, indices=nodes, min_only=True, limit=limit_s)


def _make_router() -> tuple[Any, str, int]:
    try:
        from geodispatch.routing.engine import Router
        from geodispatch.routing.synthetic import synthetic_city
    except ImportError:
        r = _GridRouter()
        kind = "own 320x320 perturbed grid, scipy dijkstra (routing engine not available)"
        return r, kind, r.n_nodes
    graph = synthetic_city()
    return Router(graph), "geodispatch.routing synthetic_city + Router.multi_source_times", int(
        graph.n_nodes
    )


def bench_coverage(n_crews: int, minutes: float) -> dict[str, Any]:
    from geodispatch.zones.coverage import compute_coverage, node_cells_for

    t = time.perf_counter()
    router, kind, n_nodes = _make_router()
    build_s = time.perf_counter() - t
    g = getattr(router, "graph", router)
    rng = np.random.default_rng(5)
    pick = rng.choice(n_nodes, size=n_crews, replace=False)
    crews = [LatLng(float(g.node_lat[i]), float(g.node_lng[i])) for i in pick]
    t = time.perf_counter()
    node_cells_for(router, 8)
    group_s = time.perf_counter() - t
    runs = []
    result = None
    for _ in range(5):
        t = time.perf_counter()
        result = compute_coverage(router=router, sources=crews, target_s=minutes * 60.0, res=8)
        runs.append(time.perf_counter() - t)
    assert result is not None
    return {
        "graph": kind,
        "nodes": n_nodes,
        "graph_build_s": build_s,
        "node_cell_grouping_s": group_s,
        "crews": n_crews,
        "target_min": minutes,
        "coverage_ms_median": statistics.median(runs) * 1000,
        "coverage_ms_best": min(runs) * 1000,
        "cells_total": result.cells_total,
        "cells_covered": result.cells_covered,
        "gap_cells": len(result.gap_cells),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--sql-points", type=int, default=20_000)
    ap.add_argument("--crews", type=int, default=500)
    ap.add_argument("--minutes", type=float, default=10.0)
    args = ap.parse_args(argv)

    lk = bench_lookup(args.points, args.sql_points)
    cov = bench_coverage(args.crews, args.minutes)

    rows = [
        ("zones generated (sectors/districts/cells)",
         f"{lk['sectors']}/{lk['districts']}/{lk['cells']} in {lk['generate_s']:.2f} s", ""),
        ("ZoneIndex.load (incl. raster)", f"{lk['index_load_s']:.2f} s",
         f"{lk['grid_mixed_pct']:.1f}% pixels mixed"),
        (f"lookup_many, {lk['points']:,} points", f"{lk['lookup_many_pps']:,.0f} pts/s",
         "target >= 1,000,000"),
        ("lookup (h3 + dict) loop, 200k points", f"{lk['lookup_loop_pps']:,.0f} pts/s",
         f"agrees: {lk['loop_agrees']}"),
        (f"PostGIS ST_Contains sectors, {lk['sql_points']:,} pts",
         f"{lk['st_contains_pps']:,.0f} pts/s",
         "GiST on zones.geom"),
        (f"PostGIS zone_cells join, {lk['sql_points']:,} pts",
         f"{lk['zone_cells_join_pps']:,.0f} pts/s", f"agrees: {lk['sql_agree']}"),
        (f"coverage {cov['crews']} crews, {cov['nodes']:,} nodes, {cov['target_min']:g} min",
         f"{cov['coverage_ms_median']:.0f} ms median", "target <= 200 ms"),
        ("  node -> cell grouping (once per graph)",
         f"{cov['node_cell_grouping_s'] * 1000:.0f} ms", ""),
        ("  cells covered / total", f"{cov['cells_covered']}/{cov['cells_total']}",
         f"{cov['gap_cells']} gaps"),
    ]
    w = max(len(r[0]) for r in rows)
    print(f"{'measure':<{w}}  {'result':>24}  note")
    for name, value, note in rows:
        print(f"{name:<{w}}  {value:>24}  {note}")
    print(f"coverage graph: {cov['graph']}")
    figures = {
        "bench": "zones",
        "lookup_points": lk["points"],
        "lookup_many_pps": round(lk["lookup_many_pps"]),
        "lookup_loop_pps": round(lk["lookup_loop_pps"]),
        "st_contains_pps": round(lk["st_contains_pps"]),
        "zone_cells_join_pps": round(lk["zone_cells_join_pps"]),
        "sql_points": lk["sql_points"],
        "results_agree": bool(lk["loop_agrees"] and lk["sql_agree"]),
        "zone_cells": lk["cells"],
        "index_load_s": round(lk["index_load_s"], 3),
        "coverage_nodes": cov["nodes"],
        "coverage_crews": cov["crews"],
        "coverage_ms_median": round(cov["coverage_ms_median"], 1),
        "coverage_graph": cov["graph"],
        "lookup_target_met": lk["lookup_many_pps"] >= 1_000_000,
        "coverage_target_met": cov["coverage_ms_median"] <= 200,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
