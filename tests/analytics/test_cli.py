"""The analytics commands end to end, inside the rolled-back test transaction."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.orm import Session

from geodispatch import cli
from geodispatch.analytics import cli as analytics_cli
from tests.analytics.conftest import SF_REGION, SF_TZ


@pytest.fixture()
def cli_in_test_transaction(db: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands open their unit of work as a savepoint of the ``db`` connection."""
    def factory() -> Session:
        return Session(bind=db.connection(), join_transaction_mode="create_savepoint")

    monkeypatch.setattr(analytics_cli, "_factory", lambda: factory)


def test_import_heatmap_report_and_charts(
    cli_in_test_transaction: None, sf_calls_file: Path, artifacts: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`import calls`, `heatmap`, `analytics report` and `analytics charts` write their output."""
    rejects = artifacts / "analytics_cli_sf.rejects.csv"
    assert cli.main(["import", "calls", str(sf_calls_file), "--region", SF_REGION,
                     "--tz", SF_TZ, "--rejects", str(rejects)]) == 0
    assert "3560 calls; new: 3560 incidents, 7704 assignments" in capsys.readouterr().out
    # One SF unit row reports on scene before en route: flagged, kept, not counted as travel.
    assert pd.read_csv(rejects)["action"].tolist() == ["flagged"]
    out = artifacts / "analytics_cli_p90.html"
    out.unlink(missing_ok=True)
    assert cli.main(["heatmap", "--metric", "p90_response", "--res", "8", "--from",
                     "2017-01-01T00:00:00+00:00", "--to", "2017-01-08T00:00:00+00:00",
                     "--region", SF_REGION, "--out", str(out)]) == 0
    assert out.is_file() and "90th percentile response time" in out.read_text()
    assert cli.main(["analytics", "report", "--region", SF_REGION, "--by", "hour",
                     "--by", "priority"]) == 0
    report = capsys.readouterr().out
    assert "total_response_s by hour" in report and "median" in report and "p90" in report
    charts = artifacts / "analytics_charts"
    assert cli.main(["analytics", "charts", "--region", SF_REGION, "--out-dir",
                     str(charts)]) == 0
    for name in ("distribution", "by_hour"):
        assert (charts / f"response_{name}.png").read_bytes()[:4] == b"\x89PNG"
    # A second import is a no-op.
    assert cli.main(["import", "calls", str(sf_calls_file), "--region", SF_REGION,
                     "--tz", SF_TZ, "--rejects", str(rejects)]) == 0
    assert "new: 0 incidents, 0 assignments, 0 crews" in capsys.readouterr().out


def test_import_with_a_shipped_mapping_writes_rejects_and_is_idempotent(
    cli_in_test_transaction: None, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """`import calls F --mapping new_orleans`: counts, reasons, rejects file; again adds nothing."""
    fixture = Path(__file__).with_name("fixtures") / "new_orleans_calls_2019.csv"
    rejects = tmp_path / "nola.rejects.csv"
    args = ["import", "calls", str(fixture), "--mapping", "new_orleans", "--region", "NOLACLI",
            "--rejects", str(rejects)]
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    assert "6 rows, 6 calls; new: 6 incidents" in captured.out
    assert "2 rows rejected, 1 flagged" in captured.out
    assert "rejected 1: no usable location (Location)" in captured.out
    assert "reading new_orleans_calls_2019.csv" in captured.err  # progress on stderr
    written = pd.read_csv(rejects, dtype=str)
    assert written["line"].tolist() == ["5", "6", "9"]
    assert written["action"].tolist() == ["rejected", "rejected", "flagged"]
    assert written.loc[0, "NOPD_Item"] == "A0000419"
    assert "received -> dispatched negative: -60 s" in written.loc[2, "reason"]
    assert cli.main(args) == 0
    assert "new: 0 incidents, 0 assignments, 0 crews" in capsys.readouterr().out


def test_infer_prints_a_mapping_and_its_doubts(
    sf_calls_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`import calls F --infer` prints TOML on stdout (loadable) and the notes on stderr."""
    assert cli.main(["import", "calls", str(sf_calls_file), "--infer"]) == 0
    captured = capsys.readouterr()
    assert 'received = "Received DtTm"' in captured.out
    assert tomllib.loads(captured.out)["rows"] == "per_unit"
    assert "note: time column 'Transport DtTm' is none of the call steps" in captured.err


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "geodispatch.cli", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("case", ["missing file", "directory", "binary file", "other CSV",
                                  "unknown mapping", "broken mapping", "mapping bad zone",
                                  "empty file"])
def test_wrong_file_or_mapping_is_one_line(case: str, tmp_path: Path, data_dir: Path) -> None:
    """Every wrong file or mapping: exit 1, one `geodispatch:` line on stderr, no traceback."""
    nola = Path(__file__).with_name("fixtures") / "new_orleans_calls_2019.csv"
    broken = tmp_path / "broken.toml"
    broken.write_text("rows = [per_call\n")
    zone = tmp_path / "zone.toml"
    zone.write_text('timezone = "Pacific/Atlantis"\n[columns]\ncall_id = "NOPD_Item"\n'
                    '[times]\nreceived = "TimeCreate"\n[location]\nkind = "wkt_point"\n'
                    'column = "Location"\n')
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    file, mapping, expect = {
        "missing file": (tmp_path / "nope.csv", "sf", "does not exist"),
        "directory": (tmp_path, "sf", "is a directory"),
        "binary file": (data_dir / "osm" / "andorra_2013.osm.pbf", "sf", "UTF-8 CSV"),
        "other CSV": (nola, "sf", "missing columns"),
        "unknown mapping": (nola, "chicago", "not found"),
        "broken mapping": (nola, str(broken), "not valid TOML"),
        "mapping bad zone": (nola, str(zone), "unknown time zone"),
        "empty file": (empty, "new_orleans", "is empty"),
    }[case]
    r = _run("import", "calls", str(file), "--mapping", mapping,
             "--rejects", str(tmp_path / "r.csv"))
    assert r.returncode == 1, r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("geodispatch: ")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert expect in lines[0]
