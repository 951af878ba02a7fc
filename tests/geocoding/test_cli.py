"""``geodispatch geocode ...`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geodispatch.cli import main


def test_search_and_reverse_print_json_lines(address_index: object,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """`geocode search` and `geocode reverse` print one JSON object per answer."""
    assert main(["geocode", "search", "750 E Pratt St", "--near", "39.29,-76.60"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["label"] == "750 East Pratt Street" and first["precision"] == "house"
    assert main(["geocode", "reverse", "39.28712", "-76.60522"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] == "750 East Pratt Street"
    assert main(["geocode", "search", "Qqqxz Wvvvy"]) == 1


def test_import_of_a_missing_file_is_one_line(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A file that is not there: exit 2 and one line saying so."""
    assert main(["geocode", "import", str(tmp_path / "nowhere.osm.pbf")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no OSM file" in err[0]
