"""Import of the real SF calls-for-service file: mapping, idempotency, cell figures vs pandas."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.analytics.aggregates import aggregate, cell_stats
from geodispatch.analytics.importer import ImportResult, import_sf_calls, parse_location
from geodispatch.analytics.sketch import ALPHA
from geodispatch.errors import InvalidInput
from tests.analytics.conftest import SF_REGION, SF_TZ


def _pandas_cells(path: Path, start: str | None = None, end: str | None = None) -> pd.DataFrame:
    """Independent computation: total response (received -> first on scene) per res-8 cell."""
    raw = pd.read_csv(path)
    fmt = "%m/%d/%Y %I:%M:%S %p"
    raw["received"] = pd.to_datetime(raw["Received DtTm"], format=fmt)
    raw["on_scene"] = pd.to_datetime(raw["On Scene DtTm"], format=fmt)
    calls = raw.groupby("Call Number").agg(
        received=("received", "min"), on_scene=("on_scene", "min"), loc=("Location", "first"))
    calls["received"] = calls["received"].dt.tz_localize(SF_TZ).dt.tz_convert("UTC")
    if start is not None:
        calls = calls[calls["received"] >= pd.Timestamp(start)]
    if end is not None:
        calls = calls[calls["received"] < pd.Timestamp(end)]
    total = (calls["on_scene"].dt.tz_localize(SF_TZ).dt.tz_convert("UTC")
             - calls["received"]).dt.total_seconds()
    calls["total"] = total.where(total >= 0)
    latlng = calls["loc"].str.extract(r"\(([-\d.]+),\s*([-\d.]+)\)").astype(float)
    calls["cell"] = [h3.str_to_int(h3.latlng_to_cell(a, b, 8))
                     for a, b in zip(latlng[0], latlng[1], strict=True)]
    g = calls.groupby("cell")["total"]
    return pd.DataFrame({"count": g.size(), "n": g.count(), "median": g.median(),
                         "p90": g.quantile(0.9)})


def within_bound(got: pd.Series, expected: pd.Series) -> None:
    """Sketch figures: NaN where pandas has NaN, else within ALPHA relative (0.5 s absolute)."""
    g, e = got.to_numpy(dtype=float), expected.to_numpy(dtype=float)
    assert (np.isnan(g) == np.isnan(e)).all()
    ok = ~np.isnan(e)
    err = np.abs(g[ok] - e[ok])
    assert (err <= ALPHA * np.abs(e[ok]) + 0.5 + 1e-6).all(), float(err.max())


def test_parse_location() -> None:
    """The "(lat, lon)" column parses latitude first; junk and the null fix give None."""
    p = parse_location("(37.745858648581, -122.456664252061)")
    assert p is not None and (p.lat, p.lng) == (37.745858648581, -122.456664252061)
    assert parse_location("(0, 0)") is None
    assert parse_location("nowhere") is None


def test_rejects_other_csv_files(db: Session, tmp_path: Path) -> None:
    """A CSV without the SF columns is refused with the missing columns named."""
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(InvalidInput, match="Call Number"):
        import_sf_calls(session=db, path=other)


def test_import_maps_rows_to_incidents_and_assignments(
    db: Session, sf_imported: ImportResult
) -> None:
    """3,560 calls become incidents; 7,704 unit rows become assignments of inactive crews."""
    assert (sf_imported.calls, sf_imported.rows, sf_imported.skipped_rows) == (3560, 7704, 0)
    assert sf_imported.new_incidents == 3560
    assert sf_imported.new_assignments == 7704
    n_inc, n_asg = db.execute(text(
        "SELECT count(DISTINCT i.id), count(a.id) FROM incidents i JOIN assignments a "
        "ON a.incident_id = i.id WHERE i.region = :r AND i.source = 'import'"),
        {"r": SF_REGION}).one()
    assert (n_inc, n_asg) == (3560, 7704)
    active = db.execute(text("SELECT count(*) FROM units WHERE region = :r AND active"),
                        {"r": SF_REGION}).scalar_one()
    assert active == 0
    # Call 163664050: received 23:57:56 PST -> 07:57:56 UTC; E39 on scene 00:04:18.
    row = db.execute(text(
        "SELECT i.received_at, r.total_response_s, r.hour FROM incidents i "
        "JOIN response_intervals r ON r.incident_id = i.id "
        "WHERE i.region = :r AND i.external_ref = '163664050'"), {"r": SF_REGION}).one()
    assert row[0] == datetime(2017, 1, 1, 7, 57, 56, tzinfo=UTC)
    assert row[1] == 6 * 60 + 22
    assert row[2] == 23


def test_reimport_is_idempotent(
    db: Session, sf_imported: ImportResult, sf_calls_file: Path
) -> None:
    """Importing the same file again inserts nothing."""
    again = import_sf_calls(session=db, path=sf_calls_file, region=SF_REGION, tz=SF_TZ)
    assert (again.new_incidents, again.new_assignments, again.new_units) == (0, 0, 0)


def test_cell_figures_match_pandas(
    sf_imported: ImportResult, db: Session, sf_calls_file: Path
) -> None:
    """Count and n of total response per res-8 cell equal an independent pandas run; median and
    p90 (read from the quantile sketches) are within the documented bound of pandas'."""
    expected = _pandas_cells(sf_calls_file)
    stats = cell_stats(session=db, res=8, region=SF_REGION)
    got = pd.DataFrame({"count": stats.count, "n": stats.n, "median": stats.median_s,
                        "p90": stats.p90_s}, index=stats.cells)
    assert len(got) == len(expected) > 100
    got = got.loc[expected.index]
    assert (got["count"].to_numpy() == expected["count"].to_numpy()).all()
    assert (got["n"].to_numpy() == expected["n"].to_numpy()).all()
    within_bound(got["median"], expected["median"])
    within_bound(got["p90"], expected["p90"])


