"""Benchmark of road routing: ranking crews for an incident, against networkx, pgRouting, pandana.

What is measured, on every extract in ``data/osm`` and on a synthetic city-scale graph:

* **Graphs.** The real extracts as imported by ``geodispatch graph import``. The large graph is
  SYNTHETIC (no real city extract of that size ships with the project): the perturbed street
  grid of :mod:`geodispatch.routing.synthetic` (330 x 330 junctions 110 m apart with ~25 m
  jitter, arterials every 10th street, trunk roads every 30th, 40 % one-way residential streets,
  8 % of blocks missing, largest strongly connected component kept: ~108,000 nodes). It is
  written to an ``.osm`` file first, so both importers are timed on the same file.
* **Crews and incidents.** 500 and 5,000 crews at random points on the roads; ``--queries``
  (default 1,000) random incidents near the roads (up to ~20 m off). The same crews and
  incidents for every engine.
* **geodispatch.** ``Router.rank`` for all crews (bounded at 1,800 s) and for the top 5
  (bounded search widened until 5 crews are settled). Times include snapping the incident;
  crews are snapped once (the Router keeps snaps of unchanged positions, as with a live fleet).
* **networkx.** ``single_source_dijkstra_path_length`` outward from the incident on the
  reversed graph (cutoff 1,800 s), with the incident and the crews joined to their edges by the
  same partial edge times: the exact reference. ``max_eta_diff_s`` compares every crew's ETA.
* **pgRouting.** ``pgr_dijkstraCost`` one-to-many in PostgreSQL on the same (reversed) edges, in
  a scratch schema ``bench_routing`` (never the demo's ``road_edges``), from the two ends of the
  incident's edge to the crews' edge ends; the partial edge times are added in Python.
* **pandana.** Contraction hierarchies built on the same reversed edges; ``nodes_in_range``
  (the same 1,800 s bound) from the two ends of the incident's edge, crews combined as above.
* **Garbage collector.** The timed loop runs after ``gc.freeze()``, as a server would freeze its
  start-up objects (graph, fleet, imported libraries); without it CPython's occasional full
  collection of those ~200k objects adds ~100 ms to about one rank-all query in 50 (top-5 queries
  allocate almost nothing and are unaffected).
* **Import.** ``import_osm_file`` (pyosmium) against ``osmnx.graph_from_xml`` on the same XML
  file (PBF and gzip extracts are converted to ``.osm`` first, outside the timing).

networkx, pgRouting and pandana run ``--peer-queries`` (default 50) incidents on the extracts and
``--peer-queries-big`` (default 20) on the synthetic city, a subset of the same incidents; their
per-query times do not depend on how many queries are run.

Usage: ``python bench/routing.py [--queries 1000] [--no-pgrouting] [--no-pandana] [--rows 330]``.
Prints a table, then one JSON object (the last line) for the largest graph with 5,000 crews.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from geodispatch.geo import LatLng  # noqa: E402
from geodispatch.routing.engine import Router  # noqa: E402
from geodispatch.routing.graph import RoadGraph  # noqa: E402
from geodispatch.routing.importer import import_osm_file  # noqa: E402
from geodispatch.routing.synthetic import synthetic_ways, write_osm  # noqa: E402
from geodispatch.settings import get_settings  # noqa: E402

LIMIT_S = 1800.0
CREW_COUNTS = (500, 5000)

log = logging.getLogger("bench.routing")


# --- inputs --------------------------------------------------------------------------------------

def points_on_roads(g: RoadGraph, n: int, rng: np.random.Generator, *, jitter_deg: float = 0.0
                    ) -> list[LatLng]:
    """Random points on the road geometry (pieces chosen in proportion to nothing: uniform)."""
    seg = rng.integers(0, g.n_segments, n)
    span = g.seg_end[seg] - g.seg_start[seg]
    i = g.seg_start[seg] + np.floor(rng.random(n) * span).astype(np.int64)
    t = rng.random(n)
    lat = g.coord_lat[i] + t * (g.coord_lat[i + 1] - g.coord_lat[i])
    lng = g.coord_lng[i] + t * (g.coord_lng[i + 1] - g.coord_lng[i])
    if jitter_deg:
        lat = lat + rng.uniform(-jitter_deg, jitter_deg, n)
        lng = lng + rng.uniform(-jitter_deg, jitter_deg, n)
    return [LatLng(float(a), float(b)) for a, b in zip(lat, lng, strict=True)]


@dataclass
class Snapped:
    """The incident's two entry seeds and each crew's two exits, as the Router sees them."""

    seeds: list[tuple[int, float]]  # (node, seconds from node to incident)
    xf: np.ndarray
    of: np.ndarray
    xb: np.ndarray
    ob: np.ndarray
    direct: np.ndarray


def snapped(router: Router, target: LatLng, crews: Sequence[tuple[int, LatLng]]) -> Snapped:
    """Partial-edge joins for peers that only know node-to-node costs."""
    g = router.graph
    w = router._base
    ts = router.snap(target)
    seeds = [(s[0], s[1]) for s in router._target_seeds(w, ts.segment, ts.fraction)]
    pts = router._snaps.snap_points([c[1] for c in crews])
    ex = router._exits(w, pts, ts.segment, ts.fraction)
    n = g.n_nodes
    return Snapped(seeds=seeds, xf=np.where(ex.xf < n, ex.xf, -1), of=ex.of,
                   xb=np.where(ex.xb < n, ex.xb, -1), ob=ex.ob, direct=ex.direct)


def combine(sn: Snapped, dist_from_seed: Callable[[int, np.ndarray], np.ndarray]) -> np.ndarray:
    """Crew ETAs from per-seed node distances: min over seeds and crew exits, or direct."""
    eta = sn.direct.copy()
    for seed, off in sn.seeds:
        for x, o in ((sn.xf, sn.of), (sn.xb, sn.ob)):
            ok = x >= 0
            d = np.full(x.shape[0], np.inf)
            d[ok] = dist_from_seed(seed, x[ok])
            eta = np.minimum(eta, off + d + o)
    eta[eta > LIMIT_S] = np.inf
    return eta


# --- peers ---------------------------------------------------------------------------------------

class NetworkxPeer:
    """networkx Dijkstra on the reversed graph with the incident and crews joined as nodes."""

    name = "networkx"

    def __init__(self, g: RoadGraph) -> None:
        import networkx as nx

        self.nx = nx
        self.R = nx.DiGraph()
        fast = g.fastest_edges()
        self.R.add_weighted_edges_from(
            zip(g.edge_dst[fast].tolist(), g.edge_src[fast].tolist(),
                g.edge_time_s[fast].tolist(), strict=True), weight="w")
        self.crews: set[Any] = set()

    def attach_crews(self, router: Router, crews: Sequence[tuple[int, LatLng]],
                     sample: Snapped) -> None:
        self.R.remove_nodes_from([c for c in self.crews])
        self.crews = set()
        for j, (uid, _) in enumerate(crews):
            node = ("C", uid)
            self.crews.add(node)
            if sample.xf[j] >= 0:
                self.R.add_edge(int(sample.xf[j]), node, w=float(sample.of[j]))
            if sample.xb[j] >= 0:
                self.R.add_edge(int(sample.xb[j]), node, w=float(sample.ob[j]))

    def query(self, sn: Snapped, crews: Sequence[tuple[int, LatLng]]) -> np.ndarray:
        R = self.R
        for seed, off in sn.seeds:
            R.add_edge("T", seed, w=off)
        direct = np.flatnonzero(np.isfinite(sn.direct))
        for j in direct:
            R.add_edge("T", ("C", crews[j][0]), w=float(sn.direct[j]))
        lengths = self.nx.single_source_dijkstra_path_length(R, "T", cutoff=LIMIT_S, weight="w")
        R.remove_node("T")
        return np.array([lengths.get(("C", uid), np.inf) for uid, _ in crews])


class PgRoutingPeer:
    """pgr_dijkstraCost one-to-many on the reversed edges in a scratch schema."""

    name = "pgrouting"

    def __init__(self, g: RoadGraph, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url.replace("+psycopg", ""), autocommit=True)
        fast = g.fastest_edges()
        with self.conn.cursor() as cur:
            cur.execute("CREATE SCHEMA IF NOT EXISTS bench_routing")
            cur.execute("DROP TABLE IF EXISTS bench_routing.edges")
            cur.execute("CREATE TABLE bench_routing.edges (id bigint, source bigint, "
                        "target bigint, cost float8)")
            # Reversed graph (source = edge's head) so the search runs outward from the incident;
            # vertex ids are node + 1 (pgRouting expects positive ids).
            with cur.copy("COPY bench_routing.edges (id, source, target, cost) FROM STDIN") as cp:
                for i, (u, v, w) in enumerate(zip(g.edge_dst[fast].tolist(),
                                                  g.edge_src[fast].tolist(),
                                                  g.edge_time_s[fast].tolist(), strict=True)):
                    cp.write_row((i + 1, u + 1, v + 1, w))
            cur.execute("ANALYZE bench_routing.edges")

    def query(self, sn: Snapped, crews: Sequence[tuple[int, LatLng]]) -> np.ndarray:
        ends = np.unique(np.concatenate([sn.xf[sn.xf >= 0], sn.xb[sn.xb >= 0]]))
        starts = [s for s, _ in sn.seeds]
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT start_vid - 1, end_vid - 1, agg_cost FROM pgr_dijkstraCost("
                "'SELECT id, source, target, cost FROM bench_routing.edges', "
                "%s::bigint[], %s::bigint[], directed => true)",
                ([s + 1 for s in starts], (ends + 1).tolist()))
            rows = cur.fetchall()
        table: dict[int, dict[int, float]] = {s: {s: 0.0} for s in starts}
        for s, e, c in rows:
            table[int(s)][int(e)] = float(c)
        return combine(sn, lambda s, xs: np.array([table[s].get(int(x), np.inf) for x in xs]))

    def close(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute("DROP SCHEMA IF EXISTS bench_routing CASCADE")
        self.conn.close()


@contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence pandana's C++ progress output (written straight to file descriptor 1)."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(devnull)
        os.close(saved)


class PandanaPeer:
    """pandana contraction hierarchies on the reversed edges; bounded range query per seed."""

    name = "pandana"

    def __init__(self, g: RoadGraph) -> None:
        import pandas as pd
        from pandana import Network

        fast = g.fastest_edges()
        nodes = pd.Index(np.arange(g.n_nodes), name="id")
        t0 = time.perf_counter()
        with warnings.catch_warnings(), _quiet_stdout():
            warnings.simplefilter("ignore")
            self.net = Network(pd.Series(g.node_lng, index=nodes),
                               pd.Series(g.node_lat, index=nodes),
                               pd.Series(g.edge_dst[fast].astype(np.int64)),
                               pd.Series(g.edge_src[fast].astype(np.int64)),
                               pd.DataFrame({"t": g.edge_time_s[fast]}), twoway=False)
        self.build_s = time.perf_counter() - t0
        self.n = g.n_nodes

    def query(self, sn: Snapped, crews: Sequence[tuple[int, LatLng]]) -> np.ndarray:
        starts = [s for s, _ in sn.seeds]
        with _quiet_stdout():
            df = self.net.nodes_in_range(starts, LIMIT_S, "t")
        dist: dict[int, np.ndarray] = {}
        cols = list(df.columns)
        src_col, dst_col, w_col = cols[0], cols[1], cols[2]
        for s in starts:
            part = df[df[src_col] == s]
            d = np.full(self.n, np.inf)
            d[part[dst_col].to_numpy(dtype=np.int64)] = part[w_col].to_numpy(dtype=np.float64)
            d[s] = 0.0
            dist[s] = d
        return combine(sn, lambda s, xs: dist[s][xs])


# --- measurement ---------------------------------------------------------------------------------

def pct(xs: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000.0, q)) if len(xs) else math.nan


@dataclass
class Row:
    graph: str
    nodes: int
    edges: int
    units: int
    top5_p50_ms: float = math.nan
    top5_p99_ms: float = math.nan
    rank_all_p50_ms: float = math.nan
    rank_all_p99_ms: float = math.nan
    networkx_p50_ms: float = math.nan
    pgrouting_p50_ms: float = math.nan
    pandana_p50_ms: float = math.nan
    max_eta_diff_s: float = math.nan
    pgrouting_max_diff_s: float = math.nan
    pandana_max_diff_s: float = math.nan
    import_s: float = math.nan
    osmnx_import_s: float = math.nan
    notes: list[str] = field(default_factory=list)


def time_import(path: Path, work: Path) -> tuple[float, float, float]:
    """(ours on the original file, ours on the XML, osmnx graph_from_xml on the XML) seconds."""
    import osmium
    import osmnx as ox

    xml = path
    if not (path.name.endswith(".osm") or path.name.endswith(".osm.bz2")):
        xml = work / (path.name.split(".")[0] + ".osm")
        if not xml.exists():
            writer = osmium.SimpleWriter(str(xml))
            try:
                for obj in osmium.FileProcessor(str(path)):
                    writer.add(obj)
            finally:
                writer.close()
    t0 = time.perf_counter()
    import_osm_file(path, progress=False)
    ours_orig = time.perf_counter() - t0
    t0 = time.perf_counter()
    import_osm_file(xml, progress=False)
    ours_xml = time.perf_counter() - t0
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ox.graph_from_xml(xml)
    osmnx_s = time.perf_counter() - t0
    return ours_orig, ours_xml, osmnx_s


def bench_graph(name: str, g: RoadGraph, *, queries: int, peer_queries: int,
                imports: tuple[float, float, float], use_pg: bool, use_pandana: bool,
                pg_url: str) -> list[Row]:
    rng = np.random.default_rng(2024)
    router = Router(g)
    incidents = points_on_roads(g, queries, rng, jitter_deg=0.00018)
    fleets = {units: list(enumerate(points_on_roads(g, units, rng))) for units in CREW_COUNTS}
    rows: dict[int, Row] = {}
    ours: dict[tuple[int, int], np.ndarray] = {}

    # geodispatch first, with no peer's data structures alive (they would slow the GC down).
    for units, crews in fleets.items():
        row = Row(graph=name, nodes=g.n_nodes, edges=g.n_edges, units=units)
        row.import_s, row.osmnx_import_s = imports[1], imports[2]
        router.rank(incidents[0], crews, k=5)  # builds the snap index and remembers the crews
        pos = {u: j for j, (u, _) in enumerate(crews)}
        top5, full = [], []
        # As a long-running server would after start-up: move the loaded graph, fleet and the
        # imported libraries out of the collector's generations. Otherwise a full collection
        # (~200k objects of numpy/pandas/osmnx) lands on roughly one rank-all query in 50.
        gc.collect()
        gc.freeze()
        for q, p in enumerate(incidents):
            t0 = time.perf_counter()
            router.rank(p, crews, k=5, limit_s=LIMIT_S)
            top5.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ranked = router.rank(p, crews, limit_s=LIMIT_S)
            full.append(time.perf_counter() - t0)
            if q < peer_queries:
                eta = np.full(units, np.inf)
                for c in ranked:
                    eta[pos[c.unit_id]] = c.eta_s
                ours[(units, q)] = eta
        gc.unfreeze()
        row.top5_p50_ms, row.top5_p99_ms = pct(top5, 50), pct(top5, 99)
        row.rank_all_p50_ms, row.rank_all_p99_ms = pct(full, 50), pct(full, 99)
        rows[units] = row

    notes: list[str] = []
    peers: list[Any] = [NetworkxPeer(g)]
    if use_pg:
        try:
            peers.append(PgRoutingPeer(g, pg_url))
        except Exception as exc:  # noqa: BLE001 - a missing peer is reported, not fatal
            notes.append(f"pgrouting failed: {exc}")
    if use_pandana:
        try:
            pan = PandanaPeer(g)
            peers.append(pan)
            notes.append(f"pandana CH build {pan.build_s:.1f} s on {name}")
        except Exception as exc:  # noqa: BLE001
            notes.append(f"pandana failed: {type(exc).__name__}: {exc}")
    for units, crews in fleets.items():
        row = rows[units]
        row.notes = list(notes)
        peers[0].attach_crews(router, crews, snapped(router, incidents[0], crews))
        times: dict[str, list[float]] = {}
        diffs: dict[str, float] = {}
        for q in range(min(peer_queries, queries)):
            sn = snapped(router, incidents[q], crews)
            mine = ours[(units, q)]
            inside = mine < LIMIT_S - 1.0  # crews right at the bound may fall either side
            for peer in peers:
                t0 = time.perf_counter()
                eta = peer.query(sn, crews)
                times.setdefault(peer.name, []).append(time.perf_counter() - t0)
                d = float(np.max(np.abs(eta[inside] - mine[inside]))) if inside.any() else 0.0
                diffs[peer.name] = max(diffs.get(peer.name, 0.0), d)
        row.networkx_p50_ms = pct(times["networkx"], 50)
        row.max_eta_diff_s = diffs["networkx"]
        row.pgrouting_p50_ms = pct(times.get("pgrouting", []), 50)
        row.pgrouting_max_diff_s = diffs.get("pgrouting", math.nan)
        row.pandana_p50_ms = pct(times.get("pandana", []), 50)
        row.pandana_max_diff_s = diffs.get("pandana", math.nan)
        print(fmt_row(row), flush=True)
    for peer in peers:
        if hasattr(peer, "close"):
            peer.close()
    return [rows[u] for u in CREW_COUNTS]


HEADER = (f"{'graph':<30} {'nodes':>7} {'units':>5} {'top5 p50':>8} {'top5 p99':>8} "
          f"{'all p50':>8} {'all p99':>8} {'nx p50':>8} {'pgr p50':>8} {'pdn p50':>8} "
          f"{'dETA nx':>8} {'dETA pgr':>8} {'dETA pdn':>8} {'import':>7} {'osmnx':>7}")


def fmt_row(r: Row) -> str:
    def f(x: float, w: int = 8, p: int = 2) -> str:
        return f"{x:>{w}.{p}f}" if not math.isnan(x) else f"{'-':>{w}}"

    return (f"{r.graph:<30} {r.nodes:>7} {r.units:>5} {f(r.top5_p50_ms)} {f(r.top5_p99_ms)} "
            f"{f(r.rank_all_p50_ms)} {f(r.rank_all_p99_ms)} {f(r.networkx_p50_ms, p=1)} "
            f"{f(r.pgrouting_p50_ms, p=1)} {f(r.pandana_p50_ms, p=1)} {f(r.max_eta_diff_s, p=4)} "
            f"{f(r.pgrouting_max_diff_s, p=4)} {f(r.pandana_max_diff_s, p=3)} "
            f"{f(r.import_s, 7, 2)} {f(r.osmnx_import_s, 7, 2)}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--peer-queries", type=int, default=50)
    ap.add_argument("--peer-queries-big", type=int, default=20)
    ap.add_argument("--rows", type=int, default=330, help="synthetic grid size (rows = cols)")
    ap.add_argument("--no-pgrouting", action="store_true")
    ap.add_argument("--no-pandana", action="store_true")
    ap.add_argument("--only", help="run only graphs whose name contains this")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    settings = get_settings()
    osm_dir = settings.data_dir / "osm"
    extracts = sorted(p for p in osm_dir.iterdir() if ".osm" in p.name)
    print("units = crews; times in ms per incident (p50/p99); nx/pgr/pdn = networkx, pgRouting, "
          "pandana p50 on the same queries;\ndETA = largest ETA difference to geodispatch in "
          "seconds; import/osmnx = seconds to build the graph from the same .osm file\n")
    print(HEADER)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-routing-") as tmp:
        work = Path(tmp)
        for path in extracts:
            name = path.name.split(".")[0]
            if args.only and args.only not in name:
                continue
            imports = time_import(path, work)
            g = import_osm_file(path, progress=False)
            rows += bench_graph(name, g, queries=args.queries, peer_queries=args.peer_queries,
                                imports=imports, use_pg=not args.no_pgrouting,
                                use_pandana=not args.no_pandana,
                                pg_url=settings.admin_database_url)
            gc.collect()
        name = f"SYNTHETIC grid {args.rows}x{args.rows}"
        if not args.only or args.only in name:
            osm = write_osm(synthetic_ways(args.rows, args.rows), work / "synthetic_city.osm")
            pbf = write_osm(synthetic_ways(args.rows, args.rows), work / "synthetic_city.osm.pbf")
            ours_pbf, ours_xml, osmnx_s = time_import(pbf, work)
            g = import_osm_file(osm, progress=False)
            rows += bench_graph(name, g, queries=args.queries, peer_queries=args.peer_queries_big,
                                imports=(ours_pbf, ours_xml, osmnx_s),
                                use_pg=not args.no_pgrouting, use_pandana=not args.no_pandana,
                                pg_url=settings.admin_database_url)
            rows[-1].notes.append(f"synthetic import from .osm.pbf {ours_pbf:.2f} s")
    notes = sorted({n for r in rows for n in r.notes})
    if notes:
        print("\nnotes: " + "; ".join(notes))
    big = max(rows, key=lambda r: (r.nodes, r.units))
    print(json.dumps({
        "graph": big.graph, "nodes": big.nodes, "units": big.units,
        "top5_p50_ms": round(big.top5_p50_ms, 3), "top5_p99_ms": round(big.top5_p99_ms, 3),
        "rank_all_p99_ms": round(big.rank_all_p99_ms, 3),
        "pgrouting_p50_ms": _r(big.pgrouting_p50_ms, 1),
        "networkx_p50_ms": _r(big.networkx_p50_ms, 1),
        "pandana_p50_ms": _r(big.pandana_p50_ms, 2), "max_eta_diff_s": _r(big.max_eta_diff_s, 6),
        "import_s": round(big.import_s, 2), "osmnx_import_s": round(big.osmnx_import_s, 2),
    }))
    return 0


def _r(x: float, p: int) -> float | None:
    return None if math.isnan(x) else round(x, p)


if __name__ == "__main__":
    sys.exit(main())
