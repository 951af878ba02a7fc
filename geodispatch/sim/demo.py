"""``geodispatch demo``: the whole system on a real city with a simulated fleet, in one command.

Set-up (idempotent, quick the second time):

1. migrations applied; the road graph built from the OSM extract (``--osm-file``, default the
   Baltimore extract; ``--place "Kyiv, Ukraine"`` downloads one with osmnx), reused while the
   extract is unchanged;
2. zones generated over the graph's extent (districts and patrol sectors, H3 cell sets);
3. the demo users with fresh passwords, printed once, and a demo officer with the crew app's
   sign-in (``/crew``: the officer's password and the first car's call sign, or that car's
   device credentials);
4. ``--units`` crews (default 200) with device credentials, spread over the sectors. The
   simulated crews report each assignment delivered and acknowledged on their terminals' ack
   topic, the path an MQTT-only crew terminal takes.

Then it starts, as child processes (each in its own session, so a terminal Ctrl-C reaches only
the demo, which stops them in order): the API and map (``geodispatch
serve``, with the MQTT ingest worker in-process), the fleet simulator (``geodispatch simulate``)
and the call generator (``geodispatch callgen``, with the dispatcher bot under ``--auto``). It
opens the map in a browser (not with ``--headless``) and runs until Ctrl-C, SIGTERM or
``--duration``; then it stops every child (SIGINT, then SIGKILL after a grace period). Children
also get SIGTERM from the kernel if the demo itself dies (``PR_SET_PDEATHSIG``): no orphans.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from geodispatch.errors import ConfigurationError
from geodispatch.settings import Settings, get_settings

log = logging.getLogger(__name__)
#: The demo's officer (role ``officer``): signs in on the crew app bound to a car.
DEMO_OFFICER = "officer"

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel to SIGTERM this child when the demo process dies (Linux)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "geodispatch.cli", *args]


# --- set-up steps ----------------------------------------------------------------------------


def ensure_graph(settings: Settings, *, osm_file: Path | None, place: str | None,
                 force: bool = False) -> Path:
    """Build the road graph unless the one on disk came from the same, unchanged extract.

    The source (file path and SHA-256, or place name, plus the speed table) is stamped beside
    the graph; when it matches, the graph is reused and only the database's ``road_edges`` are
    filled if this database has none yet (a fresh database with an existing graph).
    """
    graph_path = settings.resolved_graph_path
    stamp_path = graph_path.with_suffix(".source.json")
    src_file: Path | None = None
    source_key: dict[str, str | None]
    if place:
        source_key = {"place": place}
    else:
        src_file = osm_file or settings.resolved_osm_file
        if not src_file.is_file():
            raise ConfigurationError(f"OSM extract {src_file} not found (--osm-file or --place)")
        source_key = {"file": str(src_file.resolve()), "sha256": _sha256(src_file)}
    table = settings.speed_table_file
    source_key["speed_table"] = _sha256(table) if table and table.is_file() else None
    if not force and graph_path.exists() and stamp_path.exists():
        try:
            same = json.loads(stamp_path.read_text()) == source_key
        except ValueError:
            same = False
        if same:
            log.info("demo: road graph %s is up to date with %s", graph_path, place or src_file)
            _ensure_road_edges(settings, graph_path)
            if src_file is not None:
                _ensure_addresses(settings, src_file)
                _ensure_tiles(settings, src_file)
            return graph_path
    print(f"[demo] building the road graph from {place or src_file} ...", flush=True)
    t0 = time.monotonic()
    cmd = _cli("graph", "import", "--out", str(graph_path),
               *(["--place", place] if place else [str(src_file)]))
    r = subprocess.run(cmd, check=False)
    if r.returncode != 0:
        raise ConfigurationError(f"`geodispatch {' '.join(cmd[3:])}` failed "
                                 f"(status {r.returncode})")
    stamp_path.parent.mkdir(parents=True, exist_ok=True)
    stamp_path.write_text(json.dumps(source_key))
    print(f"[demo] road graph ready in {time.monotonic() - t0:.1f}s: {graph_path}", flush=True)
    return graph_path


def _ensure_tiles(settings: Settings, src_file: Path) -> None:
    """Build the base map's vector tiles unless they were built from this very extract."""
    from geodispatch.tiles.build import built_from, source_stamp
    from geodispatch.tiles.cli import build_for, describe

    if not settings.tiles_on_graph_import:
        return
    if built_from(settings.resolved_tiles_path) == source_stamp(src_file):
        return
    print(f"[demo] building the base map's vector tiles from {src_file} ...", flush=True)
    try:
        print("[demo] " + describe(build_for(settings, src_file)), flush=True)
    except ConfigurationError as exc:
        print(f"[demo] vector tiles not built ({exc}): the map falls back to the raster or "
              "road-line base until `geodispatch tiles build`", flush=True)


