"""Benchmark: importing calls, and p90 total response per H3 res-8 cell over N incidents.

**Import** (``--import-rows``, default 20,000 unit rows): the real SF file's rows repeated with
new call numbers and their times shifted by whole weeks, written as an SF-format CSV and imported
through ``geodispatch import calls``' own path (:func:`~geodispatch.analytics.importer.
import_calls` with the shipped ``sf`` mapping: read, normalise, COPY into staging tables,
``INSERT ... SELECT`` into incidents/crews/assignments, one signed ``imported`` event per new
incident) and then :func:`~geodispatch.analytics.intervals.refresh_intervals`, all in one
transaction of the configured database that is rolled back at the end. Printed: rows/s of the
whole import, of everything before the signing of the events (read + COPY + INSERT), and of the
refresh.

**Heatmap** (``--incidents``, default 200,000; the issue's run is 10,000,000):

Compared side by side (same data, same database, warm cache, best of ``--repeat`` runs):

* **ours** — :func:`geodispatch.analytics.aggregates.cell_stats`: whole days come from
  ``response_cell_days`` (per cell and day, the ascending total response times), concatenated
  on the server with ``string_agg(array_send(...))`` and decoded by numpy without per-value
  Python objects; two order statistics per cell via ``np.partition``. Exact (linear
  interpolation, identical to ``percentile_cont``; the run checks this).
* **sql_groupby** — ``SELECT h3_8, percentile_cont(0.9) WITHIN GROUP (ORDER BY
  total_response_s) FROM response_intervals GROUP BY h3_8``.
* **pandas** — ``pd.read_sql`` of ``(h3_8, total_response_s)`` then
  ``groupby(...).quantile(0.9)`` (the read is part of "from the database"; the groupby alone is
  printed too).

Synthetic data, drawn from the real SF calls file (``shared/data/incidents``):

* location: a real call's location (uniformly chosen among the 3,560 calls, so the real spatial
  density) plus a Gaussian offset of sigma 150 m;
* time: a uniformly random day of 2016 and a time of day whose hour follows the file's
  hour-of-day histogram (minute and second uniform);
* intervals: one real call's intervals (registration, queue, turnout, travel, total, on scene,
  computed with the pipeline's definitions) scaled together by a log-normal factor (sigma 0.15).

The rows go into ``response_intervals`` and ``response_cell_days`` of a throw-away schema
``bench_analytics_<pid>`` (tables created ``LIKE`` the migrated ones, without foreign keys)
in the configured database, dropped at the end. Run: ``.venv/bin/python bench/heatmap.py``.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from h3.api import basic_int as h3i
from sqlalchemy import text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from geodispatch.analytics.aggregates import aggregate, cell_stats  # noqa: E402
from geodispatch.analytics.importer import import_calls  # noqa: E402
from geodispatch.analytics.intervals import refresh_intervals  # noqa: E402
from geodispatch.analytics.mapping import load_mapping  # noqa: E402
from geodispatch.analytics.sketch import ALPHA, rebuild_sketches  # noqa: E402
from geodispatch.db import admin_engine, app_engine, session_factory  # noqa: E402
from geodispatch.settings import get_settings  # noqa: E402

SF_FILE = "incidents/sf_fire_calls_for_service_2016-12-31_to_2017-01-07.csv"
FMT = "%m/%d/%Y %I:%M:%S %p"
INTERVAL_COLUMNS = ("registration_s", "queue_s", "call_processing_s", "turnout_s", "travel_s",
                    "total_response_s", "on_scene_s")


def real_calls(path: Path) -> pd.DataFrame:
    """Per call of the SF file: location, local hour and the intervals (pipeline definitions)."""
    raw = pd.read_csv(path)
    t = {k: pd.to_datetime(raw[c], format=FMT) for k, c in (
        ("received", "Received DtTm"), ("entry", "Entry DtTm"), ("dispatch", "Dispatch DtTm"),
        ("response", "Response DtTm"), ("on_scene", "On Scene DtTm"),
        ("available", "Available DtTm"))}
    df = pd.DataFrame({"call": raw["Call Number"], **t})
    loc = raw["Location"].str.extract(r"\(([-\d.]+),\s*([-\d.]+)\)").astype(float)
    df["lat"], df["lng"] = loc[0], loc[1]
    # The first-arriving unit's row (first dispatched when none arrived).
    df = df.sort_values(["call", "on_scene", "dispatch"], na_position="last")
    g = df.groupby("call")
    first = g.first()
    calls = pd.DataFrame({"lat": first["lat"], "lng": first["lng"],
                          "hour": g["received"].min().dt.hour})

    def secs(a: pd.Series, b: pd.Series) -> pd.Series:
        s = (b - a).dt.total_seconds()
        return s.where(s >= 0)

    received, entry = g["received"].min(), g["entry"].min()
    dispatched = g["dispatch"].min()
    calls["registration_s"] = secs(received, entry)
    calls["queue_s"] = secs(entry, dispatched)
    calls["call_processing_s"] = secs(received, dispatched)
    calls["turnout_s"] = secs(first["dispatch"], first["response"])
    calls["travel_s"] = secs(first["response"].fillna(first["dispatch"]), first["on_scene"])
    calls["total_response_s"] = secs(received, g["on_scene"].min())
    calls["on_scene_s"] = secs(g["on_scene"].min(), g["available"].max())
    return calls.reset_index(drop=True)


def sf_format_file(path: Path, rows: int, out: Path) -> int:
    """Write ``rows`` SF-format unit rows: the real file repeated, new call numbers, whole weeks
    later each time (so the copies keep the real intervals, hours and places)."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    copies = -(-rows // len(raw))
    times = [c for c in raw.columns if c.endswith("DtTm")]
    parsed = {c: pd.to_datetime(raw[c].replace("", None), format=FMT) for c in times}
    with out.open("w", newline="") as f:
        raw.iloc[:0].to_csv(f, index=False)
        left = rows
        for k in range(copies):
            chunk = raw.iloc[:left].copy()
            chunk["Call Number"] = f"9{k:05d}" + chunk["Call Number"]
            shift = pd.Timedelta(weeks=k + 1)
            for c in times:
                chunk[c] = (parsed[c].iloc[:left] + shift).dt.strftime(FMT).fillna("")
            chunk.to_csv(f, index=False, header=False)
            left -= len(chunk)
    return rows


