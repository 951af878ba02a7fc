"""The ingest pipeline after decoding: resolve the unit, validate, index to H3, write in batches.

Steps, in order, each small and separately tested::

    decoded reports --resolve--> unit_id --validate--> accepted | drop(reason)
        --index--> H3 cell (settings.h3_position_res, stored as BIGINT)
        --write--> COPY into a temporary table, then one INSERT .. ON CONFLICT DO NOTHING into the
                   partitioned ``positions`` and one upsert of ``unit_latest`` guarded by fix_time
        --publish--> the in-memory live fleet (after the commit, by the caller)

Validation keeps a little state per unit (the newest accepted fix) to catch duplicates and
implausible jumps. Out-of-order fixes are kept for the history; ``unit_latest`` only moves forward
because the upsert is guarded by ``fix_time``. Redelivered messages (after a worker crash, before
the broker got the acknowledgement) are absorbed by ``ON CONFLICT (unit_id, fix_time)`` and counted
as ``duplicate``. Every drop is counted per reason in ``ingest_drops`` and logged with its unit.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import h3
import orjson
from psycopg import Connection as PgConnection
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.geo import LatLng, haversine_m
from geodispatch.settings import Settings
from geodispatch.tracking.reports import (
    DUPLICATE,
    IN_FUTURE,
    POOR_ACCURACY,
    SPEED_JUMP,
    TOO_OLD,
    PositionReport,
)

log = logging.getLogger(__name__)

# After this many consecutive speed-jump rejections the unit's fix is believed (a long tunnel, a
# ferry, a first bad fix of the day): otherwise one wrong fix would lock the unit out for good.
SPEED_JUMP_RESET = 3


@dataclass(slots=True)
class LastFix:
    """The newest accepted fix of one unit, as the validator remembers it."""

    fix_time: datetime
    position: LatLng
    accuracy_m: float = 0.0
    jumps: int = 0


class Validator:
    """Per-fix checks; remembers the newest accepted fix of each unit (thread-confined)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.last: dict[int, LastFix] = {}

    def seed(self, unit_id: int, fix_time: datetime, position: LatLng) -> None:
        """Start from a known fix (``unit_latest`` at start-up)."""
        cur = self.last.get(unit_id)
        if cur is None or cur.fix_time < fix_time:
            self.last[unit_id] = LastFix(fix_time, position)

    def check(self, report: PositionReport, *, now: datetime, check_age: bool = True) -> str | None:
        """The drop reason for ``report``, or None when it is accepted (and then remembered).

        Parameters
        ----------
        report
            A decoded fix with ``unit_id`` resolved and ``position`` set.
        now
            The reference time for the too-old / in-future checks.
        check_age
            False for imported recordings (GPX), which are old by nature.
        """
        s = self.settings
        assert report.position is not None and report.unit_id is not None
        age = (now - report.fix_time).total_seconds()
        if check_age and age > s.max_fix_age_s:
            return TOO_OLD
        if -age > s.max_future_s:
            return IN_FUTURE
        if report.accuracy_m is not None and report.accuracy_m > s.max_accuracy_m:
            return POOR_ACCURACY
        last = self.last.get(report.unit_id)
        if last is None:
            self.last[report.unit_id] = LastFix(
                report.fix_time, report.position, report.accuracy_m or 0.0
            )
            return None
        if report.fix_time == last.fix_time:
            return DUPLICATE
        if report.fix_time < last.fix_time:
            return None  # out of order: kept for the history, never moves the latest position
        dt = (report.fix_time - last.fix_time).total_seconds()
        # GPS noise is not speed: forgive the reported accuracy of both fixes.
        slack = (report.accuracy_m or 0.0) + last.accuracy_m
        dist = max(0.0, haversine_m(last.position, report.position) - slack)
        if dist / dt * 3.6 > s.max_speed_kmh and last.jumps + 1 < SPEED_JUMP_RESET:
            last.jumps += 1
            return SPEED_JUMP
        self.last[report.unit_id] = LastFix(
            report.fix_time, report.position, report.accuracy_m or 0.0
        )
        return None


def h3_index(report: PositionReport, res: int) -> int:
    """The report's H3 cell at ``res`` as the signed BIGINT PostgreSQL stores."""
    assert report.position is not None
    cell = int(h3.str_to_int(report.position.h3_cell(res)))
    return cell if cell < 2**63 else cell - 2**64