def _ensure_addresses(settings: Settings, src_file: Path) -> None:
    """Import the extract's addresses if this database has none (house-number search)."""
    from sqlalchemy import text

    from geodispatch.db import app_engine
    from geodispatch.geocoding.cli import run_import

    engine = app_engine(settings)
    try:
        with engine.connect() as conn:
            if conn.execute(text("SELECT EXISTS (SELECT 1 FROM geocode_streets)")).scalar():
                return
    finally:
        engine.dispose()
    print(f"[demo] importing the addresses of {src_file} (Nominatim) ...", flush=True)
    try:
        run_import(settings, [src_file])
    except ConfigurationError as exc:
        print(f"[demo] addresses not imported ({exc}): address search finds nothing "
              "until `geodispatch geocode import`", flush=True)


def _ensure_road_edges(settings: Settings, graph_path: Path) -> None:
    """Fill ``road_edges`` (the offline map's roads) from the graph if this database has none."""
    from sqlalchemy import text

    from geodispatch.db import app_engine, session_factory, transaction
    from geodispatch.routing.graph import RoadGraph
    from geodispatch.routing.service import write_edges

    engine = app_engine(settings)
    try:
        with transaction(session_factory(engine)) as session:
            if session.execute(text("SELECT EXISTS (SELECT 1 FROM road_edges)")).scalar():
                return
            n = write_edges(session=session, graph=RoadGraph.load(graph_path))
            log.info("demo: %d road edges written to the database", n)
    finally:
        engine.dispose()


@dataclass
class Prepared:
    users: list[tuple[str, str, str]]
    fleet_path: Path
    units: int
    sectors: int
    #: (min_lat, min_lng, max_lat, max_lng) of the road network: where the callers are.
    bbox: tuple[float, float, float, float] | None = None
    #: A crew sign-in for the crew app: (officer, password, call sign, device id, device token).
    crew: tuple[str, str, str, str, str] | None = None


def prepare(settings: Settings, *, units: int, region: str, country: str,
            owntracks_share: float, prefix: str = "P") -> Prepared:
    """Zones, demo users and crews in the database (one committed transaction)."""
    from geodispatch.db import app_engine, check_database, session_factory, transaction
    from geodispatch.sim.provision import (
        clear_stale_assignments,
        default_fleet_path,
        ensure_fleet,
        load_sectors,
    )
    from geodispatch.sim.runner import load_roads
    from geodispatch.users.credentials import OFFICER
    from geodispatch.users.service import seed_demo_users, upsert_user

    roads = load_roads(settings)
    engine = app_engine(settings)
    try:
        check_database(engine)
        with transaction(session_factory(engine)) as session:
            if not load_sectors(session=session, region=region):
                from geodispatch.zones.generation import generate_zones

                gz = generate_zones(session=session, bbox=roads.bbox(), country_code=country,
                                    region_code=region, region_name=f"Demo region {region}")
                log.info("demo: zones generated: %d districts, %d sectors", len(gz.districts),
                         len(gz.sectors))
            sectors = len(load_sectors(session=session, region=region))
            users = seed_demo_users(session, region)
            fleet_path = default_fleet_path(settings)
            specs = ensure_fleet(session=session, settings=settings, n=units, roads=roads,
                                 region=region, fleet_path=fleet_path,
                                 owntracks_share=owntracks_share, prefix=prefix)
            clear_stale_assignments(session=session, settings=settings, specs=specs)
            crew = None
            if specs:
                # An officer's own sign-in for the crew app, bound at sign-in to the first
                # simulated car (whose simulated crew keeps driving: the phone follows it).
                officer_pw = secrets.token_urlsafe(9)
                upsert_user(session=session, username=DEMO_OFFICER, password=officer_pw,
                            role=OFFICER, region=region, full_name="Demo officer")
                car = specs[0]
                crew = (DEMO_OFFICER, officer_pw, car.call_sign, car.device, car.token)
    finally:
        engine.dispose()
    return Prepared(users=users, fleet_path=fleet_path, units=len(specs), sectors=sectors,
                    bbox=roads.bbox(), crew=crew)


# --- child processes -------------------------------------------------------------------------


