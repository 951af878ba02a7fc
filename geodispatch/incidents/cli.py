"""``geodispatch verify-log [--incident REF]`` and ``geodispatch anchor-log``."""

from __future__ import annotations

import argparse
import json
from typing import Any


def _verify(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, check_database, session_factory
    from geodispatch.incidents.chain import verify_chain
    from geodispatch.incidents.service import get_by_reference
    from geodispatch.settings import get_settings

    engine = app_engine(get_settings())
    check_database(engine)
    try:
        with session_factory(engine)() as session:
            incident_id = None
            if args.incident:
                incident_id = get_by_reference(session=session, reference=args.incident).id
            report = verify_chain(session=session, incident_id=incident_id)
            session.rollback()
    finally:
        engine.dispose()
    print(json.dumps(report.as_dict()))
    if report.ok:
        print(f"event log OK: {report.checked} events verified")
        return 0
    print(f"event log BROKEN at event {report.first_broken_id}: {report.reason}")
    return 1


def _anchor(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, session_factory, transaction
    from geodispatch.incidents.chain import anchor_chain
    from geodispatch.settings import get_settings

    settings = get_settings()
    engine = app_engine(settings)
    try:
        with transaction(session_factory(engine)) as session:
            a = anchor_chain(session=session, path=settings.resolved_anchor_path)
            print("anchored event", a.last_event_id if a else "(head already anchored)")
    finally:
        engine.dispose()
    return 0


def register(sub: Any) -> None:
    v = sub.add_parser("verify-log", help="verify the hash-chained incident event log")
    v.add_argument("--incident", metavar="REF", help="only this incident's stretch of the chain")
    v.set_defaults(func=_verify)
    a = sub.add_parser("anchor-log", help="anchor the event chain head now")
    a.set_defaults(func=_anchor)
