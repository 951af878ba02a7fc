"""``geodispatch verify-log``: check the incident record against the signed log.

``geodispatch verify-log [--incident REF]`` reads the database (and the tree-head file and
witnesses); ``geodispatch verify-log --export FILE --public-key KEY`` checks an exported log with
no database and none of the project's models.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _verify_export(args: argparse.Namespace) -> int:
    from geodispatch.ledger.offline import verify_export
    from geodispatch.ledger.signing import load_public_key

    rep = verify_export(Path(args.export), load_public_key(Path(args.public_key)))
    print(json.dumps(rep.as_dict()))
    if rep.ok:
        print(f"exported log OK: {rep.events} events, {rep.heads_checked} signed tree heads")
        return 0
    print(f"exported log FAILS: {len(rep.problems)} problems, first: {rep.problems[0]}")
    return 1


def _verify(args: argparse.Namespace) -> int:
    if args.export:
        if not args.public_key:
            print("verify-log --export needs --public-key (the centre's PEM public key)")
            return 2
        return _verify_export(args)
    from geodispatch.db import app_engine, check_database, session_factory
    from geodispatch.incidents.service import get_by_reference
    from geodispatch.incidents.verify import verify_record
    from geodispatch.ledger.service import public_key, witnesses
    from geodispatch.settings import get_settings

    settings = get_settings()
    key = public_key(settings)
    engine = app_engine(settings)
    check_database(engine)
    try:
        with session_factory(engine)() as session:
            incident_id = None
            if args.incident:
                incident_id = get_by_reference(session=session, reference=args.incident).id
            report = verify_record(session=session, public_key=key,
                                   witnesses=witnesses(settings, key), incident_id=incident_id)
            session.rollback()
    finally:
        engine.dispose()
    print(json.dumps(report.as_dict(), default=str))
    for w in report.warnings:
        print("warning:", w)
    if report.ok:
        print(f"record OK: {report.events} events ({report.sealed} sealed, {report.pending} "
              f"waiting), {report.heads_checked} signed tree heads checked")
        return 0
    for f in report.findings:
        print("FOUND:", f.what + (f" [{f.reference}]" if f.reference else ""))
    return 1


def standalone_verify(argv: list[str]) -> int:
    """``verify-log --export FILE --public-key KEY`` without building the whole CLI."""
    p = argparse.ArgumentParser(prog="geodispatch verify-log")
    p.add_argument("--export", required=True, metavar="FILE")
    p.add_argument("--public-key", required=True, metavar="PEM")
    args = p.parse_args(argv)
    try:
        return _verify_export(args)
    except Exception as exc:  # noqa: BLE001  (unreadable key or file: one clear line)
        print(f"geodispatch verify-log: {exc}", file=sys.stderr)
        return 2


def register(sub: Any) -> None:
    v = sub.add_parser("verify-log", help="verify the incident record against the signed log")
    v.add_argument("--incident", metavar="REF", help="only this incident's events and rows")
    v.add_argument("--export", metavar="FILE", help="verify an exported log, without a database")
    v.add_argument("--public-key", metavar="PEM", help="the centre's public key (with --export)")
    v.set_defaults(func=_verify)
