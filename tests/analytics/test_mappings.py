"""Column mappings: the shipped ones load, each imports a file in its format, figures vs pandas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.analytics.aggregates import aggregate
from geodispatch.analytics.importer import ImportResult, import_calls
from geodispatch.analytics.intervals import refresh_intervals
from geodispatch.analytics.mapping import builtin_mappings, load_mapping, parse_mapping
from geodispatch.errors import InvalidInput
from geodispatch.incidents.classification import load_classification

FIXTURES = Path(__file__).with_name("fixtures")
SEATTLE = FIXTURES / "seattle_call_data.csv"
NOLA = FIXTURES / "new_orleans_calls_2019.csv"


def _expected_totals(path: Path, call: str, received: str, on_scene: str, tz: str,
                     null_values: list[str]) -> pd.Series:
    """Independent pandas computation of received -> on scene per call (the file's first row)."""
    raw = pd.read_csv(path, dtype=str, na_values=null_values).drop_duplicates(call)
    fmt = "%m/%d/%Y %I:%M:%S %p"
    rec = pd.to_datetime(raw[received], format=fmt, errors="coerce").dt.tz_localize(tz)
    arr = pd.to_datetime(raw[on_scene], format=fmt, errors="coerce").dt.tz_localize(tz)
    total = (arr - rec).dt.total_seconds()
    return pd.Series(total.where((total >= 0) & (total <= 86400)).to_numpy(),
                     index=raw[call].to_numpy())


def _imported_totals(db: Session, region: str) -> pd.Series:
    rows = db.execute(text(
        "SELECT i.external_ref, r.total_response_s FROM incidents i JOIN response_intervals r "
        "ON r.incident_id = i.id WHERE i.region = :r"), {"r": region}).all()
    return pd.Series({ref: (np.nan if v is None else v) for ref, v in rows}, dtype=float)


def _import(db: Session, path: Path, name: str, region: str, tmp_path: Path) -> ImportResult:
    result = import_calls(session=db, path=path, mapping=load_mapping(name), region=region,
                          rejects_file=tmp_path / "rejects.csv")
    assert result.first_received is not None
    refresh_intervals(session=db, since=result.first_received.to_pydatetime())
    return result


def test_shipped_mappings_load_and_map_onto_the_classification() -> None:
    """sf, seattle and new_orleans ship; every category they map to is a real category."""
    assert {"sf", "seattle", "new_orleans"} <= set(builtin_mappings())
    codes = set(load_classification().categories)
    for name in builtin_mappings():
        m = load_mapping(name)
        assert m.category_map, name
        assert set(m.category_map.values()) <= codes, name
        assert "received" in m.times


def test_seattle_call_data_imports(db: Session, tmp_path: Path) -> None:
    """The Seattle fixture: 10 rows, 3 rejected with reasons, 2 flagged, totals equal pandas."""
    result = _import(db, SEATTLE, "seattle", "SEATEST", tmp_path)
    assert (result.rows, result.calls, result.skipped_rows) == (7, 7, 3)
    assert result.flagged_rows == 2
    assert result.reject_reasons == {
        "no usable location (Dispatch Latitude, Dispatch Longitude)": 1,
        "CAD Event Original Time Queued: not a time in format '%m/%d/%Y %I:%M:%S %p'": 1,
        "duplicate call id": 1}
    assert result.unmapped_categories == {"--PARKING VIOLATION": 1}
    # A call nobody arrived at (1900 sentinel) has no assignment; the others have one.
    assert result.new_assignments == 6
    got = _imported_totals(db, "SEATEST")
    want = _expected_totals(SEATTLE, "CAD Event Number", "CAD Event Original Time Queued",
                            "CAD Event Arrived Time", "America/Los_Angeles",
                            ["Jan 1 1900 12:00:00:000AM"]).reindex(got.index)
    np.testing.assert_array_equal(got.sort_index().to_numpy(), want.sort_index().to_numpy())
    assert got.notna().sum() == 4  # negative and two-day arrivals are left out
    # No dispatch column: nothing about queue/travel is invented.
    assert db.execute(text(
        "SELECT count(*) FROM response_intervals r JOIN incidents i ON i.id = r.incident_id "
        "WHERE i.region = 'SEATEST' AND (r.queue_s IS NOT NULL OR r.travel_s IS NOT NULL "
        "OR r.call_processing_s IS NOT NULL)")).scalar_one() == 0
    cats = dict(db.execute(text("SELECT external_ref, category FROM incidents "
                                "WHERE region = 'SEATEST'")).all())
    assert cats["2023000003"] == "assault" and cats["2023000009"] == "--PARKING VIOLATION"
    overall = aggregate(session=db, by=[], region="SEATEST")[0]
    assert overall.count == 7 and overall.n == 4
    assert overall.median_s == pytest.approx(float(want.median()))
    assert overall.p90_s == pytest.approx(float(want.quantile(0.9)))


def test_new_orleans_calls_import(db: Session, tmp_path: Path) -> None:
    """The NOLA fixture: WKT points, "2A" priorities, an undispatched call, figures vs pandas."""
    result = _import(db, NOLA, "new_orleans", "NOLATEST", tmp_path)
    assert (result.rows, result.skipped_rows, result.flagged_rows) == (6, 2, 1)
    got = _imported_totals(db, "NOLATEST")
    want = _expected_totals(NOLA, "NOPD_Item", "TimeCreate", "TimeArrive", "America/Chicago",
                            []).reindex(got.index)
    np.testing.assert_array_equal(got.sort_index().to_numpy(), want.sort_index().to_numpy())
    pri = dict(db.execute(text("SELECT external_ref, priority FROM incidents "
                               "WHERE region = 'NOLATEST'")).all())
    assert (pri["A0000119"], pri["A0000219"], pri["A0000619"]) == (3, 2, 4)
    loc = db.execute(text("SELECT ST_X(location), ST_Y(location) FROM incidents "
                          "WHERE region = 'NOLATEST' AND external_ref = 'A0000119'")).one()
    assert loc == (pytest.approx(-90.0685), pytest.approx(29.9553))
    # Dispatched a minute before it was created: the queue is left out, the response is not.
    row = db.execute(text(
        "SELECT r.call_processing_s, r.total_response_s FROM response_intervals r "
        "JOIN incidents i ON i.id = r.incident_id WHERE i.external_ref = 'A0000819' "
        "AND i.region = 'NOLATEST'")).one()
    assert row == (None, 360.0)
    # Never dispatched, only closed: no call processing time is invented.
    row = db.execute(text(
        "SELECT r.call_processing_s, r.crews FROM response_intervals r "
        "JOIN incidents i ON i.id = r.incident_id WHERE i.external_ref = 'A0000719' "
        "AND i.region = 'NOLATEST'")).one()
    assert row == (None, 1)
    by_pri = {g.key["priority"]: g for g in aggregate(session=db, by=["priority"],
                                                      region="NOLATEST")}
    assert by_pri[4].median_s == pytest.approx(3000.0)  # 03:00 -> 03:50


@pytest.mark.parametrize(("raw", "message"), [
    ({"columns": {}, "times": {"received": "a"}, "location": {"kind": "columns", "lat": "x",
                                                              "lon": "y"}}, "call_id"),
    ({"columns": {"call_id": "c"}, "times": {"dispatched": "d"},
      "location": {"kind": "wkt_point", "column": "l"}}, "received"),
    ({"columns": {"call_id": "c"}, "times": {"received": "r"},
      "location": {"kind": "geohash", "column": "l"}}, "kind must be one of"),
    ({"rows": "per_unit", "columns": {"call_id": "c"}, "times": {"received": "r"},
      "location": {"kind": "wkt_point", "column": "l"}}, "unit_id"),
    ({"timezone": "Mars/Olympus", "columns": {"call_id": "c"}, "times": {"received": "r"},
      "location": {"kind": "wkt_point", "column": "l"}}, "time zone"),
    ({"columns": {"call_id": "c"}, "times": {"received": "r", "arrived": "a"},
      "location": {"kind": "wkt_point", "column": "l"}}, "unknown fields"),
    ({"colums": {}}, "unknown keys"),
])
def test_wrong_mappings_are_refused_with_the_reason(raw: dict[str, object], message: str) -> None:
    """A mapping with a missing or misspelt key is one clear InvalidInput."""
    with pytest.raises(InvalidInput, match=message):
        parse_mapping(raw)


def test_file_not_matching_the_mapping_names_the_missing_columns(
    db: Session, tmp_path: Path
) -> None:
    """The NOLA file through the Seattle mapping: refused, the missing columns named."""
    with pytest.raises(InvalidInput, match="missing columns.*CAD Event Number"):
        import_calls(session=db, path=NOLA, mapping=load_mapping("seattle"))
    with pytest.raises(InvalidInput, match="not found"):
        load_mapping(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(InvalidInput, match="not valid TOML"):
        load_mapping(bad)


def test_reimport_of_a_grown_export_adds_only_the_new_calls(db: Session, tmp_path: Path) -> None:
    """The same export a day later (old rows + one new call): only the new call is added."""
    first = import_calls(session=db, path=NOLA, mapping=load_mapping("new_orleans"),
                         region="NOLAGROW")
    assert first.new_incidents == 6
    grown = tmp_path / "grown.csv"
    extra = ("A0000919,21,THEFT,1A,21,THEFT,1A,3681000,531000,01/02/2019 09:00:00 AM,"
             "01/02/2019 09:05:00 AM,01/02/2019 09:20:00 AM,01/02/2019 10:00:00 AM,RTF,"
             "REPORT TO FOLLOW,N,8D04,002XX Bourbon St,70112,8,POINT (-90.0680 29.9560)\n")
    grown.write_text(NOLA.read_text() + extra)
    again = import_calls(session=db, path=grown, mapping=load_mapping("new_orleans"),
                         region="NOLAGROW")
    assert (again.calls, again.new_incidents, again.new_assignments) == (7, 1, 1)
    assert db.execute(text("SELECT count(*) FROM incidents WHERE region = 'NOLAGROW'")
                      ).scalar_one() == 7
