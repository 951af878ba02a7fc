"""Archive imports in the signed record: one event per imported batch, not one per incident.

An archive (years of an agency's calls for service) is history, not the live record: its rows go
in by ``COPY`` and set-based ``INSERT ... SELECT`` (:mod:`geodispatch.analytics.importer`), with
``import_batch_id`` set on every incident and assignment the batch inserted. What makes them
tamper-evident is the batch's single event (kind ``archive_imported``, subject
``import_batch_id``), sealed into the same Merkle log as every other event::

    {"v": 1, "import_batch_id": 3, "batch_seq": 1, "kind": "archive_imported",
     "actor": "import", "at": "...", "state": null,
     "data": {"file": "calls.csv", "file_sha256": "<hex>", "mapping": "sf", "region": "SF",
              "source_rows": 7704, "incidents": 3560, "assignments": 7704,
              "rows_sha256": "<hex>"}}

``rows_sha256`` is :func:`batch_digest`: SHA-256 over the canonical spelling of the batch's rows
(:data:`INCIDENT_COLUMNS` of each incident, then :data:`ASSIGNMENT_COLUMNS` of each assignment,
both in ``id`` order, as CSV written by the database with times in UTC to the microsecond and
points as hex EWKB, so the spelling does not depend on session settings). Verification
(:func:`geodispatch.incidents.verify.verify_record`) recomputes it: a changed, added or removed
row of a batch is named with its batch and file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rfc8785
from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from geodispatch.incidents.models import IncidentEvent
from geodispatch.incidents.record import BODY_VERSION, iso_utc, normalise

KIND = "archive_imported"

INCIDENT_COLUMNS = (
    "id", "reference", "idempotency_key", "region", "received_at", "registered_at", "location",
    "h3", "address", "address_resolved", "location_precision", "location_method", "category",
    "original_category", "priority", "status", "description", "sector_id", "district_id",
    "disposition", "created_by", "closed_at", "source", "external_ref", "import_batch_id",
)
"""Columns of an imported incident covered by its batch's hash."""

ASSIGNMENT_COLUMNS = (
    "id", "incident_id", "unit_id", "status", "is_lead", "was_recommended", "created_by",
    "dispatched_at", "en_route_at", "on_scene_at", "cleared_at", "cancelled_at",
    "import_batch_id",
)
"""Columns of an imported assignment covered by its batch's hash."""

_TIMES = frozenset({"received_at", "registered_at", "closed_at", "dispatched_at", "en_route_at",
                    "on_scene_at", "cleared_at", "cancelled_at"})


def _spell(col: str) -> str:
    if col in _TIMES:
        return f"to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    if col == "location":
        return "encode(ST_AsEWKB(location), 'hex')"
    if col in ("is_lead", "was_recommended"):
        return f"({col})::int"
    return col


def _rows_sql(table: str, columns: tuple[str, ...], batch_id: int) -> str:
    return (f"COPY (SELECT {', '.join(_spell(c) for c in columns)} FROM {table} "
            f"WHERE import_batch_id = {int(batch_id)} ORDER BY id) TO STDOUT WITH (FORMAT csv)")


@dataclass(frozen=True)
class BatchDigest:
    """What :func:`batch_digest` found: the rows of a batch and their hash."""

    incidents: int
    assignments: int
    rows_sha256: str


def batch_digest(session: Session, batch_id: int) -> BatchDigest:
    """SHA-256 over the canonical spelling of every row of ``batch_id`` (see the module doc).

    Streams the rows out of the database with ``COPY ... TO STDOUT`` (a million rows in a few
    seconds); the counts are counted separately (a CSV field may hold a line break).
    """
    session.flush()
    raw = session.connection().connection.driver_connection
    assert raw is not None
    h = hashlib.sha256()
    with raw.cursor() as cur:
        for name, table, columns in (("incidents", "incidents", INCIDENT_COLUMNS),
                                     ("assignments", "assignments", ASSIGNMENT_COLUMNS)):
            h.update(f"{name}\n".encode())
            with cur.copy(_rows_sql(table, columns, batch_id)) as copy:
                for chunk in copy:
                    h.update(chunk)
    counts = session.execute(text(
        "SELECT (SELECT count(*) FROM incidents WHERE import_batch_id = :b), "
        "(SELECT count(*) FROM assignments WHERE import_batch_id = :b)"), {"b": batch_id}).one()
    return BatchDigest(int(counts[0]), int(counts[1]), h.hexdigest())


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def open_batch(session: Session, *, region: str, file_name: str, file_sha256: str,
               mapping: str) -> int:
    """Create the batch row the imported rows will name; returns its id."""
    return int(session.execute(text(
        "INSERT INTO import_batches (region, file_name, file_sha256, mapping) "
        "VALUES (:r, :f, :s, :m) RETURNING id"),
        {"r": region, "f": file_name, "s": file_sha256, "m": mapping}).scalar_one())


def discard_batch(session: Session, batch_id: int) -> None:
    """Remove a batch that inserted nothing (a repeated import): no event, no row."""
    session.execute(text("DELETE FROM import_batches WHERE id = :b"), {"b": batch_id})


def batch_event_body(*, batch_id: int, seq: int, kind: str, actor: str, at: datetime,
                     data: dict[str, Any]) -> bytes:
    """The canonical bytes of a batch's event (the Merkle leaf)."""
    return rfc8785.dumps({"v": BODY_VERSION, "import_batch_id": batch_id, "batch_seq": seq,
                          "kind": kind, "actor": actor, "at": iso_utc(at), "data": data,
                          "state": None})


def seal_batch(session: Session, *, batch_id: int, data: dict[str, Any],
               actor: str = "import", at: datetime | None = None) -> tuple[int, BatchDigest]:
    """Append the batch's one event: ``data`` plus the counts and ``rows_sha256`` of its rows.

    Returns the event id and the digest. Call it once the batch's rows are all inserted.
    """
    when = (at or datetime.now(UTC)).astimezone(UTC)
    digest = batch_digest(session, batch_id)
    payload = normalise({**data, "incidents": digest.incidents,
                         "assignments": digest.assignments, "rows_sha256": digest.rows_sha256})
    body = batch_event_body(batch_id=batch_id, seq=1, kind=KIND, actor=actor, at=when,
                            data=payload)
    event_id = session.execute(
        insert(IncidentEvent).values(incident_id=None, call_id=None, import_batch_id=batch_id,
                                     incident_seq=1, kind=KIND, actor=actor, at=when,
                                     data=payload, body=body)
        .returning(IncidentEvent.id)).scalar_one()
    return int(event_id), digest


__all__ = ["ASSIGNMENT_COLUMNS", "INCIDENT_COLUMNS", "KIND", "BatchDigest", "batch_digest",
           "batch_event_body", "discard_batch", "file_sha256", "open_batch", "seal_batch"]
