"""The ingest pipeline after decoding: resolve the unit, validate, index to H3, write in batches.

Steps, in order, each small and separately tested::

    decoded reports --resolve--> unit_id --store check--> attributes as JSON | drop(unstorable)
        --validate--> accepted | drop(reason)
        --index--> H3 cell (settings.h3_position_res, stored as BIGINT)
        --write--> COPY into a temporary table, then one INSERT .. ON CONFLICT DO NOTHING into the
                   partitioned ``positions`` and one upsert of ``unit_latest`` guarded by fix_time
        --publish--> the in-memory live fleet (after the commit, by the caller)

Every step is total: anything a message can contain ends as a stored fix or a counted, logged
drop with a reason. Text PostgreSQL cannot store (U+0000), JSON nesting deeper than the encoder
allows and integers beyond 64 bits are found before the write (``unstorable``), so they never
fail a batch; a write that fails anyway is isolated by the worker (see ``worker.py``) and the
message kept in ``ingest_dead_letters``.

Validation remembers the last few committed fixes of each unit (:class:`Validator`) to catch
duplicates and implausible jumps against the nearest fixes in time; what it remembers changes
only once a write has committed. Out-of-order fixes are kept for the history; ``unit_latest``
only moves forward because the upsert is guarded by ``fix_time``. Redelivered messages (after a
worker crash, before the broker got the acknowledgement) are absorbed by ``ON CONFLICT (unit_id,
fix_time)`` and counted as ``duplicate``. Every drop is counted per reason in ``ingest_drops``
and logged with its unit.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import h3
import orjson
import psycopg
from psycopg import Connection as PgConnection
from sqlalchemy import exc as sa_exc
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

# SQLSTATE classes (and single states) that mean "this data", not "this database right now":
# cardinality, data exception (untranslatable character, out of range...), integrity (foreign
# key, check), program limits, internal errors, and exceptions raised by triggers/functions.
DATA_SQLSTATE_CLASSES = frozenset(("21", "22", "23", "54", "XX", "P0", "2F", "38", "39"))
DATA_SQLSTATES = frozenset(("57014",))  # statement timeout: this batch is too heavy


def is_transient(exc: BaseException) -> bool:
    """True when a failed write says nothing about the data: retry the same batch later.

    Connection loss, server shutdown, deadlocks and serialization failures, resource exhaustion
    (disk full), missing tables or grants (a deployment problem) are transient: the messages
    stay unacknowledged while the worker retries. Data exceptions, integrity violations,
    program limits and any non-database error raised while writing are not: the batch is split
    to find the message at fault.
    """
    orig: BaseException | None = exc
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
    elif isinstance(exc, sa_exc.SQLAlchemyError):
        return True  # pool timeouts, invalid transaction states: the environment, not the data
    if not isinstance(orig, psycopg.Error):
        return False
    state = orig.sqlstate
    if state is None:
        return isinstance(orig, psycopg.OperationalError | psycopg.InterfaceError)
    return not (state[:2] in DATA_SQLSTATE_CLASSES or state in DATA_SQLSTATES)

# After this many consecutive speed-jump rejections the unit's fix is believed (a long tunnel, a
# ferry, a first bad fix of the day): otherwise one wrong fix would lock the unit out for good.
SPEED_JUMP_RESET = 3
# Committed fixes remembered per unit for the duplicate and nearest-in-time speed checks.
HISTORY = 16
# Fixes closer in time than this are compared as if this far apart: sub-second GPS noise is not
# speed.
MIN_DT_S = 1.0


@dataclass(slots=True)
class _Fix:
    """One remembered fix: epoch seconds, position, accuracy and the batch token (0 = committed)."""

    t: float
    lat: float
    lng: float
    acc: float
    token: int


@dataclass(slots=True)
class _Track:
    """The remembered fixes of one unit, sorted by time, and its speed-jump streak."""

    times: list[float] = field(default_factory=list)
    fixes: list[_Fix] = field(default_factory=list)
    jumps: int = 0

    def insert(self, fix: _Fix) -> None:
        i = bisect.bisect_left(self.times, fix.t)
        self.times.insert(i, fix.t)
        self.fixes.insert(i, fix)

    def trim(self) -> None:
        """Keep the newest ``HISTORY`` committed fixes (and every pending one)."""
        committed = [f for f in self.fixes if f.token == 0]
        if len(committed) <= HISTORY:
            return
        cut = committed[-HISTORY].t
        kept = [f for f in self.fixes if f.token != 0 or f.t >= cut]
        self.fixes = kept
        self.times = [f.t for f in kept]


class Validator:
    """Per-fix checks against the unit's remembered fixes; thread-safe.

    Memory changes only when the caller says the write committed: :meth:`check` with a token
    from :meth:`begin` remembers an accepted fix as *pending* (so later fixes of the same batch,
    and of batches prepared meanwhile, are checked against it), :meth:`commit` makes the fixes
    that were really written permanent and forgets the others, :meth:`discard` forgets them
    all. A fix whose write failed is therefore accepted again when it is resent. Token 0
    commits at once (a caller that does not write, or writes nothing else).

    The speed check compares a fix with its nearest remembered fixes in time, before and after
    it, so an out-of-order fix far from where the unit was at that time is refused too.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tracks: dict[int, _Track] = {}
        self._pending: dict[int, set[int]] = {}
        self._next_token = 1
        self._lock = threading.Lock()

    def seed(self, unit_id: int, fix_time: datetime, position: LatLng) -> None:
        """Start from a known fix (``unit_latest`` at start-up)."""
        with self._lock:
            track = self.tracks.setdefault(unit_id, _Track())
            t = fix_time.timestamp()
            i = bisect.bisect_left(track.times, t)
            if i < len(track.times) and track.times[i] == t:
                return
            track.insert(_Fix(t, position.lat, position.lng, 0.0, 0))
            track.trim()

    def begin(self) -> int:
        """A new batch token for :meth:`check`."""
        with self._lock:
            token = self._next_token
            self._next_token += 1
            self._pending[token] = set()
            return token

    def commit(self, token: int, written: Iterable[PositionReport]) -> None:
        """Batch ``token`` committed with ``written`` stored: remember those, forget the rest."""
        if token == 0:
            return
        keep: dict[int, set[float]] = {}
        for r in written:
            if r.unit_id is not None:
                keep.setdefault(r.unit_id, set()).add(r.fix_time.timestamp())
        with self._lock:
            for uid in self._pending.pop(token, ()):
                track = self.tracks.get(uid)
                if track is None:
                    continue
                times = keep.get(uid, set())
                fixes = []
                for f in track.fixes:
                    if f.token == token:
                        if f.t not in times:
                            continue
                        f.token = 0
                    fixes.append(f)
                track.fixes = fixes
                track.times = [f.t for f in fixes]
                track.trim()

    def discard(self, token: int) -> None:
        """The batch ``token`` was not written: forget its pending fixes."""
        self.commit(token, ())

    def check(self, report: PositionReport, *, now: datetime, check_age: bool = True,
              token: int = 0) -> str | None:
        """The drop reason for ``report``, or None when it is accepted (and then remembered,
        pending under ``token`` until :meth:`commit`).

        Parameters
        ----------
        report
            A decoded fix with ``unit_id`` resolved and ``position`` set.
        now
            The reference time for the too-old / in-future checks.
        check_age
            False for imported recordings (GPX), which are old by nature.
        token
            From :meth:`begin`; 0 remembers an accepted fix at once.
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
        t = report.fix_time.timestamp()
        pos = report.position
        acc = report.accuracy_m or 0.0
        with self._lock:
            track = self.tracks.get(report.unit_id)
            if track is None:
                track = self.tracks[report.unit_id] = _Track()
            times = track.times
            i = bisect.bisect_left(times, t)
            if i < len(times) and times[i] == t:
                return DUPLICATE
            limit = s.max_speed_kmh / 3.6
            for j in (i - 1, i):  # the nearest remembered fixes before and after
                if 0 <= j < len(times):
                    f = track.fixes[j]
                    dt = max(abs(t - f.t), MIN_DT_S)
                    # GPS noise is not speed: forgive the reported accuracy of both fixes.
                    dist = haversine_m(LatLng(f.lat, f.lng), pos) - acc - f.acc
                    if dist > 0.0 and dist / dt > limit:
                        if track.jumps + 1 < SPEED_JUMP_RESET:
                            track.jumps += 1
                            return SPEED_JUMP
                        break
            track.jumps = 0
            track.insert(_Fix(t, pos.lat, pos.lng, acc, token))
            if token == 0:
                track.trim()
            else:
                pending = self._pending.get(token)
                if pending is not None:
                    pending.add(report.unit_id)
        return None


def implausible_field(report: PositionReport, settings: Settings) -> str | None:
    """Name the numeric field outside its plausibility bounds (settings), or None.

    The decoders already turn non-finite values and the "unknown" conventions (negative speed or
    heading) into None; what is left must be physically possible for a police vehicle's tracker:
    speed 0..``max_reported_speed_kmh``, heading 0..``max_heading_deg``, altitude
    ``min_altitude_m``..``max_altitude_m``, accuracy >= 0, battery 0..``max_battery_pct``. A fix
    with such a field is refused whole (``implausible``): whatever produced ``speed=1e300`` is
    not trusted for the position either.
    """
    s = settings
    checks = (
        ("speed", None if report.speed_mps is None else report.speed_mps * 3.6,
         0.0, s.max_reported_speed_kmh, "km/h"),
        ("heading", report.heading, 0.0, s.max_heading_deg, "degrees"),
        ("altitude", report.altitude_m, s.min_altitude_m, s.max_altitude_m, "m"),
        ("accuracy", report.accuracy_m, 0.0, math.inf, "m"),
        ("battery", report.battery, 0.0, s.max_battery_pct, "%"),
    )
    for name, value, low, high, unit in checks:
        if value is not None and not low <= value <= high:
            return f"{name} {value:.6g} {unit} outside {low:g}..{high:g}"
    return None


def storage_problem(report: PositionReport) -> str | None:
    """Prepare ``report.attrs_json``; say why the report cannot be stored, or None.

    PostgreSQL text and ``jsonb`` cannot hold U+0000; JSON text cannot be written for nesting
    deeper than orjson's limit (254), integers beyond 64 bits or lone surrogates. Such a report
    is dropped as ``unstorable`` instead of failing the batch's write.
    """
    attrs = report.attributes
    if not attrs:
        report.attrs_json = None
        return None
    try:
        raw = orjson.dumps(attrs)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        return f"attributes cannot be written as JSON ({str(exc)[:60]})"
    if b"\\u0000" in raw and _has_nul(attrs, 0):
        return "attributes contain U+0000 (NUL), which PostgreSQL cannot store"
    report.attrs_json = raw.decode()
    return None


def _has_nul(value: object, depth: int) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if depth > 300:
        return False
    if isinstance(value, dict):
        return any(_has_nul(k, depth + 1) or _has_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v, depth + 1) for v in value)
    return False


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
    # The reports whose write committed (the validator remembers exactly these).
    written: list[PositionReport] = field(default_factory=list)

    def merge(self, other: WriteResult) -> None:
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.latest_moved |= other.latest_moved
        self.written.extend(other.written)


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
    if r.attributes and r.attrs_json is None:
        # Callers that skipped the storability check (tests, imports) still get valid JSON.
        r.attrs_json = orjson.dumps(r.attributes).decode()
    attrs = r.attrs_json
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


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message kept whole because it broke (or would have broken) a stage."""

    transport: str
    topic: str
    payload: bytes
    reason: str
    detail: str
    unit_id: int | None = None


def _clean_text(value: str, limit: int) -> str:
    """``value`` as text PostgreSQL can store: NUL and lone surrogates replaced, truncated."""
    value = value[:limit].replace("\x00", "\ufffd")
    return value.encode("utf-8", "replace").decode("utf-8")


def record_dead_letters(*, session: Session, letters: Sequence[DeadLetter],
                        at: datetime | None = None) -> None:
    """Keep the raw messages in ``ingest_dead_letters`` (bytes as received; text cleaned)."""
    if not letters:
        return
    when = at or datetime.now(UTC)
    session.execute(
        text(
            "INSERT INTO ingest_dead_letters (received_at, transport, topic, payload, reason, "
            "detail, unit_id) VALUES (:at, :transport, :topic, :payload, :reason, :detail, :unit)"
        ),
        [{"at": when, "transport": d.transport[:8], "topic": _clean_text(d.topic, 1024),
          "payload": bytes(d.payload), "reason": d.reason[:48],
          "detail": _clean_text(d.detail, 1000), "unit": d.unit_id} for d in letters],
    )
