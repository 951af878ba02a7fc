"""The SMS outbox worker: claim (one transaction), send (none), record (one transaction)."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from geodispatch.notify.gateway import Gateway, make_gateway
from geodispatch.notify.outbox import OutcomeRecorder, claim_due, record_outcomes, send_claims
from geodispatch.settings import Settings

log = logging.getLogger(__name__)


def run_once(factory: sessionmaker[Session], gateway: Gateway, settings: Settings,
             record: OutcomeRecorder) -> int:
    """One pass; returns how many messages were attempted."""
    with factory() as session, session.begin():
        claims = claim_due(session=session, record=record)
    if not claims:
        return 0
    outcomes = send_claims(claims, gateway)
    with factory() as session, session.begin():
        record_outcomes(session=session, outcomes=outcomes, record=record, settings=settings)
    return len(claims)


def run_worker(factory: sessionmaker[Session], settings: Settings, stop: threading.Event, *,
               record: OutcomeRecorder, gateway: Gateway | None = None,
               idle_s: float = 1.0) -> None:
    """Deliver until ``stop`` is set; sleeps ``idle_s`` when nothing was due. ``record`` writes
    each outcome into the incident's record."""
    gw = gateway or make_gateway(settings)
    while not stop.is_set():
        try:
            n = run_once(factory, gw, settings, record)
        except Exception:  # noqa: BLE001 - keep delivering after a database hiccup
            log.exception("SMS delivery pass failed")
            n = 0
        if n == 0:
            stop.wait(idle_s)
