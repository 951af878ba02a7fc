"""A mapping whose location is an address: the importer places each distinct address with the
project's geocoder (the address index); an address it cannot place is a counted rejected row."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.analytics.importer import import_calls
from geodispatch.analytics.mapping import load_mapping
from geodispatch.analytics.reader import read_calls
from geodispatch.errors import InvalidInput

MAPPING = """
name = "Baltimore-like calls located by address"
region = "BALT"
rows = "per_call"
timezone = "America/New_York"

[columns]
call_id = "Call"

[times]
format = "%Y-%m-%d %H:%M:%S"
received = "Received"
on_scene = "Arrived"

[location]
kind = "address"
column = "Address"

[category]
column = "Type"

[priority]
column = "Priority"
default = 3
"""

CALLS = """Call,Received,Arrived,Address,Type,Priority
B1,2015-03-01 10:00:00,2015-03-01 10:07:00,750 East Pratt Street,theft,2
B2,2015-03-01 11:00:00,2015-03-01 11:09:30,750 E Pratt St,theft,2
B3,2015-03-01 12:00:00,2015-03-01 12:05:00,12 Nowhere Atlantis Boulevard Xq,theft,2
B4,2015-03-01 13:00:00,2015-03-01 13:05:00,,theft,2
"""


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    m, c = tmp_path / "balt.toml", tmp_path / "balt.csv"
    m.write_text(MAPPING)
    c.write_text(CALLS)
    return m, c


def test_addresses_are_geocoded_and_unresolved_ones_rejected(
    db: Session, address_index: dict[str, object], files: tuple[Path, Path], tmp_path: Path
) -> None:
    mapping_file, calls = files
    rejects = tmp_path / "balt.rejects.csv"
    result = import_calls(session=db, path=calls, mapping=load_mapping(str(mapping_file)),
                          rejects_file=rejects)
    assert (result.calls, result.new_incidents, result.skipped_rows) == (2, 2, 2)
    assert result.reject_reasons == {"address not found by the geocoder": 1,
                                     "no address (Address)": 1}
    assert "12 Nowhere Atlantis" in rejects.read_text()
    rows = db.execute(text(
        "SELECT external_ref, ST_Y(location), ST_X(location) FROM incidents "
        "WHERE region = 'BALT' ORDER BY external_ref")).all()
    assert [r[0] for r in rows] == ["B1", "B2"]
    for _ref, lat, lng in rows:  # East Pratt Street, downtown Baltimore
        assert 39.27 < lat < 39.31 and -76.62 < lng < -76.58
    assert abs(rows[0][1] - rows[1][1]) < 1e-4 and abs(rows[0][2] - rows[1][2]) < 1e-4


def test_an_address_mapping_without_a_geocoder_is_one_clear_error(
        files: tuple[Path, Path]) -> None:
    mapping_file, calls = files
    with pytest.raises(InvalidInput, match="locates calls by address"):
        read_calls(calls, load_mapping(str(mapping_file)))
