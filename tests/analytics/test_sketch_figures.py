"""The sketched figures (heatmap cells, zone table, hour and weekday charts) against pandas on
the imported rows, with every filter: category, priority, period (whole months, whole days and
partial days); within the documented error bound, counts exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.analytics.aggregates import aggregate, cell_stats
from geodispatch.analytics.importer import ImportResult
from geodispatch.analytics.intervals import refresh_intervals
from geodispatch.analytics.sketch import ALPHA, SKETCHED_INTERVALS, split_period
from tests.analytics.conftest import SF_REGION
from tests.analytics.factories import make_assignment, make_incident


def _rows(db: Session, region: str) -> pd.DataFrame:
    rows = db.execute(text(
        "SELECT received_at, category, priority, sector_id, h3_8, hour, dow, "
        f"{', '.join(SKETCHED_INTERVALS)} FROM response_intervals WHERE region = :r"),
        {"r": region}).mappings().all()
    df = pd.DataFrame([dict(r) for r in rows])
    df["sector_id"] = df["sector_id"].astype("Int64")
    return df


def _check(db: Session, df: pd.DataFrame, *, region: str, by: str, interval: str,
           **filters: object) -> int:
    sel = df
    start, end = filters.pop("start", None), filters.pop("end", None)
    if start is not None:
        sel = sel[sel["received_at"] >= start]
    if end is not None:
        sel = sel[sel["received_at"] < end]
    for col, value in filters.items():
        sel = sel[sel[col] == value]
    got = aggregate(session=db, by=[by], interval=interval, region=region, start=start, end=end,
                    **filters)  # type: ignore[arg-type]
    g = sel.groupby(by, dropna=False)[interval]
    want = pd.DataFrame({"count": g.size(), "n": g.count(), "median": g.median(),
                         "p90": g.quantile(0.9)})
    key = (lambda k: int(k, 16)) if by.startswith("h3_") else (lambda k: k)
    have = {(pd.NA if r.key[by] is None else key(r.key[by])): r for r in got}
    assert len(have) == len(want)
    for k, w in want.iterrows():
        r = have[pd.NA if pd.isna(k) else k]
        assert (r.count, r.n) == (w["count"], w["n"])
        for ours, exact in ((r.median_s, w["median"]), (r.p90_s, w["p90"])):
            if pd.isna(exact):
                assert ours is None
            else:
                assert ours is not None and abs(ours - exact) <= ALPHA * exact + 0.5 + 1e-6
    return len(want)


@pytest.mark.parametrize("by", ["h3_8", "sector_id", "hour", "dow"])
def test_figures_match_pandas_with_filters(sf_imported: ImportResult, db: Session,
                                           by: str) -> None:
    """Every sketched dimension and interval, unfiltered and by category, priority, period."""
    df = _rows(db, SF_REGION)
    top_category = str(df["category"].mode()[0])
    intervals = ["total_response_s"] if by.startswith("h3_") else list(SKETCHED_INTERVALS)
    for interval in intervals:
        assert _check(db, df, region=SF_REGION, by=by, interval=interval) > 0
        assert _check(db, df, region=SF_REGION, by=by, interval=interval,
                      category=top_category) > 0
        assert _check(db, df, region=SF_REGION, by=by, interval=interval, priority=1) > 0
        assert _check(db, df, region=SF_REGION, by=by, interval=interval, priority=2,
                      start=datetime(2017, 1, 1, 13, 17, tzinfo=UTC),
                      end=datetime(2017, 1, 4, 8, 5, 30, tzinfo=UTC)) > 0


def test_cell_stats_filters_by_category_and_priority(sf_imported: ImportResult,
                                                     db: Session) -> None:
    """The heatmap's cells of one priority hold only that priority's incidents."""
    df = _rows(db, SF_REGION)
    for pri in (1, 2):
        st = cell_stats(session=db, res=8, region=SF_REGION, priority=pri)
        assert int(st.count.sum()) == int((df["priority"] == pri).sum()) > 0
    cat = str(df["category"].mode()[0])
    st = cell_stats(session=db, res=8, region=SF_REGION, category=cat)
    assert int(st.count.sum()) == int((df["category"] == cat).sum())
    assert len(cell_stats(session=db, res=8, region=SF_REGION, category="no such")) == 0


def test_split_period() -> None:
    """A period is whole months, the days around them and the partial days at its ends."""
    p = split_period(datetime(2016, 11, 20, 6, tzinfo=UTC), datetime(2017, 2, 3, 12, tzinfo=UTC))
    d = datetime(2016, 1, 1).date
    assert p.months == (d().replace(2016, 12, 1), d().replace(2017, 2, 1))
    assert p.days == [(d().replace(2016, 11, 21), d().replace(2016, 12, 1)),
                      (d().replace(2017, 2, 1), d().replace(2017, 2, 3))]
    assert p.edges == [(datetime(2016, 11, 20, 6, tzinfo=UTC), datetime(2016, 11, 21, tzinfo=UTC)),
                       (datetime(2017, 2, 3, tzinfo=UTC), datetime(2017, 2, 3, 12, tzinfo=UTC))]
    whole = split_period(None, None)
    assert (whole.months, whole.days, whole.edges) == ((None, None), [], [])


def test_months_days_and_edges_together(db: Session) -> None:
    """Incidents over four months: a period of whole months plus days plus partial days reads
    month rows, day rows and interval rows, and still matches pandas."""
    rng = np.random.default_rng(5)
    t0 = datetime(2016, 10, 25, tzinfo=UTC)
    for i in range(160):
        received = t0 + timedelta(hours=float(rng.uniform(0, 24 * 110)))
        inc = make_incident(db, received=received, region="TSK", priority=1 + i % 3)
        make_assignment(db, inc, dispatched_after_s=float(rng.uniform(20, 90)),
                        en_route_after_s=float(rng.uniform(100, 150)),
                        on_scene_after_s=float(rng.lognormal(6, 0.5)) + 200)
    refresh_intervals(session=db, since=t0)
    df = _rows(db, "TSK")
    start, end = datetime(2016, 11, 3, 7, tzinfo=UTC), datetime(2017, 1, 29, 17, tzinfo=UTC)
    months = db.execute(text("SELECT count(*) FROM response_sketches WHERE region = 'TSK' "
                             "AND span = 'm'")).scalar_one()
    assert months > 0
    for interval in SKETCHED_INTERVALS:
        for by in ("hour", "dow", "sector_id"):
            assert _check(db, df, region="TSK", by=by, interval=interval, start=start,
                          end=end) > 0
            assert _check(db, df, region="TSK", by=by, interval=interval, priority=2) > 0
    assert _check(db, df, region="TSK", by="h3_8", interval="total_response_s", start=start,
                  end=end) == 1
