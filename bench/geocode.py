"""Benchmark of geocoding: the address index against the old street-name ILIKE, in one run.

What is measured, on the shared extracts of Baltimore, Porto and Moscow:

* **Data.** A database of its own, ``<db>_bench_geocode`` (emptied and migrated at start), whose
  address index is built by the real import (``geocode import``: Nominatim into
  ``<db>_bench_geocode_nominatim``, reused while the files are unchanged, then the index) from
  all three extracts at once, so every query competes with the other cities' names.
* **Forward.** ``--queries`` (default 1,000) addresses sampled from the extracts' own
  ``addr:street`` + ``addr:housenumber`` tags (read with pyosmium, independent of Nominatim),
  typed as people write them there ("750 East Pratt Street", "Rua de Santa Catarina 123",
  "улица Руставели, 10"), with the extract's centre as the hint (the console sends the map
  centre). A query is right when its best answer lies within 30 m of the feature (its node or
  its building outline).
* **Baseline.** The old intake geocoder (``incidents.service.geocode_address`` before the
  address index; its query is copied below, verbatim in effect, and kept only here): house
  numbers ignored, ``ILIKE '%...%'`` on ``road_edges.name``, the middle of the longest stretch
  of the best-named street. It needs each extract's roads in ``road_edges``, so the extracts are
  measured one after the other, the table holding that extract's graph.
* **Reverse.** ``--queries`` points along simulated crew drives (``sim.roads.RouterRoads``)
  across the three extracts. The old code had no reverse geocoder; its baseline is the nearest
  named road edge (``ORDER BY geom <-> p``), what the old data could give at best.
* **Nominatim's own API** (``nominatim-api``, the same Nominatim database) for comparison on
  ``--nominatim-queries`` (default 200) of the same forward queries and reverse points.

Each timed call is one geocoding call in an open session (what one HTTP request does), after
``gc.freeze()``. Prints a table, then one JSON object as the last line.

Usage: ``python bench/geocode.py [--queries 1000] [--nominatim-queries 200]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import osmium  # noqa: E402
import shapely  # noqa: E402
import shapely.affinity  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from geodispatch.geo import LatLng  # noqa: E402
from geodispatch.settings import Settings, get_settings  # noqa: E402

EXTRACTS = {
    "baltimore": ("baltimore_downtown_2015.osm.pbf", "{hn} {street}"),
    "porto": ("porto_centre_2020.osm.pbf", "{street} {hn}"),
    "moscow": ("moscow_north_part_2013.osm.gz", "{street}, {hn}"),
}
SHARE = {"baltimore": 0.4, "porto": 0.4, "moscow": 0.2}


# --- the old path (baseline only) -----------------------------------------------------------------

_OLD_INTERSECTION = re.compile(r"\s*(?:&|/|\band\b|\bта\b|\bі\b|\bи\b|\bx\b|×)\s*",
                               re.IGNORECASE)


def _old_like_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def old_geocode(session: Session, address: str) -> LatLng | None:
    """The intake geocoder as it was: street names by ILIKE, the middle of the longest stretch."""
    parts = [p.strip() for p in _OLD_INTERSECTION.split(address.strip()) if p.strip()]
    if not parts:
        return None
    row = session.execute(text(
        "SELECT name, ST_Y(p), ST_X(p) FROM ("
        " SELECT name, exact, ST_LineInterpolatePoint(piece, 0.5) AS p, ST_Length(piece) AS len"
        " FROM (SELECT name, exact, (ST_Dump(ST_LineMerge(g))).geom AS piece FROM ("
        "   SELECT name, ST_Collect(geom) AS g,"
        "    CASE WHEN lower(name) = lower(:n) THEN 0 ELSE 1 END AS exact"
        "   FROM road_edges WHERE name ILIKE :pat GROUP BY name) s) d"
        " WHERE GeometryType(piece) = 'LINESTRING') x"
        " ORDER BY exact, length(name), len DESC LIMIT 1"),
        {"n": parts[0], "pat": f"%{_old_like_escape(parts[0])}%"}).first()
    return None if row is None else LatLng(float(row[1]), float(row[2]))


def old_reverse(session: Session, p: LatLng) -> str | None:
    row = session.execute(text(
        "SELECT name FROM road_edges WHERE name IS NOT NULL "
        "ORDER BY geom <-> ST_GeomFromEWKT(:p) LIMIT 1"), {"p": p.to_ewkt()}).first()
    return None if row is None else str(row[0])


# --- ground truth ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Truth:
    city: str
    typed: str
    point: LatLng
    geom: shapely.Geometry

    def distance_m(self, p: LatLng) -> float:
        kx, ky = 111_320.0 * math.cos(math.radians(self.point.lat)), 110_540.0
        local = shapely.affinity.scale(self.geom, kx, ky, origin=(0, 0))
        return float(local.distance(shapely.Point(p.lng * kx, p.lat * ky)))


def read_truth(city: str, path: Path, form: str) -> list[Truth]:
    out: list[Truth] = []
    fp = osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY).with_locations()
    for o in fp:
        t = o.tags
        if "addr:street" not in t or "addr:housenumber" not in t:
            continue
        hn = t["addr:housenumber"].split(";")[0].split(",")[0].strip()
        if o.is_node():
            if not o.location.valid():
                continue
            geom: shapely.Geometry = shapely.Point(o.location.lon, o.location.lat)
        else:
            coords = [(n.lon, n.lat) for n in o.nodes if n.location.valid()]
            if len(coords) < 2:
                continue
            geom = (shapely.Polygon(coords) if len(coords) >= 4 and coords[0] == coords[-1]
                    else shapely.LineString(coords))
        c = geom.centroid
        out.append(Truth(city, form.format(hn=hn, street=t["addr:street"]), LatLng(c.y, c.x),
                         geom))
    return out


# --- set-up ---------------------------------------------------------------------------------------

def bench_settings() -> Settings:
    base = get_settings()

    def url(u: str) -> str:
        parsed = make_url(u)
        return parsed.set(database=(parsed.database or "geodispatch") + "_bench_geocode"
                          ).render_as_string(hide_password=False)

    return base.model_copy(update={"database_url": url(base.database_url),
                                   "admin_database_url": url(base.admin_database_url),
                                   "log_tree_head_file": None})


def fresh_database(s: Settings) -> None:
    from geodispatch.migrate import upgrade

    name = make_url(s.admin_database_url).database
    root = create_engine(get_settings().admin_database_url, isolation_level="AUTOCOMMIT")
    try:
        with root.connect() as conn:
            if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                            {"n": name}).scalar() is None:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        root.dispose()
    eng = create_engine(s.admin_database_url, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
            conn.execute(text("GRANT USAGE ON SCHEMA public TO PUBLIC"))
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    finally:
        eng.dispose()
    upgrade(s)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - t0) * 1000.0


def pct(xs: Sequence[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(math.ceil(q * len(s))) - 1)], 2)


def route_points(path: Path, n: int, seed: int) -> list[LatLng]:
    from geodispatch.routing.engine import Router
    from geodispatch.routing.importer import import_osm_file
    from geodispatch.sim.roads import RouterRoads

    roads = RouterRoads(Router(import_osm_file(path, progress=False)))
    rng = random.Random(seed)
    pts: list[LatLng] = []
    while len(pts) < n:
        drive = roads.route(roads.random_point(rng), roads.random_point(rng))
        if drive is None:
            continue
        for a, b in zip(drive.coords, drive.coords[1:], strict=False):
            f = rng.random()
            pts.append(LatLng(a.lat + (b.lat - a.lat) * f, a.lng + (b.lng - a.lng) * f))
    rng.shuffle(pts)
    return pts[:n]


# --- main -----------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--nominatim-queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args(argv)

    from geodispatch.db import app_engine, session_factory, transaction
    from geodispatch.geocoding.cli import run_import
    from geodispatch.geocoding.importer import nominatim_url
    from geodispatch.geocoding.service import IndexGeocoder
    from geodispatch.routing.importer import import_osm_file
    from geodispatch.routing.service import write_edges

    s = bench_settings()
    osm = s.data_dir / "osm"
    print(f"bench database {make_url(s.database_url).database}: migrating, importing "
          "addresses", flush=True)
    fresh_database(s)
    t0 = time.perf_counter()
    summary = run_import(s, [osm / f for f, _ in EXTRACTS.values()])
    import_s = time.perf_counter() - t0
    rng = random.Random(args.seed)
    truth: dict[str, list[Truth]] = {}
    for city, (f, form) in EXTRACTS.items():
        items = read_truth(city, osm / f, form)
        truth[city] = rng.sample(items, min(len(items), int(args.queries * SHARE[city])))
    n_rev = {c: int(args.queries * SHARE[c]) for c in EXTRACTS}
    n_rev["baltimore"] += args.queries - sum(n_rev.values())
    points = {c: route_points(osm / f, n_rev[c], args.seed) for c, (f, _) in EXTRACTS.items()}
    centre = {c: LatLng(statistics.fmean(t.point.lat for t in ts),
                        statistics.fmean(t.point.lng for t in ts)) for c, ts in truth.items()}

    engine = app_engine(s)
    factory = session_factory(engine)
    rows: dict[str, dict[str, Any]] = {}
    fwd_ms: list[float] = []
    rev_ms: list[float] = []
    base_fwd_ms: list[float] = []
    base_rev_ms: list[float] = []
    right = base_right = total = 0
    precision: dict[str, int] = {}
    gc.collect()
    gc.freeze()
    try:
        for city, (f, _form) in EXTRACTS.items():
            with transaction(factory) as session:  # this extract's roads for the old path
                write_edges(session=session, graph=import_osm_file(osm / f, progress=False))
            r = {"queries": len(truth[city]), "right": 0, "base_right": 0}
            c_fwd: list[float] = []
            c_base: list[float] = []
            with factory() as session:
                geocoder = IndexGeocoder(session, s)
                geocoder.forward("warm up 1", near=centre[city])
                old_geocode(session, "warm up")
                for t in truth[city]:
                    hits, ms = timed(lambda t=t, g=geocoder, c=city: g.forward(
                        t.typed, near=centre[c]))
                    c_fwd.append(ms)
                    if hits:
                        precision[hits[0].precision] = precision.get(hits[0].precision, 0) + 1
                    if hits and t.distance_m(hits[0].point) <= 30:
                        r["right"] += 1
                    old, ms = timed(lambda t=t: old_geocode(session, t.typed))
                    c_base.append(ms)
                    if old is not None and t.distance_m(old) <= 30:
                        r["base_right"] += 1
                for p in points[city]:
                    _, ms = timed(lambda p=p, g=geocoder: g.reverse(lon=p.lng, lat=p.lat))
                    rev_ms.append(ms)
                    _, ms = timed(lambda p=p: old_reverse(session, p))
                    base_rev_ms.append(ms)
                session.rollback()
            r.update(share=round(r["right"] / max(1, r["queries"]), 4),
                     base_share=round(r["base_right"] / max(1, r["queries"]), 4),
                     p50=pct(c_fwd, 0.5), p99=pct(c_fwd, 0.99), base_p50=pct(c_base, 0.5),
                     base_p99=pct(c_base, 0.99))
            rows[city] = r
            fwd_ms += c_fwd
            base_fwd_ms += c_base
            right += r["right"]
            base_right += r["base_right"]
            total += r["queries"]
    finally:
        gc.unfreeze()
        engine.dispose()

    nomi = nominatim_api_figures(s, [t for ts in truth.values() for t in ts],
                                 [p for ps in points.values() for p in ps],
                                 args.nominatim_queries, nominatim_url(s))

    print(f"\naddress index: {summary['houses']:,} houses, {summary['streets']:,} streets, "
          f"{summary['interpolations']} interpolation lines, {summary['landmarks']:,} landmarks, "
          f"{summary['areas']} areas; import {import_s:.1f} s "
          f"(Nominatim {summary['nominatim_s']} s, index {summary['index_s']} s)")
    print(f"\n{'extract':<11}{'queries':>8}{'within 30 m':>13}{'old':>8}"
          f"{'fwd p50':>10}{'fwd p99':>10}{'old p50':>10}{'old p99':>10}")
    for city, r in rows.items():
        print(f"{city:<11}{r['queries']:>8}{r['share']:>13.1%}{r['base_share']:>8.1%}"
              f"{r['p50']:>10.2f}{r['p99']:>10.2f}{r['base_p50']:>10.2f}{r['base_p99']:>10.2f}")
    print(f"{'all':<11}{total:>8}{right / total:>13.1%}{base_right / total:>8.1%}"
          f"{pct(fwd_ms, .5):>10.2f}{pct(fwd_ms, .99):>10.2f}{pct(base_fwd_ms, .5):>10.2f}"
          f"{pct(base_fwd_ms, .99):>10.2f}")
    print(f"\nreverse ({len(rev_ms)} points along simulated drives): p50 {pct(rev_ms, .5)} ms, "
          f"p99 {pct(rev_ms, .99)} ms; old nearest road name p50 {pct(base_rev_ms, .5)} ms, "
          f"p99 {pct(base_rev_ms, .99)} ms")
    print(f"best answer precision: {dict(sorted(precision.items()))}")
    if nomi:
        print(f"Nominatim's own API on {nomi['nominatim_queries']} of the same: forward p50 "
              f"{nomi['nominatim_forward_p50_ms']} ms, p99 {nomi['nominatim_forward_p99_ms']} ms, "
              f"within 30 m {nomi['nominatim_share_within_30m']:.1%}; reverse p50 "
              f"{nomi['nominatim_reverse_p50_ms']} ms, p99 {nomi['nominatim_reverse_p99_ms']} ms")
    out = {
        "queries": total, "reverse_queries": len(rev_ms),
        "forward_p50_ms": pct(fwd_ms, .5), "forward_p99_ms": pct(fwd_ms, .99),
        "reverse_p50_ms": pct(rev_ms, .5), "reverse_p99_ms": pct(rev_ms, .99),
        "share_within_30m": round(right / total, 4),
        "share_within_30m_by_extract": {c: r["share"] for c, r in rows.items()},
        "baseline_forward_p50_ms": pct(base_fwd_ms, .5),
        "baseline_forward_p99_ms": pct(base_fwd_ms, .99),
        "baseline_reverse_p50_ms": pct(base_rev_ms, .5),
        "baseline_reverse_p99_ms": pct(base_rev_ms, .99),
        "baseline_share_within_30m": round(base_right / total, 4),
        "baseline_share_within_30m_by_extract": {c: r["base_share"] for c, r in rows.items()},
        "import_s": round(import_s, 1), **nomi,
        "loadavg": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
    }
    print(json.dumps(out))
    return 0


def nominatim_api_figures(s: Settings, truth: list[Truth], points: list[LatLng], n: int,
                          url: Any) -> dict[str, Any]:
    """Nominatim's own search and reverse (``nominatim-api``) on a subset, for comparison."""
    if n <= 0:
        return {}
    try:
        import nominatim_api as napi
    except ImportError:
        return {}
    from geodispatch.geocoding.importer import _dsn

    work = s.var_dir / "nominatim" / str(url.database)
    api = napi.NominatimAPI(work, environ={"NOMINATIM_DATABASE_DSN": _dsn(url)})
    rng = random.Random(3)
    sub, pts = rng.sample(truth, min(n, len(truth))), rng.sample(points, min(n, len(points)))
    try:
        api.search("warm up")
        fwd, rev, right = [], [], 0
        for t in sub:
            res, ms = timed(lambda t=t: api.search(t.typed, max_results=1))
            fwd.append(ms)
            if res and t.distance_m(LatLng(res[0].centroid.lat, res[0].centroid.lon)) <= 30:
                right += 1
        for p in pts:
            _, ms = timed(lambda p=p: api.reverse((p.lng, p.lat)))
            rev.append(ms)
    finally:
        api.close()
    return {"nominatim_queries": len(sub), "nominatim_forward_p50_ms": pct(fwd, .5),
            "nominatim_forward_p99_ms": pct(fwd, .99), "nominatim_reverse_p50_ms": pct(rev, .5),
            "nominatim_reverse_p99_ms": pct(rev, .99),
            "nominatim_share_within_30m": round(right / max(1, len(sub)), 4)}


if __name__ == "__main__":
    sys.exit(main())