def bench_import(settings: Any, rows: int) -> dict[str, float]:
    """Import ``rows`` SF-format rows through the real importer, then roll everything back."""
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_import_{os.getpid()}.csv"
    sf_format_file(settings.data_dir / SF_FILE, rows, tmp)
    engine = app_engine(settings)
    stamps: dict[str, float] = {}
    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        stamps[msg.split(" ", 1)[0]] = time.perf_counter() - t0
        print(f"  [{time.perf_counter() - t0:7.1f} s] {msg}", flush=True)

    try:
        with session_factory(engine)() as session:
            t0 = time.perf_counter()
            result = import_calls(session=session, path=tmp, mapping=load_mapping("sf"),
                                  region="BENCHIMP", progress=progress)
            t_import = time.perf_counter() - t0
            assert result.first_received is not None and result.new_incidents == result.calls
            t1 = time.perf_counter()
            refreshed = refresh_intervals(session=session,
                                          since=result.first_received.to_pydatetime())
            t_refresh = time.perf_counter() - t1
            session.rollback()
    finally:
        tmp.unlink(missing_ok=True)
        engine.dispose()
    t_seal = t_import - stamps.get("sealing", t_import)
    print(f"  import {rows:,} rows ({result.calls:,} calls): {t_import:.1f} s = "
          f"{rows / t_import:,.0f} rows/s; before signing the events {t_import - t_seal:.1f} s "
          f"= {rows / (t_import - t_seal):,.0f} rows/s; signing {t_seal:.1f} s; refresh "
          f"{refreshed:,} intervals {t_refresh:.1f} s (rolled back)")
    return {"import_rows": rows, "import_rows_per_s": rows / t_import,
            "import_unsigned_rows_per_s": rows / (t_import - t_seal),
            "refresh_rows_per_s": refreshed / t_refresh}


