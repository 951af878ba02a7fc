"""Bench-only launcher: ``geodispatch serve`` with the old single-lock chain put back.

``bench/intake.py`` starts this instead of ``geodispatch serve`` for its named baseline, "the old
single-lock chain". It is not a benchmark itself (``make bench`` skips ``bench/_*.py``) and
nothing in the ``geodispatch`` package knows about it.

Before the application is imported, :func:`geodispatch.incidents.record.prepare_event` and
:func:`~geodispatch.incidents.record.write_event` (every append goes through both) are wrapped so
that every transaction that appends an event does what the hash chain of
``geodispatch/incidents/chain.py`` (before issue 12) did, in the same place, and registration
takes its reference number before writing its event, as it did then:

1. ``SELECT pg_advisory_xact_lock(0x6764_6368_6169_6E)``: the old chain's one global lock (same
   key), taken at the transaction's first append and held until it commits or rolls back;
2. read the head of the chain, ``SELECT hash FROM bench_baseline_chain ORDER BY id DESC LIMIT 1``
   (the genesis is 64 zeros);
3. the current ``append_event`` (the event row, its projected state and canonical body, the
   log's queue trigger: the work the new design does too);
4. ``INSERT INTO bench_baseline_chain`` the link ``sha256(prev_hash_hex || body)`` of the event
   just written (one statement that reads the body back in the database).

The table ``bench_baseline_chain`` is created and dropped by ``bench/intake.py`` in its own
bench database. The modules that bind ``append_event`` at import time get the wrapper because
the patch runs first; a check after importing the application refuses to serve if any module
still holds the unwrapped function.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

import geodispatch.incidents.record as record  # noqa: E402

#: The old chain's advisory-lock key ("gdchain"), as ``chain.CHAIN_LOCK_KEY`` was.
CHAIN_LOCK_KEY = 0x6764_6368_6169_6E
GENESIS = "0" * 64
TABLE = "bench_baseline_chain"
CREATE_SQL = (f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, "
              "event_id bigint NOT NULL UNIQUE, prev_hash char(64) NOT NULL, "
              "hash char(64) NOT NULL UNIQUE)")

_unwrapped_prepare = record.prepare_event
_unwrapped_write = record.write_event


def prepare_event_single_lock(*, session: Session, **kwargs: Any) -> record.PendingEvent:
    """``prepare_event`` behind the old design's global lock (see module doc)."""
    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CHAIN_LOCK_KEY})
    return _unwrapped_prepare(session=session, **kwargs)


def write_event_linked(*, session: Session, **kwargs: Any) -> int:
    """``write_event`` followed by the old chain's hash link (see module doc)."""
    prev = session.execute(
        text(f"SELECT hash FROM {TABLE} ORDER BY id DESC LIMIT 1")).scalar() or GENESIS
    event_id = _unwrapped_write(session=session, **kwargs)
    session.execute(text(
        f"INSERT INTO {TABLE} (event_id, prev_hash, hash) SELECT id, CAST(:p AS text), "
        "encode(sha256(convert_to(CAST(:p AS text), 'UTF8') || body), 'hex') "
        "FROM incident_events WHERE id = :e"), {"e": event_id, "p": prev})
    return event_id


def number_then_write(*, session: Session, incident: Any, event: record.PendingEvent,
                      year: int, sms: Any = None, at_commit: bool = False) -> None:
    """Registration as before issue 12: the reference number, then the event, under the lock
    (taken at once, held to the commit: ``at_commit`` is the new log's way and is ignored)."""
    from geodispatch.incidents.service import next_reference

    placeholder = incident.reference
    number = next_reference(session=session, region=incident.region, year=year)
    event.set_incident(session, reference=number)
    event.data["reference"] = number
    record.write_event(session=session, pending=event)
    session.execute(text("UPDATE sms_outbox SET body = replace(body, :p, :n) "
                         "WHERE incident_id = :i"),
                    {"p": placeholder, "n": number, "i": incident.id})


def _install() -> None:
    record.prepare_event = prepare_event_single_lock  # type: ignore[assignment]
    record.write_event = write_event_linked  # type: ignore[assignment]
    # Import everything the server imports, then make sure nobody kept an unwrapped function.
    import geodispatch.api.app  # noqa: F401
    import geodispatch.incidents.service as service
    import geodispatch.models  # noqa: F401

    service._number = number_then_write  # type: ignore[assignment]
    unwrapped = (_unwrapped_prepare, _unwrapped_write)
    stale = sorted(name for name, mod in list(sys.modules.items())
                   if name.startswith("geodispatch") and name != "geodispatch.incidents.record"
                   and any(getattr(mod, f, None) in unwrapped
                           for f in ("prepare_event", "write_event")))
    if stale:
        sys.exit(f"baseline: {', '.join(stale)} still bind an unwrapped event writer")


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: _baseline_server.py serve [--port N] [--no-ingest]  "
              "(started by bench/intake.py)", file=sys.stderr)
        return 2
    _install()
    from geodispatch.cli import main as cli_main

    return int(cli_main(sys.argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
