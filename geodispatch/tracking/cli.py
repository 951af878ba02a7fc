"""Tracking commands: ``ingest``, ``units add|list|token``, ``tracking import-gpx|drops``."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path
from typing import Any

from geodispatch.settings import get_settings


def _ingest(args: argparse.Namespace) -> int:
    settings = get_settings()
    if not args.worker_process:
        return _supervise(args)
    from geodispatch.tracking.worker import run_worker

    stats = run_worker(settings, index=args.index, client_id=args.client_id, group=args.group,
                       record_lag=args.stats_file is not None,
                       status_handler=args.crew_status_handler)
    print(f"ingest stopped: {stats.messages} messages, {stats.stored} stored, "
          f"{stats.dropped} dropped ({stats.dead_letters} dead-lettered); busy: decode+validate "
          f"{stats.decode_s:.1f} s, write {stats.write_s:.1f} s, ack {stats.ack_s:.1f} s")
    if args.stats_file:
        import json

        Path(args.stats_file).write_text(json.dumps({
            "messages": stats.messages, "stored": stats.stored, "dropped": stats.dropped,
            "batches": stats.batches, "db_retries": stats.db_retries,
            "dead_letters": stats.dead_letters,
            "lags_ms": [round(x, 2) for x in stats.lags_ms],
        }))
    return 0


def _supervise(args: argparse.Namespace) -> int:
    """N worker processes (the GIL), each with its own persistent session in the group, under a
    supervisor that restarts any that dies (``geodispatch.tracking.supervisor``)."""
    import signal

    from geodispatch.tracking.supervisor import Supervisor, worker_commands

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    from geodispatch.db import app_engine, session_factory
    from geodispatch.tracking.scheduled import PartitionJob

    settings = get_settings()
    commands = worker_commands(max(1, args.workers), group=args.group, client_id=args.client_id,
                               stats_file=args.stats_file)
    engine = app_engine(settings.model_copy(update={"db_pool_size": 1}))
    job = PartitionJob(session_factory(engine), settings)
    try:
        return Supervisor(commands, jobs=[job.run]).run(stop)
    finally:
        engine.dispose()


def _units_add(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, session_factory, transaction
    from geodispatch.tracking.service import create_unit

    settings = get_settings()
    engine = app_engine(settings)
    with transaction(session_factory(engine)) as session:
        unit, token = create_unit(
            session=session, call_sign=args.call_sign, kind=args.kind,
            capabilities=args.capability or [], region=args.region, device_id=args.device_id,
            token=args.token, owntracks_user=args.owntracks_user,
            owntracks_device=args.owntracks_device, settings=settings,
        )
    print(f"unit {unit.id} {unit.call_sign}: device id {unit.device_id}, token {token}")
    print("(the token is shown once; it is the MQTT password and the HTTP ingest token)")
    return 0


def _units_token(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, session_factory, transaction
    from geodispatch.tracking.service import get_unit, rotate_token

    settings = get_settings()
    with transaction(session_factory(app_engine(settings))) as session:
        unit = get_unit(session=session, ref=args.unit)
        token = rotate_token(session=session, unit=unit, token=args.token, settings=settings)
    print(f"unit {unit.call_sign}: new token {token}")
    return 0


def _units_deactivate(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, session_factory, transaction
    from geodispatch.tracking.service import deactivate_unit, get_unit

    settings = get_settings()
    with transaction(session_factory(app_engine(settings))) as session:
        unit = get_unit(session=session, ref=args.unit)
        deactivate_unit(session=session, unit=unit, settings=settings)
    print(f"unit {unit.call_sign} deactivated: its token and broker logins are revoked")
    return 0


def _units_activate(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, session_factory, transaction
    from geodispatch.tracking.service import activate_unit, get_unit

    settings = get_settings()
    with transaction(session_factory(app_engine(settings))) as session:
        unit = get_unit(session=session, ref=args.unit)
        token = activate_unit(session=session, unit=unit, token=args.token, settings=settings)
    print(f"unit {unit.call_sign} active again: new token {token}")
    return 0


def _units_list(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, session_factory
    from geodispatch.tracking.fleet import LiveFleet

    settings = get_settings()
    fleet = LiveFleet(settings)
    with session_factory(app_engine(settings))() as session:
        fleet.refresh(session)
    print(f"{'id':>5} {'call sign':<14} {'region':<6} {'status':<14} {'fix time':<26} stale")
    for s in fleet.snapshot():
        if args.region and s.region != args.region:
            continue
        fix = s.fix_time.isoformat(timespec="seconds") if s.fix_time else "-"
        print(f"{s.unit_id:>5} {s.call_sign:<14} {s.region:<6} {s.status:<14} {fix:<26} "
              f"{'yes' if s.stale else 'no'}")
    return 0


def _import_gpx(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, session_factory, transaction
    from geodispatch.tracking.service import get_unit, import_gpx

    settings = get_settings()
    with transaction(session_factory(app_engine(settings))) as session:
        unit = get_unit(session=session, ref=args.unit)
        res = import_gpx(session=session, unit=unit, path=Path(args.file), settings=settings)
    print(f"{args.file}: {res.points} points, {res.stored} stored, {res.duplicates} already "
          f"there, dropped {res.dropped or 'none'}")
    return 0


def _partitions(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, session_factory
    from geodispatch.tracking.scheduled import PartitionJob, partition_status

    settings = get_settings()
    if args.months is not None:
        settings = settings.model_copy(update={"partition_months_ahead": args.months})
    factory = session_factory(app_engine(settings))
    ok = PartitionJob(factory, settings).run_once()
    with factory() as session:
        status = partition_status(session=session, months=settings.partition_months_ahead + 1)
    print(f"partitions: {'ensured' if ok else 'NOT ensured (see the error above)'}; missing in "
          f"the window: {', '.join(status.missing) or 'none'}; rows in the default partition: "
          f"{status.default_rows}")
    return 0 if ok and not status.missing else 1


def _drops(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, session_factory
    from geodispatch.tracking.service import drop_counts

    with session_factory(app_engine(get_settings()))() as session:
        counts = drop_counts(session=session)
    for reason, n in sorted(counts.items()):
        print(f"{reason:<20} {n}")
    return 0


def _dead_letters(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, session_factory
    from geodispatch.tracking.service import dead_letters

    with session_factory(app_engine(get_settings()))() as session:
        letters = dead_letters(session=session, limit=args.limit)
    for d in letters:
        payload = bytes(d.payload)
        shown = payload[:120].decode("utf-8", "backslashreplace")
        print(f"{d.id:>8} {d.received_at.isoformat(timespec='seconds')} {d.transport:<5} "
              f"{d.reason:<15} unit {d.unit_id or '-'} {d.topic}\n         {len(payload)} bytes: "
              f"{shown}{'...' if len(payload) > 120 else ''}\n         {d.detail}")
    if not letters:
        print("no dead letters")
    return 0


def register(sub: Any) -> None:
    """Add the tracking commands to the ``geodispatch`` parser."""
    ing = sub.add_parser("ingest", help="run MQTT ingest workers (Ctrl-C to stop)")
    ing.add_argument("--workers", type=int, default=1, help="worker processes")
    ing.add_argument("--index", type=int, default=0, help="this worker's index (client id suffix)")
    ing.add_argument("--client-id", default=None, help="MQTT client id (default: prefix-index)")
    ing.add_argument("--group", default=None, help="shared-subscription group")
    ing.add_argument("--stats-file", default=None,
                     help="write counters and publish-to-commit lags as JSON on exit (bench)")
    ing.add_argument("--worker-process", action="store_true",
                     help="run one worker in this process, unsupervised (what the supervisor "
                          "starts)")
    ing.set_defaults(func=_ingest)

    units = sub.add_parser("units", help="crews and their tracker credentials")
    usub = units.add_subparsers(dest="units_command", metavar="ACTION", required=True)
    add = usub.add_parser("add", help="create a unit and print its device token once")
    add.add_argument("call_sign")
    add.add_argument("--region", required=True)
    add.add_argument("--kind", default="patrol_car")
    add.add_argument("--capability", action="append", help="repeatable")
    add.add_argument("--device-id", default=None, help="default: the call sign")
    add.add_argument("--token", default=None, help="default: a random 32-byte token")
    add.add_argument("--owntracks-user", default=None)
    add.add_argument("--owntracks-device", default=None)
    add.set_defaults(func=_units_add)
    tok = usub.add_parser("token", help="give a unit a new device token")
    tok.add_argument("unit", help="call sign, device id or id")
    tok.add_argument("--token", default=None)
    tok.set_defaults(func=_units_token)
    de = usub.add_parser("deactivate", help="take a unit out of service: its token and broker "
                         "logins stop working at once")
    de.add_argument("unit", help="call sign, device id or id")
    de.set_defaults(func=_units_deactivate)
    ac = usub.add_parser("activate", help="put a deactivated unit back, with a new token")
    ac.add_argument("unit", help="call sign, device id or id")
    ac.add_argument("--token", default=None)
    ac.set_defaults(func=_units_activate)
    ls = usub.add_parser("list", help="units with latest fix and staleness")
    ls.add_argument("--region", default=None)
    ls.set_defaults(func=_units_list)

    tr = sub.add_parser("tracking", help="tracking data tools")
    tsub = tr.add_subparsers(dest="tracking_command", metavar="ACTION", required=True)
    gpx = tsub.add_parser("import-gpx", help="import a recorded GPX track into a unit's history")
    gpx.add_argument("file")
    gpx.add_argument("--unit", required=True, help="call sign, device id or id")
    gpx.set_defaults(func=_import_gpx)
    tsub.add_parser("drops", help="dropped messages per reason").set_defaults(func=_drops)
    pt = tsub.add_parser("partitions", help="create the monthly position partitions ahead now "
                         "(ingest and serve also do it every hour)")
    pt.add_argument("--months", type=int, default=None,
                    help="months ahead (default: partition_months_ahead)")
    pt.set_defaults(func=_partitions)
    dl = tsub.add_parser("dead-letters",
                         help="messages kept whole because they broke an ingest stage")
    dl.add_argument("--limit", type=int, default=20)
    dl.set_defaults(func=_dead_letters)