@dataclass
class Drops:
    """Dropped messages of one batch: counts per reason and one log line per drop."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str, *, unit: object, detail: str = "", n: int = 1) -> None:
        self.counts[reason] += n
        log.warning("dropped message from unit %s: %s %s", unit, reason, detail)

    def merge(self, other: Drops) -> None:
        self.counts.update(other.counts)

    def __bool__(self) -> bool:
        return bool(self.counts)


@dataclass
class WriteResult:
    """What one batch write did."""

    inserted: int = 0
    duplicates: int = 0
    latest_moved: set[int] = field(default_factory=set)


BATCH_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS ingest_batch (
    unit_id integer, fix_time timestamptz, received_at timestamptz, lat float8, lng float8,
    h3 bigint, speed_mps float8, heading float8, accuracy_m float8, altitude_m float8,
    battery float8, source text, attributes text
) ON COMMIT DELETE ROWS
"""
BATCH_COLUMNS = (
    "unit_id, fix_time, received_at, lat, lng, h3, speed_mps, heading, accuracy_m, altitude_m, "
    "battery, source, attributes"
)
BATCH_TYPES = [
    "int4", "timestamptz", "timestamptz", "float8", "float8", "int8", "float8", "float8",
    "float8", "float8", "float8", "text", "text",
]
INSERT_HISTORY = """
INSERT INTO positions (unit_id, fix_time, received_at, geom, h3, speed_mps, heading, accuracy_m,
                       altitude_m, battery, source, attributes)
SELECT unit_id, fix_time, received_at, ST_SetSRID(ST_MakePoint(lng, lat), 4326), h3, speed_mps,
       heading, accuracy_m, altitude_m, battery, source, attributes::jsonb
FROM ingest_batch
ON CONFLICT (unit_id, fix_time) DO NOTHING
"""
# DISTINCT ON: one row per unit (the newest of the batch); ORDER BY unit_id also fixes the lock
# order, so two workers upserting overlapping units cannot deadlock.
UPSERT_LATEST = """
INSERT INTO unit_latest AS l (unit_id, fix_time, received_at, geom, h3, speed_mps, heading,
                              accuracy_m, battery, online)
SELECT DISTINCT ON (unit_id) unit_id, fix_time, received_at,
       ST_SetSRID(ST_MakePoint(lng, lat), 4326), h3, speed_mps, heading, accuracy_m, battery, true
FROM ingest_batch
ORDER BY unit_id, fix_time DESC
ON CONFLICT (unit_id) DO UPDATE SET
    fix_time = EXCLUDED.fix_time, received_at = EXCLUDED.received_at, geom = EXCLUDED.geom,
    h3 = EXCLUDED.h3, speed_mps = EXCLUDED.speed_mps, heading = EXCLUDED.heading,
    accuracy_m = EXCLUDED.accuracy_m, battery = EXCLUDED.battery, online = true
WHERE l.fix_time < EXCLUDED.fix_time
RETURNING unit_id
"""


def to_row(r: PositionReport) -> tuple[object, ...]:
    """The COPY row of an accepted, indexed report."""
    assert r.position is not None
    attrs = orjson.dumps(r.attributes).decode() if r.attributes else None
    return (
        r.unit_id, r.fix_time, r.received_at, r.position.lat, r.position.lng, r.h3, r.speed_mps,
        r.heading, r.accuracy_m, r.altitude_m, r.battery, r.source, attrs,
    )


def _driver_connection(session: Session) -> PgConnection[Any]:
    raw = session.connection().connection.driver_connection
    assert isinstance(raw, PgConnection), "the tracking pipeline needs the psycopg 3 driver"
    return raw


def write_positions(*, session: Session, rows: Sequence[tuple[object, ...]]) -> WriteResult:
    """Write accepted rows (see :func:`to_row`): history by COPY + insert, latest by upsert.

    Flushes the session first so ORM changes of the same unit of work are visible; never
    commits. Returns how many history rows were new and which units' latest position moved.
    """
    result = WriteResult()
    if not rows:
        return result
    session.flush()
    raw = _driver_connection(session)
    with raw.cursor() as cur:
        # Creating (even "IF NOT EXISTS") touches the catalog: only when this session lacks it.
        cur.execute("SELECT to_regclass('pg_temp.ingest_batch')")
        row = cur.fetchone()
        if row is None or row[0] is None:
            cur.execute(BATCH_TABLE)
        with cur.copy(f"COPY ingest_batch ({BATCH_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(BATCH_TYPES)
            for row in rows:
                copy.write_row(row)
        cur.execute(INSERT_HISTORY)
        result.inserted = max(cur.rowcount, 0)
        result.duplicates = len(rows) - result.inserted
        cur.execute(UPSERT_LATEST)
        result.latest_moved = {int(r[0]) for r in cur.fetchall()}
        # Emptied at commit anyway; DELETE (not TRUNCATE: a new file each time) for callers that
        # write twice in one transaction.
        cur.execute("DELETE FROM ingest_batch")
    return result


def record_positions(
    *, session: Session, reports: Sequence[PositionReport], settings: Settings
) -> WriteResult:
    """Index and write already validated reports (``unit_id`` and ``position`` set)."""
    res = settings.h3_position_res
    rows = []
    for r in reports:
        r.h3 = h3_index(r, res)
        rows.append(to_row(r))
    return write_positions(session=session, rows=rows)


def record_drops(
    *, session: Session, counts: Mapping[str, int], at: datetime | None = None
) -> None:
    """Add drop counts per reason to ``ingest_drops`` (sorted: a fixed lock order)."""
    items = sorted((k, v) for k, v in counts.items() if v)
    if not items:
        return
    when = at or datetime.now(UTC)
    session.execute(
        text(
            "INSERT INTO ingest_drops (reason, count, last_at) VALUES (:r, :n, :at) "
            "ON CONFLICT (reason) DO UPDATE SET count = ingest_drops.count + EXCLUDED.count, "
            "last_at = EXCLUDED.last_at"
        ),
        [{"r": r[:48], "n": n, "at": when} for r, n in items],
    )


def mark_offline(*, session: Session, unit_ids: Iterable[int]) -> None:
    """Flag units offline in ``unit_latest`` (OwnTracks last will)."""
    ids = sorted(set(unit_ids))
    if ids:
        session.execute(
            text("UPDATE unit_latest SET online = false WHERE unit_id = ANY(:ids)"), {"ids": ids}
        )
