"""Response-time aggregates: count, median, 90th percentile and share within a target.

Two paths, both exact (linear interpolation between order statistics, the definition of
PostgreSQL's ``percentile_cont`` and numpy's/pandas' default quantile):

* :func:`aggregate` groups ``response_intervals`` by any of :data:`DIMENSIONS` with one SQL
  ``GROUP BY ... percentile_cont`` (any interval, any grouping);
* :func:`cell_stats` answers the heatmap question (total response per H3 cell over a period)
  from ``response_cell_days``: whole UTC days come pre-sorted per cell, so the server only
  concatenates short arrays (``string_agg`` of their binary form, one value per incident) and
  numpy selects two order statistics per cell with ``np.partition`` (linear time) instead of
  sorting every row. The partial days at either end of the period are read from the interval
  rows themselves, so any ``[start, end)`` is exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.analytics.intervals import RESOLUTIONS
from geodispatch.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]

INTERVALS = (
    "registration_s", "queue_s", "call_processing_s", "turnout_s", "travel_s",
    "total_response_s", "on_scene_s",
)
"""Interval columns of ``response_intervals`` that can be aggregated."""

DIMENSIONS = ("h3_7", "h3_8", "h3_9", "sector_id", "hour", "dow", "category", "priority", "region")
"""Columns of ``response_intervals`` that can be grouped by."""

# A big-endian PostgreSQL binary array element: int32 length (always 8) + float8.
_PG_FLOAT8_ELEMENT = np.dtype([("len", ">i4"), ("v", ">f8")])
_PG_ARRAY_HEADER = 20  # ndim, has-null flag, element type, then (size, lower bound) of 1 dim


@dataclass(frozen=True)
class GroupStat:
    """One group's figures; ``n`` counts incidents that have the interval, ``count`` all."""

    key: dict[str, Any]
    count: int
    n: int
    median_s: float | None
    p90_s: float | None
    within_target: float | None

    def as_dict(self) -> dict[str, Any]:
        return {**self.key, "count": self.count, "n": self.n, "median_s": self.median_s,
                "p90_s": self.p90_s, "within_target": self.within_target}


@dataclass(frozen=True)
class CellStats:
    """Per-cell total response figures, parallel arrays sorted by cell (NaN where n == 0)."""

    res: int
    cells: npt.NDArray[np.int64]
    count: npt.NDArray[np.int64]
    n: npt.NDArray[np.int64]
    median_s: FloatArray
    p90_s: FloatArray
    within_target: FloatArray
    target_s: float

    def __len__(self) -> int:
        return int(self.cells.size)

    def rows(self) -> list[dict[str, Any]]:
        """JSON-friendly rows (``cell`` as the usual hex string)."""

        def num(x: float) -> float | None:
            return None if math.isnan(x) else round(float(x), 3)

        return [
            {"cell": format(int(c), "x"), "count": int(k), "n": int(m), "median_s": num(a),
             "p90_s": num(b), "within_target": num(w)}
            for c, k, m, a, b, w in zip(self.cells, self.count, self.n, self.median_s, self.p90_s,
                                         self.within_target, strict=True)
        ]


def quantile_sorted_free(values: FloatArray, q: float) -> float:
    """Exact ``q``-quantile (linear interpolation) of unsorted values in linear time.

    Parameters
    ----------
    values : ndarray
        Non-empty float array; it is partially reordered in place.
    q : float
        Quantile in [0, 1].

    Returns
    -------
    float
        ``v[k] + (pos - k) * (v[k+1] - v[k])`` with ``pos = q * (n - 1)``, ``k = floor(pos)`` and
        ``v`` the sorted values: the same number as ``percentile_cont(q)``.
    """
    n = values.size
    pos = q * (n - 1)
    k = int(math.floor(pos))
    if k + 1 >= n:
        values.partition(n - 1)
        return float(values[n - 1])
    values.partition((k, k + 1))
    lo, hi = float(values[k]), float(values[k + 1])
    return lo + (pos - k) * (hi - lo)


