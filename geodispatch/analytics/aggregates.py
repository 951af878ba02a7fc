"""Response-time aggregates: count, median, 90th percentile and share within a target.

Quantiles are defined as PostgreSQL's ``percentile_cont`` and numpy's/pandas' default quantile
(linear interpolation between order statistics). Two paths:

* **sketches** (:mod:`geodispatch.analytics.sketch`): the heatmap, the per-zone table and the
  hour / weekday charts (:func:`cell_stats`, and :func:`aggregate` grouped by one of an H3
  resolution, ``sector_id``, ``hour`` or ``dow`` for the console's intervals) merge
  pre-aggregated log-bucket histograms per day and month: any period, category and priority in
  well under a second at ten million incidents, every quantile within
  :data:`~geodispatch.analytics.sketch.ALPHA` (1 %) of the exact figure, counts exact;
* **exact** SQL ``GROUP BY ... percentile_cont`` over ``response_intervals`` for every other
  grouping or interval, or when ``exact=True`` is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.analytics.intervals import RESOLUTIONS
from geodispatch.analytics.sketch import sketch_stats, sketchable
from geodispatch.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]

INTERVALS = (
    "registration_s", "queue_s", "call_processing_s", "turnout_s", "travel_s",
    "total_response_s", "on_scene_s",
)
"""Interval columns of ``response_intervals`` that can be aggregated."""

DIMENSIONS = ("h3_7", "h3_8", "h3_9", "sector_id", "hour", "dow", "category", "priority", "region")
"""Columns of ``response_intervals`` that can be grouped by."""



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


def _check_res(res: int) -> str:
    if res not in RESOLUTIONS:
        raise InvalidInput(f"H3 resolution must be one of {RESOLUTIONS}, not {res}")
    return f"h3_{res}"


def cell_stats(
    *,
    session: Session,
    res: int = 8,
    start: datetime | None = None,
    end: datetime | None = None,
    region: str | None = None,
    category: str | None = None,
    priority: int | None = None,
    target_s: float = 600.0,
) -> CellStats:
    """Count, median, p90 and share within ``target_s`` of total response per H3 cell.

    Read from the quantile sketches (:mod:`geodispatch.analytics.sketch`): the median and p90
    are within 1 % of the exact figures, ``count`` and ``n`` are exact.

    Parameters
    ----------
    session : Session
        Any session (read only).
    res : int
        H3 resolution, one of 7, 8, 9.
    start, end : datetime, optional
        Period ``[start, end)`` of ``received_at`` (timezone-aware); open when None.
    region, category, priority : optional
        Only these incidents.
    target_s : float
        Target for ``within_target`` (share of incidents with a response at or under it).

    Returns
    -------
    CellStats
        One entry per cell with at least one incident in the period.
    """
    col = _check_res(res)
    st = sketch_stats(session=session, dim=col, interval="total_response_s", start=start,
                      end=end, region=region, category=category, priority=priority,
                      target_s=target_s)
    return CellStats(res=res, cells=np.array(st.keys, dtype=np.int64), count=st.count, n=st.n,
                     median_s=st.median_s, p90_s=st.p90_s, within_target=st.within_target,
                     target_s=target_s)


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
    exact: bool = False,
) -> list[GroupStat]:
    """Figures of one interval grouped by any of :data:`DIMENSIONS`.

    Grouped by one sketched dimension (an H3 resolution for total response; ``sector_id``,
    ``hour``, ``dow`` for the console's intervals) the figures come from the quantile sketches
    (within 1 %, counts exact) unless ``exact``; otherwise from one SQL statement.

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
    exact : bool
        Always ``percentile_cont`` over the interval rows.

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
    if not exact and sketchable(list(by), interval):
        return _from_sketches(session, by[0], interval, start, end, region, category, priority,
                              target_s)
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


def _from_sketches(session: Session, dim: str, interval: str, start: datetime | None,
                   end: datetime | None, region: str | None, category: str | None,
                   priority: int | None, target_s: float) -> list[GroupStat]:
    st = sketch_stats(session=session, dim=dim, interval=interval, start=start, end=end,
                      region=region, category=category, priority=priority, target_s=target_s)

    def num(x: float) -> float | None:
        return None if math.isnan(x) else float(x)

    out = []
    for i, key in enumerate(st.keys):
        if int(st.count[i]) == 0:
            continue
        k = format(int(key), "x") if dim.startswith("h3_") else key
        out.append(GroupStat(key={dim: k}, count=int(st.count[i]), n=int(st.n[i]),
                             median_s=num(st.median_s[i]), p90_s=num(st.p90_s[i]),
                             within_target=num(st.within_target[i])))
    return out
