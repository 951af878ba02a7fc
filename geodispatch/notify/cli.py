"""``geodispatch sms worker``: deliver the SMS outbox until interrupted."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any


def _worker(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, check_database, session_factory
    from geodispatch.notify.worker import run_worker
    from geodispatch.settings import get_settings

    settings = get_settings()
    engine = app_engine(settings)
    check_database(engine)
    stop = threading.Event()

    def handle(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    try:
        run_worker(session_factory(engine), settings, stop, idle_s=args.idle,
                   record=args.sms_outcome_recorder)
    except KeyboardInterrupt:
        pass
    finally:
        engine.dispose()
    return 0


def register(sub: Any) -> None:
    sms = sub.add_parser("sms", help="caller SMS notifications")
    ssub = sms.add_subparsers(dest="sms_command", metavar="ACTION", required=True)
    w = ssub.add_parser("worker", help="deliver the SMS outbox (retries with backoff)")
    w.add_argument("--idle", type=float, default=1.0, help="seconds to wait when idle")
    w.set_defaults(func=_worker)