@pytest.mark.parametrize(
    ("start", "end"),
    [("2017-01-02T00:00:00Z", "2017-01-05T00:00:00Z"),  # whole days only
     ("2017-01-01T13:17:00Z", "2017-01-04T08:05:30Z"),  # partial days at both ends
     ("2017-01-03T02:00:00Z", "2017-01-03T20:00:00Z")],  # inside one day
)
def test_cell_figures_for_a_period_match_pandas(
    sf_imported: ImportResult, db: Session, sf_calls_file: Path, start: str, end: str
) -> None:
    """Any [start, end): whole days from the day sketches, edges from the interval rows."""
    expected = _pandas_cells(sf_calls_file, start, end)
    stats = cell_stats(session=db, res=8, region=SF_REGION,
                       start=datetime.fromisoformat(start), end=datetime.fromisoformat(end))
    assert sorted(stats.cells.tolist()) == sorted(expected.index.tolist())
    got = pd.DataFrame({"count": stats.count, "median": stats.median_s, "p90": stats.p90_s},
                       index=stats.cells).loc[expected.index]
    assert (got["count"].to_numpy() == expected["count"].to_numpy()).all()
    within_bound(got["median"], expected["median"])
    within_bound(got["p90"], expected["p90"])


def test_sql_aggregate_agrees_with_fast_path(sf_imported: ImportResult, db: Session) -> None:
    """The exact GROUP BY percentile_cont path and the sketches agree within the bound; the share
    within target differs by at most the responses within 2 alpha of the target."""
    stats = cell_stats(session=db, res=8, region=SF_REGION, target_s=480)
    fast = {r["cell"]: r for r in stats.rows()}
    near = {format(c, "x"): int(k) for c, k in db.execute(text(
        "SELECT h3_8, count(*) FROM response_intervals WHERE region = :r AND total_response_s "
        "BETWEEN :lo AND :hi GROUP BY h3_8"),
        {"r": SF_REGION, "lo": 480 / (1 + 2 * ALPHA), "hi": 480 * (1 + 2 * ALPHA)})}
    exact = aggregate(session=db, by=["h3_8"], region=SF_REGION, target_s=480, exact=True)
    assert len(exact) == len(fast) > 100
    for g in exact:
        f = fast[g.key["h3_8"]]
        assert f["count"] == g.count and f["n"] == g.n
        if g.n:
            assert g.p90_s is not None and g.within_target is not None
            assert abs(f["p90_s"] - g.p90_s) <= ALPHA * g.p90_s + 0.5 + 1e-3
            assert abs(f["within_target"] - g.within_target) <= near.get(g.key["h3_8"], 0) / g.n \
                + 1e-3


def test_report_by_hour_and_category(sf_imported: ImportResult, db: Session) -> None:
    """Aggregates by local hour cover all 24 hours; medians are a plausible few minutes."""
    by_hour = aggregate(session=db, by=["hour"], region=SF_REGION)
    assert [g.key["hour"] for g in by_hour] == list(range(24))
    overall = aggregate(session=db, by=[], region=SF_REGION)[0]
    assert overall.count == 3560
    assert overall.median_s is not None and 5 * 60 < overall.median_s < 10 * 60
    assert re.fullmatch(r"[0-9a-f]{15}", aggregate(session=db, by=["h3_9"],
                                                    region=SF_REGION)[0].key["h3_9"])