class Children:
    """The processes the demo started; stopped together, newest first."""

    def __init__(self, log_dir: Path) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.log_dir = log_dir

    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None,
              to_console: bool = False) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out: Any = None if to_console else (self.log_dir / f"{name}.log").open("ab")
        p = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=out,
                             stderr=subprocess.STDOUT if out else None,
                             # Own session: a terminal Ctrl-C reaches only the demo, which
                             # then stops the children in order (newest first).
                             start_new_session=True,
                             preexec_fn=_die_with_parent)  # noqa: PLW1509 - only calls prctl
        if out is not None:
            out.close()
        self.procs.append((name, p))
        log.info("demo: started %s (pid %d)%s", name, p.pid,
                 "" if to_console else f", log {self.log_dir / (name + '.log')}")
        return p

    def dead(self) -> list[tuple[str, int]]:
        return [(n, p.returncode) for n, p in self.procs if p.poll() is not None]

    def stop(self, grace_s: float = 15.0) -> None:
        """Stop the newest first and wait for each: the load generators before the API."""
        for name, p in reversed(self.procs):
            if p.poll() is not None:
                continue
            log.info("demo: stopping %s (pid %d)", name, p.pid)
            p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("demo: %s did not stop in %.0fs; killing it", name, grace_s)
                p.kill()
                p.wait(timeout=5)


