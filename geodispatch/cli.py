"""The ``geodispatch`` console script: one entry point, one subcommand family per domain.

Each domain that has commands exposes ``register(subparsers)`` in its own ``cli.py``; this module
only assembles them, configures logging once and turns every failure into one clear line on
standard error (what went wrong and what to do), with the traceback only under ``-v``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from geodispatch.errors import ConfigurationError, GeodispatchError
from geodispatch.settings import get_settings

log = logging.getLogger(__name__)

#: Every domain's command family, imported explicitly (a missing one fails at start).
DOMAIN_CLIS = (
    "geodispatch.tracking.cli",
    "geodispatch.calls.cli",
    "geodispatch.routing.cli",
    "geodispatch.tiles.cli",
    "geodispatch.geocoding.cli",
    "geodispatch.zones.cli",
    "geodispatch.federation.cli",
    "geodispatch.incidents.cli",
    "geodispatch.ledger.cli",
    "geodispatch.notify.cli",
    "geodispatch.analytics.cli",
    "geodispatch.sim.cli",
    "geodispatch.api.cli",
    "geodispatch.users.cli",
)

Handler = Callable[[argparse.Namespace], int | None]


def _db_upgrade(args: argparse.Namespace) -> int:
    from geodispatch.migrate import upgrade

    upgrade(get_settings(), revision=args.revision)
    print("database is at", args.revision)
    return 0


def _db_check(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, check_database

    engine = app_engine(get_settings())
    check_database(engine)
    print("database OK:", engine.url.render_as_string(hide_password=True))
    return 0


def _broker_setup(args: argparse.Namespace) -> int:
    from geodispatch.tracking.broker import write_config

    print(write_config(get_settings()))
    return 0


def _broker_sync(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, session_factory
    from geodispatch.tracking.broker import change_passwd
    from geodispatch.tracking.service import active_logins

    settings = get_settings()
    with session_factory(app_engine(settings))() as session:
        keep = active_logins(session=session)
    removed = change_passwd(settings, keep_only=keep)
    print(f"broker password file: {removed} login(s) of inactive or unknown units removed; "
          f"{len(keep)} active unit login(s) kept")
    return 0


def _crew_status(**kwargs: Any) -> None:
    """The dispatch workflow's ``crew_status_report`` (imported when a status first arrives, so
    ``geodispatch --help`` does not load the dispatch domain)."""
    from geodispatch.dispatch.workflow import crew_status_report

    crew_status_report(**kwargs)


def _sms_outcome(**kwargs: Any) -> None:
    """The incident record's ``record_sms_outcome`` (imported when the first outcome comes)."""
    from geodispatch.incidents.record import record_sms_outcome

    record_sms_outcome(**kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geodispatch",
        description="Geospatial dispatch and unit tracking for police emergency call centres.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    # The composition root's cross-domain wires for commands: the ingest workers hand the crew
    # statuses they decode to the dispatch workflow (tracking does not import dispatch), and
    # the SMS worker writes delivery outcomes into the incident record (notify does not import
    # incidents).
    parser.set_defaults(crew_status_handler=_crew_status, sms_outcome_recorder=_sms_outcome)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    db = sub.add_parser("db", help="database schema (migrations)")
    dbsub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = dbsub.add_parser("upgrade", help="apply migrations (alembic upgrade)")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(func=_db_upgrade)
    dbsub.add_parser("check", help="connect and verify PostGIS").set_defaults(func=_db_check)

    broker = sub.add_parser("broker", help="the project's Mosquitto configuration")
    bsub = broker.add_subparsers(dest="broker_command", metavar="ACTION", required=True)
    bsub.add_parser("setup", help="write mosquitto.conf, ACL and server account").set_defaults(
        func=_broker_setup
    )
    bsub.add_parser("sync", help="drop every broker login that is not an active unit's "
                    "(this database's units only: one broker per database)").set_defaults(
        func=_broker_sync
    )

    for name in DOMAIN_CLIS:
        importlib.import_module(name).register(sub)
    return parser


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["verify-log"] and "--export" in argv:
        # The standalone verifier: no database driver, no models, no other domain loaded.
        from geodispatch.incidents.cli import standalone_verify

        return standalone_verify(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    func: Handler | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place every failure becomes one line
        return _fail(exc, verbose=args.verbose)


def explain(exc: BaseException) -> tuple[str, int]:
    """One line saying what is wrong (and what to do), and the exit status."""
    from sqlalchemy.exc import OperationalError as DbUnreachable

    if isinstance(exc, ConfigurationError):
        return str(exc), 2
    if isinstance(exc, GeodispatchError):
        return str(exc), 1
    if isinstance(exc, IsADirectoryError):
        return f"{exc.filename} is a directory; give a file", 1
    if isinstance(exc, FileNotFoundError):
        return (f"{exc.filename}: no such file" if exc.filename else str(exc)), 1
    if isinstance(exc, PermissionError):
        return f"{exc.filename or exc}: permission denied", 1
    if isinstance(exc, DbUnreachable):
        first = str(exc.orig or exc).strip().splitlines()[0]
        return (f"the database is not reachable ({first[:200]}); start it with `make services`"
                " or check GEODISPATCH_DATABASE_URL"), 1
    text_ = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if "PBF error" in text_ or "XML parsing error" in text_:
        return f"not a readable OSM file ({text_[:200]}): is it complete, and really OSM?", 1
    return f"{type(exc).__name__}: {text_[:300]}".rstrip(": "), 1


def _fail(exc: BaseException, *, verbose: bool) -> int:
    message, status = explain(exc)
    if verbose:
        log.error("failed", exc_info=exc)
    print(f"geodispatch: {message}" + ("" if verbose else " (-v shows the traceback)"),
          file=sys.stderr)
    return status

if __name__ == "__main__":
    sys.exit(main())
