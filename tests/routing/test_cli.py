"""``geodispatch graph import`` and ``graph info`` from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from geodispatch.cli import main
from geodispatch.routing.graph import RoadGraph


def test_graph_import_no_db(osm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                            ) -> None:
    """`graph import PATH --out FILE --no-db` writes a loadable graph and reports its size."""
    out = tmp_path / "krems.npz"
    assert main(["graph", "import", str(osm_dir / "krems_austria.osm.gz"), "--out", str(out),
                 "--no-db"]) == 0
    g = RoadGraph.load(out)
    assert f"{g.n_nodes:,} nodes" in capsys.readouterr().out
    assert main(["graph", "info", "--path", str(out)]) == 0
    assert '"edges"' in capsys.readouterr().out


def test_graph_import_needs_one_source(osm_dir: Path) -> None:
    """A path and --place together are refused."""
    with pytest.raises(SystemExit):
        main(["graph", "import", str(osm_dir / "krems_austria.osm.gz"), "--place", "Krems"])