def wait_http(base: str, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ConfigurationError(f"the API server exited with status {proc.returncode}")
        try:
            if httpx.get(f"{base}/openapi.json", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise ConfigurationError(f"the API server did not answer at {base} within {timeout:.0f}s")


def demo_dir(settings: Settings) -> Path:
    """``var/demo/<database>/``: logs and counters of the demo's components."""
    from sqlalchemy.engine import make_url

    return settings.var_dir / "demo" / str(make_url(settings.database_url).database)


class _Stop(Exception):
    pass


def run_demo(args: argparse.Namespace) -> int:
    settings = get_settings()
    for noisy in ("alembic", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    region = args.region or settings.default_region
    host = args.host or settings.api_host
    port = args.port or settings.api_port
    base = f"http://{host}:{port}"
    t0 = time.monotonic()

    def on_signal(signum: int, frame: Any) -> None:
        raise _Stop(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    work = demo_dir(settings)
    children = Children(work / "logs")
    try:
        from geodispatch.migrate import upgrade

        upgrade(settings)
        ensure_graph(settings, osm_file=args.osm_file, place=args.place, force=args.rebuild_graph)
        prep = prepare(settings, units=args.units, region=region, country=args.country,
                       owntracks_share=args.owntracks_share, prefix=args.prefix)
        pw = {u: p for u, p, _r in prep.users}
        print(f"[demo] {prep.units} crews in {prep.sectors} sectors of region {region}; "
              f"setup took {time.monotonic() - t0:.1f}s", flush=True)
        env_db = {"GEODISPATCH_API_PORT": str(port), "GEODISPATCH_API_HOST": host}
        server = children.start("api", _cli("serve", "--host", host, "--port", str(port)),
                                env=env_db)
        # The log's single writer: seals every event into signed tree heads.
        from geodispatch.ledger.signing import generate_keypair

        generate_keypair(settings.resolved_log_signing_key, settings.resolved_log_public_key)
        children.start("sequencer", _cli("log", "sequence"))
        wait_http(base, server)
        children.start("simulate", _cli(
            "simulate", "--no-provision", "--units", str(prep.units), "--fleet",
            str(prep.fleet_path), "--report-s", str(args.report_s),
            "--on-scene-s", str(args.on_scene_s[0]), str(args.on_scene_s[1]),
            "--dropouts-per-h", str(args.dropouts_per_h),
            "--stats-file", str(work / "simulate.json")))
        if not args.no_calls:
            cg = ["callgen", "--base-url", base, "--speedup", str(args.speedup),
                  "--stats-file", str(work / "callgen.json")]
            if args.auto:
                cg.append("--auto")
            if args.max_calls is not None:
                cg += ["--max-calls", str(args.max_calls)]
            children.start("callgen", _cli(*cg), env={
                "GEODISPATCH_CALLGEN_PASSWORD": pw.get("calltaker", ""),
                "GEODISPATCH_DISPATCHER_PASSWORD": pw.get("dispatcher", "")})
        phone_line = not args.no_phone and bool(shutil.which("kamailio") and shutil.which("sipp"))
        if phone_line:
            ph = ["phoneline", "--base-url", base, "--every-s", str(args.phone_every_s),
                  "--work-dir", str(work / "phoneline")]
            if prep.bbox is not None:
                ph += ["--bbox", ",".join(f"{x:.6f}" for x in prep.bbox)]
            children.start("phoneline", _cli(*ph))
        elif not args.no_phone:
            print("[demo] no simulated phone line: install kamailio, kamailio-utils-modules and "
                  "sip-tester (make services does)", flush=True)
        _banner(base, prep, auto=args.auto, phone_line=phone_line)
        if not args.headless:
            import webbrowser

            webbrowser.open(f"{base}/")
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while deadline is None or time.monotonic() < deadline:
            dead = children.dead()
            if dead:
                print(f"[demo] a component stopped unexpectedly: {dead}; see "
                      f"{children.log_dir}", file=sys.stderr, flush=True)
                return 1
            time.sleep(0.5)
        print("[demo] --duration reached; stopping", flush=True)
    except _Stop:
        print("\n[demo] stopping ...", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        children.stop()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _final_heatmap(settings, work / "heatmap.html")
    print("[demo] stopped cleanly", flush=True)
    return 0


def _final_heatmap(settings: Settings, out: Path) -> None:
    """Refresh the response intervals and render the run's median-response heatmap."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text

    from geodispatch.analytics.heatmap import render_heatmap
    from geodispatch.analytics.intervals import refresh_intervals
    from geodispatch.db import app_engine, session_factory, transaction

    engine = app_engine(settings)
    try:
        with transaction(session_factory(engine)) as session:
            if refresh_intervals(session=session) == 0 and not session.execute(
                    text("SELECT EXISTS (SELECT 1 FROM response_intervals)")).scalar():
                print("[demo] no incidents in this database yet: no heatmap", flush=True)
                return
            now = datetime.now(UTC)
            render_heatmap(session=session, metric="median_response", res=9,
                           start=now - timedelta(days=7), end=now + timedelta(hours=1), out=out)
        print(f"[demo] heatmap of the run (median response per H3 cell): {out}", flush=True)
    except Exception as exc:  # noqa: BLE001 - a failed report must not spoil a clean stop
        log.warning("demo: could not render the heatmap: %s", exc)
    finally:
        engine.dispose()


def _crew_lines(base: str, crew: tuple[str, str, str, str, str]) -> list[str]:
    officer, password, call_sign, device, token = crew
    return [
        f"  Crew terminal (open on a phone or tablet): {base}/crew",
        f"    Officer tab:  {officer} / {password}, call sign {call_sign}",
        f"    Crew device:  {device} / {token}",
        f"    ({call_sign}'s simulated crew also acknowledges and drives its calls.)",
        "",
    ]


def _banner(base: str, prep: Prepared, *, auto: bool, phone_line: bool = False) -> None:
    lines = [
        "",
        "=" * 72,
        f"  geodispatch demo: the dispatcher map is at {base}/",
        f"  API documentation: {base}/docs",
        "",
        "  Demo users (passwords are new on every start):",
        *[f"    {u:<12} {p:<16} {r}" for u, p, r in prep.users],
        "",
        *(_crew_lines(base, prep.crew) if prep.crew else []),
        f"  {prep.units} simulated crews drive the road graph and report over MQTT,",
        "  acknowledging their assignments on the terminals' ack topic;",
        "  replayed San Francisco calls arrive as new incidents.",
        *(["  A simulated phone line rings 102 through Kamailio: log in as calltaker,",
           "  answer on the Calls tab (AML point on the map), record what the call was."]
          if phone_line else []),
        "  " + ("--auto: a dispatcher bot accepts every recommendation." if auto else
                "Log in as dispatcher and accept the suggested crews on the map."),
        "  Ctrl-C stops everything.",
        "=" * 72,
        "",
    ]
    print("\n".join(lines), flush=True)


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--osm-file", type=Path, default=None,
                     help="OSM extract (.osm/.osm.pbf/...; default: the Baltimore extract)")
    src.add_argument("--place", default=None,
                     help='download the city with osmnx, e.g. "Kyiv, Ukraine" (needs internet)')
    p.add_argument("--rebuild-graph", action="store_true", help="rebuild even if unchanged")
    p.add_argument("--units", type=int, default=200, help="simulated crews (default 200)")
    p.add_argument("--owntracks-share", type=float, default=0.3,
                   help="fraction of crews reporting as OwnTracks (the rest native)")
    p.add_argument("--prefix", default="P", help="call-sign prefix of the crews (P-001...)")
    p.add_argument("--region", default=None, help="region code (default: the setting)")
    p.add_argument("--country", default="UA", help="country code of the generated zones")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--auto", action="store_true",
                   help="a dispatcher bot accepts every recommendation unattended")
    p.add_argument("--speedup", type=float, default=20.0,
                   help="replay real call gaps this many times faster (default 20)")
    p.add_argument("--max-calls", type=int, default=None, help="stop generating after N calls")
    p.add_argument("--no-calls", action="store_true", help="no call generator")
    p.add_argument("--no-phone", action="store_true",
                   help="no simulated phone line (SIPp callers through Kamailio)")
    p.add_argument("--phone-every-s", type=float, default=20.0,
                   help="mean seconds between the phone line's calls")
    p.add_argument("--report-s", type=float, default=5.0, help="seconds between a crew's fixes")
    p.add_argument("--on-scene-s", type=float, nargs=2, default=(45.0, 150.0),
                   metavar=("MIN", "MAX"), help="time crews stay on scene")
    p.add_argument("--dropouts-per-h", type=float, default=2.0,
                   help="GPS coverage losses per crew per hour (fixes sent later as a batch)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--headless", action="store_true", help="do not open a browser")
