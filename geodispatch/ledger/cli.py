"""``geodispatch log ...``: keys, the sequencer, proofs, export, and a witness server."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _keygen(args: argparse.Namespace) -> int:
    from geodispatch.ledger.signing import generate_keypair
    from geodispatch.settings import get_settings

    s = get_settings()
    created = generate_keypair(s.resolved_log_signing_key, s.resolved_log_public_key)
    print(("created " if created else "kept the existing ") + str(s.resolved_log_signing_key))
    print("public key:", s.resolved_log_public_key)
    return 0


def _sequence(args: argparse.Namespace) -> int:
    from geodispatch.db import admin_engine
    from geodispatch.ledger.service import centre_sequencer
    from geodispatch.settings import get_settings

    s = get_settings()
    engine = admin_engine(s)
    seq = centre_sequencer(s, engine)
    seq.open()
    try:
        if args.once:
            n = seq.drain()
            print(f"sealed {n} events; tree size {seq.tree.size}")
            return 0
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        log.info("sequencer running: tree size %d, sealing every %.2f s", seq.tree.size,
                 s.log_seal_interval_s)
        seq.run(stop, s.log_seal_interval_s)
        return 0
    finally:
        seq.close()
        engine.dispose()


def _export(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, session_factory
    from geodispatch.ledger.service import export_lines, public_key, subject_by_reference
    from geodispatch.settings import get_settings

    s = get_settings()
    engine = app_engine(s)
    try:
        with session_factory(engine)() as session:
            iid = subject_by_reference(session, args.incident) if args.incident else None
            out = Path(args.out)
            n = 0
            with out.open("wb") as fh:
                for line in export_lines(session=session, key=public_key(s), incident_id=iid):
                    fh.write(line)
                    n += 1
            session.rollback()
    finally:
        engine.dispose()
    print(f"exported {n - 1} events to {out}; public key {s.resolved_log_public_key}")
    return 0


def _proof(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, session_factory
    from geodispatch.ledger.service import inclusion
    from geodispatch.settings import get_settings

    engine = app_engine(get_settings())
    try:
        with session_factory(engine)() as session:
            print(json.dumps(inclusion(session=session, event_id=args.event), indent=1))
    finally:
        engine.dispose()
    return 0


def _witness_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from geodispatch.ledger.signing import load_public_key
    from geodispatch.ledger.witness_app import create_witness_app

    keys = [load_public_key(Path(k)) for k in args.public_key]
    app = create_witness_app(Path(args.dir), keys)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("log", help="the signed event log: keys, sequencer, proofs, export")
    ls = p.add_subparsers(dest="log_command", metavar="ACTION", required=True)
    ls.add_parser("keygen", help="create the centre's Ed25519 key pair (kept if it exists)"
                  ).set_defaults(func=_keygen)
    q = ls.add_parser("sequence", help="run the sequencer: seal queued events into signed heads")
    q.add_argument("--once", action="store_true", help="seal what is queued, then exit")
    q.set_defaults(func=_sequence)
    e = ls.add_parser("export", help="export the sealed log (or one incident with proofs)")
    e.add_argument("--out", required=True, metavar="FILE")
    e.add_argument("--incident", metavar="REF", help="only this incident, with inclusion proofs")
    e.set_defaults(func=_export)
    pr = ls.add_parser("proof", help="inclusion proof of one event in the newest tree head")
    pr.add_argument("--event", type=int, required=True, metavar="ID")
    pr.set_defaults(func=_proof)
    w = ls.add_parser("witness-serve", help="serve an HTTP witness for other centres' logs")
    w.add_argument("--dir", required=True, help="where accepted heads are kept")
    w.add_argument("--public-key", action="append", required=True, metavar="PEM",
                   help="a log's public key (repeatable)")
    w.add_argument("--host", default="127.0.0.1")
    w.add_argument("--port", type=int, default=8090)
    w.set_defaults(func=_witness_serve)