def _check_res(res: int) -> str:
    if res not in RESOLUTIONS:
        raise InvalidInput(f"H3 resolution must be one of {RESOLUTIONS}, not {res}")
    return f"h3_{res}"


def _utc(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise InvalidInput("start and end need a time zone (e.g. 2017-01-01T00:00:00Z)")
    return ts.astimezone(UTC)


def _split_period(
    start: datetime | None, end: datetime | None
) -> tuple[tuple[date | None, date | None] | None, list[tuple[datetime | None, datetime | None]]]:
    """Split ``[start, end)`` into whole UTC days ``[day_lo, day_hi)`` and partial pieces.

    Returns ``(None, [(start, end)])`` when the period contains no whole day.
    """
    s = _utc(start) if start else None
    e = _utc(end) if end else None
    if s is not None and e is not None and e <= s:
        return None, []
    day_lo = None if s is None else (s.date() if s.time() == time(0) else s.date() + timedelta(1))
    day_hi = None if e is None else e.date()
    if day_lo is not None and day_hi is not None and day_hi <= day_lo:
        return None, [(s, e)]
    edges: list[tuple[datetime | None, datetime | None]] = []
    if s is not None and day_lo is not None:
        lo_ts = datetime.combine(day_lo, time(0), UTC)
        if s < lo_ts:
            edges.append((s, lo_ts))
    if e is not None and day_hi is not None:
        hi_ts = datetime.combine(day_hi, time(0), UTC)
        if hi_ts < e:
            edges.append((hi_ts, e))
    return (day_lo, day_hi), edges


def cell_stats(
    *,
    session: Session,
    res: int = 8,
    start: datetime | None = None,
    end: datetime | None = None,
    region: str | None = None,
    target_s: float = 600.0,
) -> CellStats:
    """Count, median, p90 and share within ``target_s`` of total response per H3 cell.

    Parameters
    ----------
    session : Session
        Any session (read only).
    res : int
        H3 resolution, one of 7, 8, 9.
    start, end : datetime, optional
        Period ``[start, end)`` of ``received_at`` (timezone-aware); open when None.
    region : str, optional
        Only this region's incidents.
    target_s : float
        Target for ``within_target`` (share of incidents with a response at or under it).

    Returns
    -------
    CellStats
        One entry per cell with at least one incident in the period.
    """
    _check_res(res)
    whole, edges = _split_period(start, end)
    pieces: dict[int, list[bytes | FloatArray]] = {}
    counts: dict[int, int] = {}
    if whole is not None:
        day_lo, day_hi = whole
        where = ["res = :res"]
        params: dict[str, Any] = {"res": res}
        if day_lo is not None:
            where.append("day >= :lo")
            params["lo"] = day_lo
        if day_hi is not None:
            where.append("day < :hi")
            params["hi"] = day_hi
        if region is not None:
            where.append("region = :region")
            params["region"] = region
        sql = (
            "SELECT cell, sum(incidents)::bigint, "
            f"string_agg(substr(array_send(total_response_s), {_PG_ARRAY_HEADER + 1}), ''::bytea) "
            f"FROM response_cell_days WHERE {' AND '.join(where)} GROUP BY cell"
        )
        for cell, count, blob in session.execute(text(sql), params):
            counts[cell] = counts.get(cell, 0) + int(count)
            if blob:
                pieces.setdefault(cell, []).append(bytes(blob))
    for lo, hi in edges:
        _add_raw(session, f"h3_{res}", lo, hi, region, counts, pieces)
    return _finish(res, counts, pieces, target_s)


def _add_raw(
    session: Session, col: str, lo: datetime | None, hi: datetime | None, region: str | None,
    counts: dict[int, int], pieces: dict[int, list[bytes | FloatArray]],
) -> None:
    where, params = ["TRUE"], dict[str, Any]()
    if lo is not None:
        where.append("received_at >= :lo")
        params["lo"] = lo
    if hi is not None:
        where.append("received_at < :hi")
        params["hi"] = hi
    if region is not None:
        where.append("region = :region")
        params["region"] = region
    sql = (
        f"SELECT {col}, count(*), array_agg(total_response_s) FILTER "
        f"(WHERE total_response_s IS NOT NULL) FROM response_intervals "
        f"WHERE {' AND '.join(where)} GROUP BY {col}"
    )
    for cell, count, values in session.execute(text(sql), params):
        counts[cell] = counts.get(cell, 0) + int(count)
        if values:
            pieces.setdefault(cell, []).append(np.asarray(values, dtype=np.float64))


def _finish(
    res: int, counts: dict[int, int], pieces: dict[int, list[bytes | FloatArray]], target_s: float
) -> CellStats:
    cells = np.array(sorted(counts), dtype=np.int64)
    m = cells.size
    n = np.zeros(m, dtype=np.int64)
    med = np.full(m, np.nan)
    p90 = np.full(m, np.nan)
    within = np.full(m, np.nan)
    for i, cell in enumerate(cells.tolist()):
        parts = pieces.get(cell)
        if not parts:
            continue
        arrays = [
            np.frombuffer(p, dtype=_PG_FLOAT8_ELEMENT)["v"] if isinstance(p, bytes) else p
            for p in parts
        ]
        v = np.concatenate(arrays).astype(np.float64)  # native byte order, owned copy
        n[i] = v.size
        within[i] = np.count_nonzero(v <= target_s) / v.size
        med[i] = quantile_sorted_free(v, 0.5)
        p90[i] = quantile_sorted_free(v, 0.9)
    count = np.array([counts[c] for c in cells.tolist()], dtype=np.int64)
    return CellStats(res=res, cells=cells, count=count, n=n, median_s=med, p90_s=p90,
                     within_target=within, target_s=target_s)


def aggregate(
    *,
    session: Session,
    by: Sequence[str],
    interval: str = "total_response_s",
    start: datetime | None = None,
    end: datetime | None = None,
    region: str | None = None,
    category: str | None = None,
    priority: int | None = None,
    target_s: float = 600.0,
) -> list[GroupStat]:
    """Figures of one interval grouped by any of :data:`DIMENSIONS` (one SQL statement).

    Parameters
    ----------
    session : Session
        Any session (read only).
    by : sequence of str
        Grouping columns (may be empty: one overall group).
    interval : str
        One of :data:`INTERVALS`.
    start, end : datetime, optional
        Period ``[start, end)`` of ``received_at``.
    region, category, priority : optional
        Filters.
    target_s : float
        Target of the ``within_target`` share.

    Returns
    -------
    list of GroupStat
        Ordered by the grouping columns.
    """
    if interval not in INTERVALS:
        raise InvalidInput(f"unknown interval {interval!r}; one of {INTERVALS}")
    bad = [b for b in by if b not in DIMENSIONS]
    if bad:
        raise InvalidInput(f"cannot group by {bad}; choose from {DIMENSIONS}")
    where, params = ["TRUE"], dict[str, Any](target=target_s)
    for col, value, op in (("received_at", start, ">="), ("received_at", end, "<"),
                           ("region", region, "="), ("category", category, "="),
                           ("priority", priority, "=")):
        if value is not None:
            name = f"p{len(params)}"
            where.append(f"{col} {op} :{name}")
            params[name] = value
    keys = ", ".join(by)
    select_keys = f"{keys}, " if by else ""
    group = f"GROUP BY {keys} ORDER BY {keys}" if by else ""
    sql = (
        f"SELECT {select_keys}count(*), count({interval}), "
        f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {interval}), "
        f"percentile_cont(0.9) WITHIN GROUP (ORDER BY {interval}), "
        f"avg(({interval} <= :target)::int) "
        f"FROM response_intervals WHERE {' AND '.join(where)} {group}"
    )
    out = []
    for row in session.execute(text(sql), params):
        k = len(by)
        key = {b: (format(row[j], "x") if b.startswith("h3_") else row[j])
               for j, b in enumerate(by)}
        count, n, med, p90, within = row[k:]
        if count == 0:
            continue
        out.append(GroupStat(key=key, count=int(count), n=int(n),
                             median_s=None if med is None else float(med),
                             p90_s=None if p90 is None else float(p90),
                             within_target=None if within is None else float(within)))
    return out
