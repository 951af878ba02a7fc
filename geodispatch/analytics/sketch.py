"""Mergeable quantile sketches of the response intervals, pre-aggregated per day and per month.

What the console and the heatmap ask of ten million incidents (the p90 of an interval per H3 cell,
per zone, per hour of day, per day of week, filtered by category, priority and period) is
answered from ``response_sketches`` instead of sorting the incidents:

* **The sketch** is a histogram over fixed, logarithmically spaced buckets (the DDSketch
  mapping): bucket ``0`` holds values in [0, 1] s, bucket ``i >= 1`` holds (γ^(i-1), γ^i] with
  γ = (1 + α) / (1 - α) and α = :data:`ALPHA` = 1 %. Any bucket stands for 2γ^i / (γ + 1), which
  is within α of every value in it. Sketches merge by adding counts, so merging is exact: the
  merged sketch of many rows is the sketch of their union.
* **The error bound.** A quantile is read the way ``percentile_cont`` and pandas define it (linear
  interpolation between the order statistics at ``q (n - 1)``); each order statistic is read
  from its bucket, so the figure is within **α = 1 % relative** of the exact one (and within
  0.5 s for values under 1 s). The count and ``n`` are exact. ``within_target`` counts the
  buckets whose representative is at or under the target: only values within 2 % of the target
  can be counted on the wrong side.
* **The rows** are per (UTC day, dimension, key, region, category, priority, interval) and the
  same per UTC month (merged from the day rows), for dimensions :data:`DIMS` (H3 cells at
  resolutions 7, 8, 9; sector; local hour; local day of week) and the console's intervals
  :data:`SKETCHED_INTERVALS`. A period ``[start, end)`` is read as whole months from the month
  rows, the remaining whole days from the day rows and the partial days at its ends from
  ``response_intervals`` itself (bucketed here), so any period is answered.
* **Upkeep.** :func:`rebuild_sketches` rewrites the day rows of given days and the month rows of
  their months; :func:`~geodispatch.analytics.intervals.refresh_intervals` calls it for every
  day it touched (an import, or live incidents as they close).

Each sketch is stored sparse, as ``bytea`` of little-endian int64 ``bucket << 32 | count`` per
non-empty bucket, in bucket order (sketches concatenate with ``string_agg`` and decode with one
``np.frombuffer``). Building works one UTC month at a time: its interval rows come out by one
binary ``COPY``, are grouped in numpy (one ``np.unique`` per dimension and interval over a packed
code of the group and the bucket) and the rows go back by ``COPY``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import Date

from geodispatch.errors import InvalidInput

ALPHA = 0.01
"""Relative error bound of every quantile read from a sketch."""
GAMMA = (1 + ALPHA) / (1 - ALPHA)
LN_GAMMA = math.log(GAMMA)
N_BUCKETS = 600
"""Buckets 0..599 cover up to γ^599 (about 1.6e5 s; intervals end at a day, 86,400 s)."""

DIMS: dict[str, int] = {"h3_7": 7, "h3_8": 8, "h3_9": 9, "sector_id": 20, "hour": 21, "dow": 22}
"""Grouping columns of ``response_intervals`` with sketches, and their code in the table."""
SKETCHED_INTERVALS = ("total_response_s", "call_processing_s", "turnout_s", "travel_s")
"""Intervals with sketches (the console's); their code is their index here."""

_MASK = (1 << 32) - 1

FloatArray = npt.NDArray[np.float64]


def rowcount(result: Any) -> int:
    """Rows affected by a DML statement."""
    return int(getattr(result, "rowcount", 0) or 0)


def representative(buckets: npt.NDArray[np.int64]) -> FloatArray:
    """The value each bucket stands for (0.5 s for bucket 0)."""
    b = buckets.astype(np.float64)
    return np.where(buckets <= 0, 0.5, 2.0 * np.exp(b * LN_GAMMA) / (GAMMA + 1.0))


def bucket_of(values: FloatArray) -> npt.NDArray[np.int64]:
    """Bucket index of each value (non-negative seconds)."""
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.where(v <= 1.0, 0.0, np.ceil(np.log(np.maximum(v, 1.0)) / LN_GAMMA))
    return np.clip(b, 0, N_BUCKETS - 1).astype(np.int64)


def _month(d: date) -> date:
    return d.replace(day=1)


def _next_month(d: date) -> date:
    return (d.replace(day=28) + timedelta(days=4)).replace(day=1)


_EPOCH = date(2000, 1, 1)
_SENTINEL = -1
_COMBOS: tuple[tuple[str, int, int], ...] = tuple(
    (name, code, iv) for name, code in DIMS.items()
    for iv in ([0] if name.startswith("h3_") else range(len(SKETCHED_INTERVALS))))
"""(column, dim code, interval index) of every sketch kept."""


def _read_month(session: Session, lo: date, hi: date, regions: list[str],
                categories: list[str]) -> npt.NDArray[Any]:
    """The interval rows received in ``[lo, hi)`` (UTC days) as a structured array, read with
    one binary ``COPY`` whose every field has a fixed width (NULLs as -1, texts as codes)."""
    fields = [
        ("day", ">i4", f"(((received_at AT TIME ZONE 'UTC')::date - DATE '{_EPOCH}'))::int4"),
        ("region", ">i4", "array_position(%(regions)s, region::text)::int4"),
        ("category", ">i4", "array_position(%(categories)s, category::text)::int4"),
        ("priority", ">i4", "priority::int4"),
        ("h3_7", ">i8", "h3_7"), ("h3_8", ">i8", "h3_8"), ("h3_9", ">i8", "h3_9"),
        ("sector_id", ">i8", f"coalesce(sector_id, {_SENTINEL})::int8"),
        ("hour", ">i8", "hour::int8"), ("dow", ">i8", "dow::int8"),
    ] + [(iv, ">f8", f"coalesce({iv}, {_SENTINEL})::float8") for iv in SKETCHED_INTERVALS]
    dtype = np.dtype([("nf", ">i2")] + [x for name, kind, _ in fields
                                         for x in ((f"l_{name}", ">i4"), (name, kind))])
    sql = (f"COPY (SELECT {', '.join(expr for _, _, expr in fields)} FROM response_intervals "
           "WHERE received_at >= %(lo)s::timestamp AT TIME ZONE 'UTC' "
           "AND received_at < %(hi)s::timestamp AT TIME ZONE 'UTC') TO STDOUT (FORMAT binary)")
    raw = session.connection().connection.driver_connection
    assert raw is not None
    buf = bytearray()
    with raw.cursor() as cur, cur.copy(sql, {"regions": regions, "categories": categories,
                                             "lo": lo, "hi": hi}) as copy:
        for chunk in copy:
            buf += chunk
    body = bytes(buf[19:-2])  # signature, flags, extension length ... trailer
    return np.frombuffer(body, dtype=dtype)


def _group_rows(rows: npt.NDArray[Any], period: npt.NDArray[np.int64], column: str, iv: int,
                ) -> tuple[list[tuple[Any, ...]], bytes, list[int]]:
    """Sketch rows of one dimension and interval: one ``np.unique`` over a packed code of the
    group and the bucket. Returns ``(period, key, region, category, priority, incidents, n)``
    per row, the sketches of all rows as one buffer and each row's offsets into it."""
    values = rows[SKETCHED_INTERVALS[iv]].astype(np.float64)
    bucket = np.where(values < 0, N_BUCKETS, bucket_of(np.maximum(values, 0.0)))  # N = NULL
    key_codes, keys = _factorize(rows[column].astype(np.int64))
    p_min = int(period.min())
    parts = [(period - p_min, int(period.max()) - p_min + 1),
             (rows["region"].astype(np.int64), int(rows["region"].max()) + 1),
             (rows["category"].astype(np.int64), int(rows["category"].max()) + 1),
             (rows["priority"].astype(np.int64), int(rows["priority"].max()) + 1),
             (key_codes, len(keys)), (bucket.astype(np.int64), N_BUCKETS + 1)]
    width = 1
    for _arr, size in parts:
        width *= size
    if width >= 2**63:
        raise OverflowError("too many distinct groups to pack")  # pragma: no cover
    packed = np.zeros(rows.size, dtype=np.int64)
    for arr, size in parts:
        packed = packed * size + arr
    uniq, counts = np.unique(packed, return_counts=True)
    b = uniq % (N_BUCKETS + 1)
    group = uniq // (N_BUCKETS + 1)
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    real = b < N_BUCKETS
    totals = np.add.reduceat(counts, starts)
    ns = np.add.reduceat(np.where(real, counts, 0), starts)
    offsets = np.r_[0, np.cumsum(real)][np.r_[starts, uniq.size]]
    g = group[starts]
    fields = []
    for _arr, size in reversed(parts[:-1]):
        fields.append(g % size)
        g = g // size
    keyc, prio, cat, reg, per = fields
    key_values = keys[keyc]
    keys_out: list[Any] = key_values.tolist()
    if column == "sector_id":
        keys_out = [None if k == _SENTINEL else k for k in keys_out]
    meta = list(zip((per + p_min).tolist(), keys_out, reg.tolist(), cat.tolist(), prio.tolist(),
                    totals.tolist(), ns.tolist(), strict=True))
    blob = ((b[real] << 32) | counts[real]).astype("<i8").tobytes()
    return meta, blob, (offsets * 8).tolist()


def _factorize(values: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64],
                                                        npt.NDArray[np.int64]]:
    keys, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64), keys