def synthesise(calls: pd.DataFrame, n: int, seed: int = 7) -> pd.DataFrame:
    """``n`` incidents following the real calls' space, hour-of-day and interval distributions."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(calls), n)
    base = calls.iloc[pick].reset_index(drop=True)
    metres = rng.normal(0.0, 150.0, (n, 2))
    lat = base["lat"].to_numpy() + metres[:, 0] / 111_320.0
    lng = base["lng"].to_numpy() + metres[:, 1] / (111_320.0 * np.cos(np.radians(lat)))
    hour_p = np.bincount(calls["hour"], minlength=24) / len(calls)
    hours = rng.choice(24, n, p=hour_p)
    day = rng.integers(0, 366, n)
    seconds = day * 86400 + hours * 3600 + rng.integers(0, 3600, n)
    received = pd.Timestamp("2016-01-01", tz="UTC") + pd.to_timedelta(seconds, unit="s")
    scale = np.exp(rng.normal(0.0, 0.15, n))
    out = pd.DataFrame({"incident_id": np.arange(1, n + 1), "received_at": received})
    out["region"] = "BENCH"
    out["category"] = rng.choice(["medical", "fire", "traffic_accident"], n, p=[0.6, 0.25, 0.15])
    out["priority"] = rng.integers(1, 4, n)
    out["sector_id"] = pd.array([None] * n, dtype="Int64")
    t0 = time.perf_counter()
    for res in (7, 8, 9):
        out[f"h3_{res}"] = np.fromiter(
            (h3i.latlng_to_cell(a, b, res) for a, b in zip(lat.tolist(), lng.tolist(),
                                                           strict=True)),
            dtype=np.uint64, count=n).astype(np.int64)
    print(f"  h3 cells for {n:,} points at 3 resolutions: {time.perf_counter() - t0:.1f} s")
    local = received.tz_convert("America/Los_Angeles")
    out["hour"] = local.hour.astype(np.int16)
    out["dow"] = local.day_of_week.astype(np.int16)
    for col in INTERVAL_COLUMNS:
        out[col] = np.round(base[col].to_numpy() * scale, 3)
    out["crews"] = 1
    return out


def load(session: Session, frame: pd.DataFrame) -> None:
    """COPY the frame into ``response_intervals`` of the bench schema."""
    buf = io.StringIO()
    frame.to_csv(buf, index=False, header=False, date_format="%Y-%m-%d %H:%M:%S+00")
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(
        f"COPY response_intervals ({', '.join(frame.columns)}) FROM STDIN WITH (FORMAT csv)"
    ) as copy:
        copy.write(buf.getvalue())


def drop_stale_schemas(engine: Any) -> None:
    """Drop bench schemas left by runs that died (their process no longer exists)."""
    with engine.connect() as conn:
        names = conn.execute(text(
            "SELECT nspname FROM pg_namespace WHERE nspname ~ '^bench_analytics_[0-9]+$'"
        )).scalars().all()
        for name in names:
            pid = int(name.rsplit("_", 1)[1])
            try:
                os.kill(pid, 0)
                continue  # still running
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            conn.execute(text(f"DROP SCHEMA {name} CASCADE"))
            print(f"  dropped stale schema {name}")
        conn.commit()


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    fn()  # warm-up
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--incidents", type=int, default=200_000,
                    help="incidents of the heatmap comparison (the issue's run: 10000000)")
    ap.add_argument("--import-rows", type=int, default=20_000,
                    help="SF-format unit rows of the import measurement (0: skip)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    settings = get_settings()
    imported: dict[str, float] = {}
    if args.import_rows > 0:
        print(f"importing {args.import_rows:,} SF-format rows through import_calls")
        imported = bench_import(settings, args.import_rows)
    calls = real_calls(settings.data_dir / SF_FILE)
    print(f"generating {args.incidents:,} incidents from {len(calls):,} real SF calls")
    frame = synthesise(calls, args.incidents)
    schema = f"bench_analytics_{os.getpid()}"
    engine = admin_engine(settings)
    drop_stale_schemas(engine)
    try:
        with engine.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
            for table in ("response_intervals", "response_sketches"):
                conn.execute(text(f"CREATE TABLE {schema}.{table} "
                                  f"(LIKE public.{table} INCLUDING ALL)"))
            conn.commit()
            conn.execute(text(f"SET search_path TO {schema}, public"))
            session = Session(bind=conn)
            t0 = time.perf_counter()
            load(session, frame)
            session.commit()
            t_load = time.perf_counter() - t0
            t0 = time.perf_counter()
            rows = rebuild_sketches(session=session, days=None)
            session.commit()
            t_days = time.perf_counter() - t0
            conn.execute(text("ANALYZE response_intervals"))
            conn.execute(text("ANALYZE response_sketches"))
            conn.commit()
            print(f"  COPY {len(frame):,} rows: {t_load:.1f} s; response_sketches "
                  f"({rows:,} day and month rows): {t_days:.1f} s")

            def ours() -> dict[int, float]:
                st = cell_stats(session=session, res=8)
                return dict(zip(st.cells.tolist(), st.p90_s.tolist(), strict=True))

            sql = ("SELECT h3_8, percentile_cont(0.9) WITHIN GROUP (ORDER BY total_response_s) "
                   "FROM response_intervals GROUP BY h3_8")

            def sql_groupby() -> dict[int, float]:
                return {c: v for c, v in session.execute(text(sql)) if v is not None}

            timings: dict[str, float] = {}

            def pandas_total() -> pd.Series:
                t = time.perf_counter()
                df = pd.read_sql(text("SELECT h3_8, total_response_s FROM response_intervals"),
                                 conn)
                t1 = time.perf_counter()
                p90 = df.groupby("h3_8")["total_response_s"].quantile(0.9)
                timings["read"], timings["groupby"] = t1 - t, time.perf_counter() - t1
                return p90

            t_ours, r_ours = best_of(args.repeat, ours)
            t_sql, r_sql = best_of(args.repeat, sql_groupby)
            t_pd, r_pd = best_of(args.repeat, pandas_total)
            # The console's other questions, from the same sketches (best of repeat each).
            end = pd.Timestamp("2017-01-01", tz="UTC").to_pydatetime()
            spring = (pd.Timestamp("2016-03-14 06:30", tz="UTC").to_pydatetime(),
                      pd.Timestamp("2016-06-02 18:00", tz="UTC").to_pydatetime())
            others = {
                "cells res 8, category=fire": lambda: cell_stats(session=session, res=8,
                                                                 category="fire"),
                "cells res 8, priority=1, 14 Mar-2 Jun 18:00": lambda: cell_stats(
                    session=session, res=8, priority=1, start=spring[0], end=spring[1]),
                "cells res 9": lambda: cell_stats(session=session, res=9, end=end),
                "cells res 7": lambda: cell_stats(session=session, res=7),
                "zone table (by sector), travel": lambda: aggregate(
                    session=session, by=["sector_id"], interval="travel_s"),
                "by hour, total, priority=2": lambda: aggregate(
                    session=session, by=["hour"], priority=2),
                "by weekday, turnout, category=medical": lambda: aggregate(
                    session=session, by=["dow"], interval="turnout_s", category="medical"),
            }
            t_others = {name: best_of(args.repeat, fn)[0] for name, fn in others.items()}
            t_hour, _ = best_of(1, lambda: aggregate(session=session, by=["hour", "priority"]))
            session.rollback()
            cells = sorted(c for c, v in r_ours.items() if not np.isnan(v))
            assert cells == sorted(r_sql), "ours and SQL see different cells"
            rel_sql = max(abs(r_ours[c] - r_sql[c]) / r_sql[c] for c in cells if r_sql[c] > 1)
            rel_pd = max(abs(r_ours[c] - float(r_pd.loc[c])) / float(r_pd.loc[c])
                         for c in cells if float(r_pd.loc[c]) > 1)
            assert rel_sql <= ALPHA * (1 + 1e-9) and rel_pd <= ALPHA * (1 + 1e-9), \
                (rel_sql, rel_pd)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            conn.commit()
        engine.dispose()

    print()
    print(f"p90 total response per H3 res-8 cell, {args.incidents:,} incidents, "
          f"{len(cells)} cells (best of {args.repeat})")
    print(f"{'method':<44}{'seconds':>9}{'vs ours':>9}")
    for name, t in (("ours (merged day/month quantile sketches)", t_ours),
                    ("SQL GROUP BY percentile_cont", t_sql),
                    ("pandas read_sql + groupby.quantile", t_pd)):
        print(f"{name:<44}{t:>9.3f}{t / t_ours:>8.1f}x")
    print(f"{'  of which pandas groupby alone':<44}{timings['groupby']:>9.3f}")
    print("the console's other questions from the sketches:")
    for name, t in t_others.items():
        print(f"  {name:<42}{t:>9.3f}")
    print(f"(other groupings, e.g. by hour x priority, go through SQL percentile_cont: "
          f"{t_hour:.3f} s)")
    print(f"max relative |ours - SQL| = {rel_sql:.2e}, |ours - pandas| = {rel_pd:.2e} "
          f"(bound {ALPHA})")
    print(json.dumps({
        "incidents": args.incidents, "cells": len(cells),
        "import_rows": int(imported.get("import_rows", 0)),
        "import_rows_per_s": round(imported.get("import_rows_per_s", 0.0)),
        "import_unsigned_rows_per_s": round(imported.get("import_unsigned_rows_per_s", 0.0)),
        "refresh_rows_per_s": round(imported.get("refresh_rows_per_s", 0.0)),
        "ours_s": round(t_ours, 4), "sql_groupby_s": round(t_sql, 4), "pandas_s": round(t_pd, 4),
        "heatmap_load_rows_per_s": round(args.incidents / t_load),
        "sketch_build_s": round(t_days, 1), "sketch_rows": rows,
        "others_max_s": round(max(t_others.values()), 4),
        "max_rel_error": round(max(rel_sql, rel_pd), 5)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
