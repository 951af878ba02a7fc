"""Every CLI failure is one clear line on standard error (no traceback unless -v)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "geodispatch.cli", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture()
def bad_inputs(tmp_path: Path, data_dir: Path) -> dict[str, Path]:
    csv = tmp_path / "calls.osm"
    csv.write_text("call,type\n1,theft\n")
    truncated = tmp_path / "cut.osm.pbf"
    truncated.write_bytes((data_dir / "osm" / "andorra_2013.osm.pbf").read_bytes()[:30000])
    return {"a directory": tmp_path, "a CSV named .osm": csv, "a truncated PBF": truncated,
            "a missing file": tmp_path / "nope.osm.pbf"}


@pytest.mark.parametrize("case", ["a directory", "a CSV named .osm", "a truncated PBF",
                                  "a missing file"])
def test_graph_import_bad_input_is_one_line(case: str, bad_inputs: dict[str, Path],
                                            tmp_path: Path) -> None:
    path = bad_inputs[case]
    r = _run("graph", "import", str(path), "--out", str(tmp_path / "g.npz"), "--no-db")
    assert r.returncode == 1, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("geodispatch: ")]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert str(path) in lines[0] or "OSM" in lines[0]
    assert not (tmp_path / "g.npz").exists(), "a failed import wrote a graph"
    verbose = _run("-v", "graph", "import", str(path), "--out", str(tmp_path / "g.npz"),
                   "--no-db")
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr


def test_unreachable_database_is_one_line() -> None:
    import os

    env = {**os.environ,
           "GEODISPATCH_DATABASE_URL": "postgresql+psycopg://x:y@127.0.0.1:1/none",
           "GEODISPATCH_ADMIN_DATABASE_URL": "postgresql+psycopg://x:y@127.0.0.1:1/none"}
    r = subprocess.run([sys.executable, "-m", "geodispatch.cli", "db", "check"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode in (1, 2)
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("geodispatch: ") and len(r.stderr.strip().splitlines()) == 1
