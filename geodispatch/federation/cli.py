"""Federation commands.

``geodispatch export eido`` (regional side: EIDO files with their log proofs),
``geodispatch import eido`` (national side: verify, witness, import; foreign EIDOs mapped),
``geodispatch federation centre add|list`` (the national registry of regional centres),
``geodispatch federation subscribe`` (the national subscriber: live EIDO feeds of every
registered centre), ``geodispatch federation refusals`` and ``federation regions``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path


def _since(value: str) -> datetime:
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {value}") from None
    if t.tzinfo is None:
        raise argparse.ArgumentTypeError("give a time zone, e.g. 2026-01-01T00:00:00+00:00")
    return t


def _export(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, check_database, session_factory
    from geodispatch.federation.service import export_incidents
    from geodispatch.settings import get_settings

    settings = get_settings()
    engine = app_engine(settings)
    check_database(engine)
    try:
        with session_factory(engine)() as session:
            docs = export_incidents(session=session, settings=settings, region=args.region,
                                    since=args.since, from_size=args.from_size)
            session.rollback()
    finally:
        engine.dispose()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for doc in docs:
        ref = doc["incidentComponent"]["internalIncidentId"]
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in ref)
        (out / f"{safe}.eido.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1))
    print(f"{len(docs)} incidents exported to {out}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, check_database, session_factory, transaction
    from geodispatch.federation.national import documents_of
    from geodispatch.federation.service import import_documents
    from geodispatch.settings import get_settings

    settings = get_settings()
    docs = documents_of(args.files)
    engine = app_engine(settings)
    check_database(engine)
    try:
        with transaction(session_factory(engine)) as session:
            results = import_documents(session=session, docs=docs, settings=settings)
    finally:
        engine.dispose()
    refused = 0
    for r in results:
        if not r.accepted:
            refused += 1
            print(f"refused ({r.reason}): {r.detail}", file=sys.stderr)
            continue
        line = f"{r.reference}: {r.events_new} new events, {r.events_seen} already here"
        if r.centre is None:
            line = f"{r.reference}: imported unverified (foreign EIDO)"
        print(line)
        for u in r.unmapped:
            print(f"  not mapped: {u}")
    return 1 if refused else 0


def _centre_add(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, check_database, session_factory, transaction
    from geodispatch.federation.national import register_centre
    from geodispatch.settings import get_settings

    engine = app_engine(get_settings())
    check_database(engine)
    try:
        with transaction(session_factory(engine)) as session:
            c = register_centre(session=session, code=args.code, url=args.url,
                                public_key_pem=Path(args.public_key).read_bytes())
    finally:
        engine.dispose()
    print(f"centre {c.code} registered (log {c.log_id[:16]}..., feed {c.url or 'none'})")
    return 0


def _centre_list(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, check_database, session_factory
    from geodispatch.federation.national import region_summary
    from geodispatch.settings import get_settings

    engine = app_engine(get_settings())
    check_database(engine)
    try:
        with session_factory(engine)() as session:
            rows = region_summary(session=session)
    finally:
        engine.dispose()
    print(f"{'centre':8} {'witnessed':>9} {'events':>7} {'incidents':>9} {'refused':>7}  url")
    for r in rows:
        print(f"{r['code']:8} {r['size'] or 0:>9} {r['events']:>7} {r['incidents']:>9} "
              f"{r['refused']:>7}  {r['url'] or ''}")
    return 0


def _refusals(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, check_database, session_factory
    from geodispatch.federation.national import refusals
    from geodispatch.settings import get_settings

    engine = app_engine(get_settings())
    check_database(engine)
    try:
        with session_factory(engine)() as session:
            rows = refusals(session=session, limit=args.limit)
    finally:
        engine.dispose()
    for r in rows:
        print(f"{r['received_at']:%Y-%m-%d %H:%M:%S} {r['centre_code'] or '?':6} {r['via']:5} "
              f"{r['reason']:13} {r['detail']}")
    return 0


def _subscribe(args: argparse.Namespace) -> int:
    import asyncio

    from geodispatch.federation.subscriber import run_subscribers
    from geodispatch.settings import get_settings

    asyncio.run(run_subscribers(get_settings(), only=args.centre))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    exp = sub.add_parser("export", help="export data for other centres")
    es = exp.add_subparsers(dest="export_command", metavar="FORMAT", required=True)
    e = es.add_parser("eido", help="incidents with their signed-log proofs as NENA EIDO JSON")
    e.add_argument("--region", default=None, help="only this region (default: all)")
    e.add_argument("--since", type=_since, default=None, help="changed at or after (ISO-8601)")
    e.add_argument("--from-size", type=int, default=None,
                   help="add a consistency proof from this tree size (the receiver's last)")
    e.add_argument("--out", type=Path, required=True, help="folder for one file per incident")
    e.set_defaults(func=_export)

    imp = sub.add_parser("import", help="import data from other centres")
    is_ = imp.add_subparsers(dest="import_command", metavar="FORMAT", required=True)
    i = is_.add_parser("eido", help="verify and import EIDO JSON (or .jws) files or folders")
    i.add_argument("files", type=Path, nargs="+")
    i.set_defaults(func=_import)

    fed = sub.add_parser("federation", help="regional centres and the national centre")
    fs = fed.add_subparsers(dest="federation_command", metavar="COMMAND", required=True)
    c = fs.add_parser("centre", help="the registry of regional centres (national side)")
    cs = c.add_subparsers(dest="centre_command", metavar="COMMAND", required=True)
    ca = cs.add_parser("add", help="register a regional centre (or change its feed URL)")
    ca.add_argument("code", help="the centre's code, e.g. KV")
    ca.add_argument("--public-key", required=True,
                    help="the centre's log public key (PEM, its var/keys/log-public.pem)")
    ca.add_argument("--url", default=None, help="its API base URL, e.g. http://kv:8000")
    ca.set_defaults(func=_centre_add)
    cs.add_parser("list", help="registered centres, what was witnessed and received"
                  ).set_defaults(func=_centre_list)
    s = fs.add_parser("subscribe", help="follow every registered centre's live EIDO feed")
    s.add_argument("--centre", default=None, help="only this centre")
    s.set_defaults(func=_subscribe)
    r = fs.add_parser("refusals", help="documents refused, newest first, with the reason")
    r.add_argument("--limit", type=int, default=50)
    r.set_defaults(func=_refusals)
