"""``geodispatch simulate``: run the fleet simulator against the real broker until stopped.

Loads the road graph (or a synthetic grid with ``--grid``), provisions ``--units`` crews (unless
``--no-provision``: then the fleet file must already list them), connects one MQTT client per
crew (or one shared connection with ``--shared``) and drives them until SIGINT/SIGTERM or
``--duration``.
"""

from __future__ import annotations

import argparse
import logging
import resource
import signal
import threading
import time
from pathlib import Path
from typing import Any

from geodispatch.errors import ConfigurationError
from geodispatch.geo import LatLng
from geodispatch.settings import Settings, get_settings
from geodispatch.sim.engine import Simulator, load_fleet
from geodispatch.sim.motion import GpsModel
from geodispatch.sim.roads import GridRoads, Roads, RouterRoads
from geodispatch.sim.unit import SimConfig

log = logging.getLogger(__name__)


def load_roads(settings: Settings, *, grid: bool = False) -> Roads:
    """The built road graph through the routing engine, or a grid when asked (or none is built)."""
    if grid:
        return GridRoads(LatLng(39.29, -76.61), size=20, spacing_m=250.0)
    try:
        from geodispatch.routing.engine import load_router
    except ImportError as exc:
        raise ConfigurationError(f"routing engine unavailable ({exc}); use --grid") from None
    router = load_router(settings)
    if router is None:
        raise ConfigurationError(
            f"no road graph at {settings.resolved_graph_path}: run `geodispatch graph import` "
            "(or `geodispatch demo`), or simulate on a synthetic grid with --grid")
    return RouterRoads(router)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--units", type=int, default=200, help="number of crews (default 200)")
    p.add_argument("--fleet", type=Path, default=None,
                   help="fleet file with device tokens (default var/sim/fleet-<database>.json)")
    p.add_argument("--no-provision", action="store_true",
                   help="do not create crews in the database; use the fleet file as it is")
    p.add_argument("--region", default=None, help="region of created crews (default: setting)")
    p.add_argument("--prefix", default="P", help="call-sign prefix of created crews")
    p.add_argument("--owntracks-share", type=float, default=0.3,
                   help="fraction of created crews that speak OwnTracks (others native)")
    p.add_argument("--shared", action="store_true",
                   help="one MQTT connection with the server account (benchmarks)")
    p.add_argument("--report-s", type=float, default=5.0, help="seconds between fixes when moving")
    p.add_argument("--idle-report-s", type=float, default=15.0,
                   help="seconds between fixes when stopped")
    p.add_argument("--noise-m", type=float, default=5.0, help="GPS error sigma in metres")
    p.add_argument("--dropouts-per-h", type=float, default=2.0,
                   help="coverage losses per crew per hour (fixes buffered, sent as a batch)")
    p.add_argument("--on-scene-s", type=float, nargs=2, default=(45.0, 150.0),
                   metavar=("MIN", "MAX"), help="time a crew stays on scene")
    p.add_argument("--patrol-radius-m", type=float, default=1500.0)
    p.add_argument("--tick-s", type=float, default=0.5, help="simulation step")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--grid", action="store_true", help="drive a synthetic grid, not the graph")
    p.add_argument("--stats-file", type=Path, default=None,
                   help="write the running counters here as JSON")


def config_from_args(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        report_s=args.report_s, idle_report_s=args.idle_report_s,
        patrol_radius_m=args.patrol_radius_m, on_scene_s=(args.on_scene_s[0], args.on_scene_s[1]),
        gps=GpsModel(noise_m=args.noise_m, dropout_rate_per_h=args.dropouts_per_h),
    )


def provision(settings: Settings, args: argparse.Namespace, roads: Roads) -> list[Any]:
    """Create/refresh the crews in the database (committed) and return their specs."""
    from geodispatch.db import app_engine, check_database, session_factory, transaction
    from geodispatch.sim.provision import clear_stale_assignments, default_fleet_path, ensure_fleet

    fleet_path = args.fleet or default_fleet_path(settings)
    engine = app_engine(settings)
    try:
        check_database(engine)
        with transaction(session_factory(engine)) as session:
            specs = ensure_fleet(session=session, settings=settings, n=args.units, roads=roads,
                                 region=args.region or settings.default_region,
                                 fleet_path=fleet_path, owntracks_share=args.owntracks_share,
                                 prefix=args.prefix)
            clear_stale_assignments(session=session, settings=settings, specs=specs)
    finally:
        engine.dispose()
    return specs


def run_simulate(args: argparse.Namespace) -> int:
    from geodispatch.sim.transport import MqttTransport

    settings = get_settings()
    roads = load_roads(settings, grid=args.grid)
    if args.no_provision:
        from geodispatch.sim.provision import default_fleet_path

        fleet_path = args.fleet or default_fleet_path(settings)
        if not fleet_path.exists():
            raise ConfigurationError(f"fleet file {fleet_path} not found (drop --no-provision)")
        specs = load_fleet(fleet_path)[: args.units]
    else:
        specs = provision(settings, args, roads)
    sim = Simulator(specs, roads=roads, config=config_from_args(args), seed=args.seed)
    transport = MqttTransport(settings, specs, on_assignment=sim.on_assignment, shared=args.shared)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        log.info("simulator: signal %d, stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    t0 = time.monotonic()
    transport.connect()
    up = transport.wait_connected(timeout=15.0)
    want = 1 if args.shared else len(specs)
    log.info("simulator: %d/%d MQTT connections up in %.2fs", up, want, time.monotonic() - t0)
    cpu0 = time.process_time()
    try:
        stats = sim.run(transport, stop=stop, tick_s=args.tick_s, duration_s=args.duration,
                        stats_file=args.stats_file)
    finally:
        transport.close()
    elapsed = time.monotonic() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log.info("simulator: %d crews, %d fixes in %.0fs, CPU %.1f%% of one core, max RSS %.0f MB",
             len(specs), stats.fixes, elapsed,
             100 * (time.process_time() - cpu0) / max(elapsed, 1e-9), rss_mb)
    return 0
