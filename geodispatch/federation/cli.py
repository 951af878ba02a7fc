"""``geodispatch export eido`` (regional side) and ``geodispatch import eido`` (national side)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any


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

    engine = app_engine(get_settings())
    check_database(engine)
    try:
        with session_factory(engine)() as session:
            docs = export_incidents(
                session=session, region=args.region, since=args.since, system=args.system
            )
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


def _load_docs(paths: list[Path]) -> list[dict[str, Any]]:
    files: list[Path] = []
    for p in paths:
        files.extend(sorted(p.glob("*.json")) if p.is_dir() else [p])
    docs: list[dict[str, Any]] = []
    for f in files:
        data = json.loads(f.read_text(encoding="utf-8"))
        docs.extend(data if isinstance(data, list) else [data])
    return docs


def _import(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, check_database, session_factory, transaction
    from geodispatch.errors import GeodispatchError
    from geodispatch.federation.service import import_many
    from geodispatch.settings import get_settings

    settings = get_settings()
    docs = _load_docs(args.files)
    engine = app_engine(settings)
    check_database(engine)
    try:
        with transaction(session_factory(engine)) as session:
            results = import_many(session=session, docs=docs, settings=settings)
    except GeodispatchError as exc:
        print(f"geodispatch import eido: {exc} -- nothing imported", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    for r in results:
        print(f"{r.reference}: {'created' if r.created else 'updated'}, "
              f"{r.events_checked} events verified, {r.events_added} new")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    exp = sub.add_parser("export", help="export data for other centres")
    es = exp.add_subparsers(dest="export_command", metavar="FORMAT", required=True)
    e = es.add_parser("eido", help="incidents with their event logs as NENA EIDO JSON")
    e.add_argument("--region", default=None, help="only this region (default: all)")
    e.add_argument("--since", type=_since, default=None, help="changed at or after (ISO-8601)")
    e.add_argument("--system", default="geodispatch", help="sending system id (this centre)")
    e.add_argument("--out", type=Path, required=True, help="folder for one file per incident")
    e.set_defaults(func=_export)

    imp = sub.add_parser("import", help="import data from other centres")
    is_ = imp.add_subparsers(dest="import_command", metavar="FORMAT", required=True)
    i = is_.add_parser("eido", help="verify and import EIDO JSON files or folders")
    i.add_argument("files", type=Path, nargs="+")
    i.set_defaults(func=_import)
