"""`import calls --infer`: the proposed mapping imports real and fixture files with the same
figures as the hand-written mappings, and says what it could not decide."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.analytics.aggregates import cell_stats
from geodispatch.analytics.importer import import_calls
from geodispatch.analytics.infer import infer_mapping, time_format
from geodispatch.analytics.intervals import refresh_intervals
from geodispatch.analytics.mapping import CallMapping, load_mapping, parse_mapping
from geodispatch.errors import InvalidInput
from tests.analytics.test_importer import _pandas_cells, within_bound

FIXTURES = Path(__file__).with_name("fixtures")


def _proposed(path: Path) -> CallMapping:
    proposal = infer_mapping(path)
    assert proposal.complete, proposal.notes
    return parse_mapping(tomllib.loads(proposal.toml))


def _import(db: Session, path: Path, mapping: CallMapping, region: str) -> None:
    result = import_calls(session=db, path=path, mapping=mapping, region=region)
    assert result.first_received is not None
    refresh_intervals(session=db, since=result.first_received.to_pydatetime())


def test_time_format_needs_a_time_of_day() -> None:
    """Date-only columns are not times; US month-first is recognised with AM/PM."""
    assert time_format(pd.Series(["12/31/2016", "01/01/2017"])) is None
    assert time_format(pd.Series(["12/31/2016 11:57:56 PM"])) == ("%m/%d/%Y %I:%M:%S %p", [])
    assert time_format(pd.Series(["2019-01-01T00:00:42.000"]))[0] == "%Y-%m-%dT%H:%M:%S.%f"  # type: ignore[index]


def test_sf_proposal_is_the_sf_mapping(sf_calls_file: Path) -> None:
    """On the real SF file: per unit, the same call id, unit, six times, format, zone, place."""
    m = _proposed(sf_calls_file)
    sf = load_mapping("sf")
    assert m.per_unit and m.call_id == sf.call_id and m.unit_id == sf.unit_id
    assert m.times == sf.times and m.time_formats == sf.time_formats
    assert (m.location_kind, m.location_columns) == (sf.location_kind, sf.location_columns)
    assert m.timezone == sf.timezone and m.category == sf.category
    assert m.category_map["Medical Incident"] == "medical_assist"


def test_sf_proposal_imports_with_the_same_figures(db: Session, sf_calls_file: Path) -> None:
    """Importing the SF file with the inferred mapping gives pandas' per-cell figures."""
    _import(db, sf_calls_file, _proposed(sf_calls_file), "SFINFER")
    n = db.execute(text("SELECT count(*) FROM incidents WHERE region = 'SFINFER'")).scalar_one()
    assert n == 3560
    expected = _pandas_cells(sf_calls_file)
    stats = cell_stats(session=db, res=8, region="SFINFER")
    got = pd.DataFrame({"count": stats.count, "n": stats.n, "median": stats.median_s,
                        "p90": stats.p90_s}, index=stats.cells).loc[expected.index]
    assert len(got) == len(expected) > 100
    assert (got["count"].to_numpy() == expected["count"].to_numpy()).all()
    assert (got["n"].to_numpy() == expected["n"].to_numpy()).all()
    within_bound(got["median"], expected["median"])
    within_bound(got["p90"], expected["p90"])


@pytest.mark.parametrize(("fixture", "shipped"), [("seattle_call_data.csv", "seattle"),
                                                  ("new_orleans_calls_2019.csv", "new_orleans")])
def test_fixture_proposals_import_like_the_shipped_mappings(
    db: Session, fixture: str, shipped: str
) -> None:
    """Seattle (lat/lon columns, 1900 sentinel) and NOLA (WKT): same response times per call."""
    path = FIXTURES / fixture
    m = _proposed(path)
    ref = load_mapping(shipped)
    assert (m.call_id, m.times, m.location_columns, m.timezone, m.category) == (
        ref.call_id, ref.times, ref.location_columns, ref.timezone, ref.category)
    _import(db, path, m, "INFER")
    _import(db, path, ref, "SHIPPED")
    rows = db.execute(text(
        "SELECT i.region, i.external_ref, r.total_response_s FROM incidents i "
        "JOIN response_intervals r ON r.incident_id = i.id "
        "WHERE i.region IN ('INFER', 'SHIPPED')")).all()
    by = {reg: {ref_: v for r, ref_, v in rows if r == reg} for reg in ("INFER", "SHIPPED")}
    assert by["INFER"] == by["SHIPPED"] and len(by["INFER"]) >= 6


def test_undecidable_file_says_what_is_missing(tmp_path: Path) -> None:
    """No times, no location: the proposal is incomplete, names both, and does not load."""
    path = tmp_path / "odd.csv"
    path.write_text("ticket,kind,notes\nT1,noise,loud\nT2,theft,bike\n")
    proposal = infer_mapping(path)
    assert not proposal.complete
    text_notes = " ".join(proposal.notes)
    assert "received time" in text_notes and "location" in text_notes
    assert "time zone" in text_notes
    with pytest.raises(InvalidInput):
        parse_mapping(tomllib.loads(proposal.toml))


def test_infer_on_an_empty_or_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    """A header without rows, or no file at all: InvalidInput, not a traceback."""
    empty = tmp_path / "empty.csv"
    empty.write_text("a,b\n")
    with pytest.raises(InvalidInput, match="no rows"):
        infer_mapping(empty)
    with pytest.raises(InvalidInput, match="does not exist"):
        infer_mapping(tmp_path / "nope.csv")