def _write(session: Session, span: str, grouped: tuple[list[tuple[Any, ...]], bytes, list[int]],
           combo: tuple[str, int, int], regions: list[str], categories: list[str]) -> int:
    raw = session.connection().connection.driver_connection
    assert raw is not None
    _name, code, iv = combo
    meta, blob, offsets = grouped
    with raw.cursor() as cur, cur.copy(
            "COPY response_sketches (span, period, dim, key, region, category, priority, iv, "
            "incidents, n, sketch) FROM STDIN") as copy:
        for i, (per, key, reg, cat, prio, total, n) in enumerate(meta):
            day = _EPOCH + timedelta(days=per) if span == "d" else \
                date(2000 + per // 12, per % 12 + 1, 1)
            copy.write_row((span, day, code, key, regions[reg - 1], categories[cat - 1], prio, iv,
                            total, n, blob[offsets[i]:offsets[i + 1]]))
    return len(meta)


def _build_month(session: Session, month: date, days: set[date] | None, regions: list[str],
                 categories: list[str]) -> int:
    """Day rows (of ``days`` in the month, or all) and the month row of one UTC month."""
    rows = _read_month(session, month, _next_month(month), regions, categories)
    if rows.size == 0:
        return 0
    day = rows["day"].astype(np.int64)
    m_index = (month.year - 2000) * 12 + month.month - 1
    month_p = np.full(rows.size, m_index, dtype=np.int64)
    written = 0
    if days is None:
        day_sel = np.ones(rows.size, dtype=bool)
    else:
        wanted = np.array([(d - _EPOCH).days for d in days], dtype=np.int64)
        day_sel = np.isin(day, wanted)
    for combo in _COMBOS:
        column, _code, iv = combo
        if day_sel.any():
            sub = rows[day_sel]
            written += _write(session, "d", _group_rows(sub, day[day_sel], column, iv), combo,
                              regions, categories)
        written += _write(session, "m", _group_rows(rows, month_p, column, iv), combo,
                          regions, categories)
    return written


def rebuild_sketches(*, session: Session, days: Iterable[date] | None) -> int:
    """Rewrite the day rows of ``days`` (UTC dates) and the month rows of their months; all of
    them for ``None``. Returns the number of rows written.

    Works one UTC month at a time: the month's interval rows are read with one binary ``COPY``,
    grouped in numpy (one ``np.unique`` per dimension and interval over a packed code of the
    group and the bucket) and the sketches written back with ``COPY``.
    """
    session.flush()
    regions = [str(r) for r in session.execute(text(
        "SELECT DISTINCT region FROM response_intervals ORDER BY 1")).scalars()]
    categories = [str(c) for c in session.execute(text(
        "SELECT DISTINCT category FROM response_intervals ORDER BY 1")).scalars()]
    if days is None:
        session.execute(text("DELETE FROM response_sketches"))
        bounds = session.execute(text(
            "SELECT min(received_at AT TIME ZONE 'UTC')::date, "
            "max(received_at AT TIME ZONE 'UTC')::date FROM response_intervals")).one()
        if bounds[0] is None:
            return 0
        months, m = [], _month(bounds[0])
        while m <= bounds[1]:
            months.append(m)
            m = _next_month(m)
        return sum(_build_month(session, mo, None, regions, categories) for mo in months)
    day_list = sorted(set(days))
    if not day_list:
        return 0
    months = sorted({_month(d) for d in day_list})
    dates = bindparam("days", type_=ARRAY(Date))
    session.execute(text("DELETE FROM response_sketches WHERE span = 'd' AND period = ANY(:days)")
                    .bindparams(dates), {"days": day_list})
    session.execute(text("DELETE FROM response_sketches WHERE span = 'm' "
                         "AND period = ANY(:days)").bindparams(dates), {"days": months})
    return sum(_build_month(session, mo, {d for d in day_list if _month(d) == mo}, regions,
                            categories) for mo in months)


# --- reading --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SketchStats:
    """Figures per key (parallel arrays, sorted by key with None last); NaN where ``n == 0``."""

    keys: list[Any]
    count: npt.NDArray[np.int64]
    n: npt.NDArray[np.int64]
    median_s: FloatArray
    p90_s: FloatArray
    within_target: FloatArray

    def __len__(self) -> int:
        return len(self.keys)


def sketchable(by: list[str] | tuple[str, ...], interval: str) -> bool:
    """Whether ``aggregate(by=..., interval=...)`` can be answered from the sketches."""
    if len(by) != 1 or by[0] not in DIMS or interval not in SKETCHED_INTERVALS:
        return False
    return not (by[0].startswith("h3_") and interval != "total_response_s")


@dataclass(frozen=True)
class _Period:
    months: tuple[date | None, date | None] | None
    days: list[tuple[date | None, date | None]]
    edges: list[tuple[datetime | None, datetime | None]]


def _utc(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise InvalidInput("start and end need a time zone (e.g. 2017-01-01T00:00:00Z)")
    return ts.astimezone(UTC)


def split_period(start: datetime | None, end: datetime | None) -> _Period:
    """``[start, end)`` as whole UTC months, remaining whole UTC days and partial-day edges."""
    s = _utc(start) if start else None
    e = _utc(end) if end else None
    if s is not None and e is not None and e <= s:
        return _Period(None, [], [])
    d_lo = None if s is None else (s.date() if s.time() == time(0) else s.date() + timedelta(1))
    d_hi = None if e is None else e.date()
    if d_lo is not None and d_hi is not None and d_hi <= d_lo:
        return _Period(None, [], [(s, e)])
    edges: list[tuple[datetime | None, datetime | None]] = []
    if s is not None and d_lo is not None and s < datetime.combine(d_lo, time(0), UTC):
        edges.append((s, datetime.combine(d_lo, time(0), UTC)))
    if e is not None and d_hi is not None and datetime.combine(d_hi, time(0), UTC) < e:
        edges.append((datetime.combine(d_hi, time(0), UTC), e))
    m_lo = None if d_lo is None else (d_lo if d_lo.day == 1 else _next_month(d_lo))
    m_hi = None if d_hi is None else _month(d_hi)
    if m_lo is not None and m_hi is not None and m_hi <= m_lo:
        return _Period(None, [(d_lo, d_hi)], edges)
    days: list[tuple[date | None, date | None]] = []
    if d_lo is not None and m_lo is not None and d_lo < m_lo:
        days.append((d_lo, m_lo))
    if d_hi is not None and m_hi is not None and m_hi < d_hi:
        days.append((m_hi, d_hi))
    return _Period((m_lo, m_hi), days, edges)


def _filters(region: str | None, category: str | None, priority: int | None,
             params: dict[str, Any]) -> list[str]:
    where = []
    for col, value in (("region", region), ("category", category), ("priority", priority)):
        if value is not None:
            where.append(f"{col} = :{col}")
            params[col] = value
    return where


def sketch_stats(
    *, session: Session, dim: str, interval: str = "total_response_s",
    start: datetime | None = None, end: datetime | None = None, region: str | None = None,
    category: str | None = None, priority: int | None = None, target_s: float = 600.0,
) -> SketchStats:
    """Count, n, median, p90 and share within ``target_s`` of ``interval`` per ``dim`` key.

    The figures are within :data:`ALPHA` of the exact ones (see the module docstring); count and
    n are exact. Only ``sketchable([dim], interval)`` pairs.
    """
    if not sketchable([dim], interval):
        raise InvalidInput(f"no sketches of {interval} by {dim}")
    code, iv = DIMS[dim], SKETCHED_INTERVALS.index(interval)
    period = split_period(start, end)
    counts: dict[Any, int] = {}
    parts: dict[Any, list[bytes]] = {}
    raw: dict[Any, list[FloatArray]] = {}
    ranges = [("m", *period.months)] if period.months is not None else []
    ranges += [("d", lo, hi) for lo, hi in period.days]
    for span, lo, hi in ranges:
        params: dict[str, Any] = {"dim": code, "iv": iv, "span": span}
        where = ["dim = :dim", "iv = :iv", "span = :span"]
        if lo is not None:
            where.append("period >= :lo")
            params["lo"] = lo
        if hi is not None:
            where.append("period < :hi")
            params["hi"] = hi
        where += _filters(region, category, priority, params)
        sql = ("SELECT key, sum(incidents)::int8, string_agg(sketch, ''::bytea) "
               f"FROM response_sketches WHERE {' AND '.join(where)} GROUP BY key")
        for key, count, blob in session.execute(text(sql), params):
            counts[key] = counts.get(key, 0) + int(count)
            if blob:
                parts.setdefault(key, []).append(bytes(blob))
    for lo_ts, hi_ts in period.edges:
        params = {}
        where = ["TRUE"]
        if lo_ts is not None:
            where.append("received_at >= :lo")
            params["lo"] = lo_ts
        if hi_ts is not None:
            where.append("received_at < :hi")
            params["hi"] = hi_ts
        where += _filters(region, category, priority, params)
        sql = (f"SELECT {dim}, count(*), array_agg({interval}) FILTER (WHERE {interval} IS NOT "
               f"NULL) FROM response_intervals WHERE {' AND '.join(where)} GROUP BY {dim}")
        for key, count, values in session.execute(text(sql), params):
            counts[key] = counts.get(key, 0) + int(count)
            if values:
                raw.setdefault(key, []).append(np.asarray(values, dtype=np.float64))
    return _finish(counts, parts, raw, target_s)


def _histogram(parts: list[bytes], raw: list[FloatArray]) -> FloatArray:
    h = np.zeros(N_BUCKETS, dtype=np.float64)
    if parts:
        v = np.frombuffer(b"".join(parts), dtype="<i8").astype(np.int64)
        h += np.bincount(v >> 32, weights=(v & _MASK).astype(np.float64), minlength=N_BUCKETS)
    for values in raw:
        h += np.bincount(bucket_of(values), minlength=N_BUCKETS)
    return h


def quantiles(hist: FloatArray, qs: tuple[float, ...]) -> list[FloatArray]:
    """Quantiles (``percentile_cont``'s interpolation) of each row of a (keys, buckets) matrix of
    counts; NaN for an empty row."""
    cum = np.cumsum(hist, axis=1)
    n = cum[:, -1]
    reps = representative(np.arange(hist.shape[1], dtype=np.int64))
    out = []
    for q in qs:
        pos = q * np.maximum(n - 1, 0)
        k = np.floor(pos)
        lo_i = (cum < (k + 1)[:, None]).sum(axis=1)
        hi_i = (cum < np.minimum(k + 2, n)[:, None]).sum(axis=1)
        lo = reps[np.minimum(lo_i, hist.shape[1] - 1)]
        hi = reps[np.minimum(hi_i, hist.shape[1] - 1)]
        val = lo + (pos - k) * (hi - lo)
        out.append(np.where(n > 0, val, np.nan))
    return out


def _finish(counts: dict[Any, int], parts: dict[Any, list[bytes]],
            raw: dict[Any, list[FloatArray]], target_s: float) -> SketchStats:
    keys = sorted(counts, key=lambda k: (k is None, k if k is not None else 0))
    hist = np.zeros((len(keys), N_BUCKETS), dtype=np.float64)
    for i, key in enumerate(keys):
        if key in parts or key in raw:
            hist[i] = _histogram(parts.get(key, []), raw.get(key, []))
    n = hist.sum(axis=1)
    med, p90 = quantiles(hist, (0.5, 0.9)) if keys else (np.zeros(0), np.zeros(0))
    reps = representative(np.arange(N_BUCKETS, dtype=np.int64))
    with np.errstate(invalid="ignore", divide="ignore"):
        within = np.where(n > 0, hist[:, reps <= target_s].sum(axis=1) / n, np.nan)
    return SketchStats(keys=keys, count=np.array([counts[k] for k in keys], dtype=np.int64),
                       n=np.rint(n).astype(np.int64), median_s=med, p90_s=p90,
                       within_target=within)


__all__ = ["ALPHA", "DIMS", "GAMMA", "N_BUCKETS", "SKETCHED_INTERVALS", "SketchStats",
           "bucket_of", "quantiles", "rebuild_sketches", "representative", "sketch_stats",
           "sketchable", "split_period"]
