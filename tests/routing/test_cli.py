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
                 "--no-db", "--no-tiles"]) == 0
    g = RoadGraph.load(out)
    assert f"{g.n_nodes:,} nodes" in capsys.readouterr().out
    assert main(["graph", "info", "--path", str(out)]) == 0
    assert '"edges"' in capsys.readouterr().out


def test_graph_import_needs_one_source(osm_dir: Path) -> None:
    """A path and --place together are refused."""
    with pytest.raises(SystemExit):
        main(["graph", "import", str(osm_dir / "krems_austria.osm.gz"), "--place", "Krems"])


_FOOTWAYS_ONLY = """<?xml version='1.0' encoding='UTF-8'?>
<osm version="0.6" generator="test">
  <node id="1" lat="50.45" lon="30.52"/><node id="2" lat="50.451" lon="30.52"/>
  <node id="3" lat="50.452" lon="30.521"/>
  <way id="10"><nd ref="1"/><nd ref="2"/><tag k="highway" v="footway"/></way>
  <way id="11"><nd ref="2"/><nd ref="3"/><tag k="highway" v="residential"/>
    <tag k="motor_vehicle" v="no"/></way>
</osm>
"""


def test_an_extract_without_drivable_roads_leaves_the_graph_alone(
        osm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Importing an extract with no road a car can use fails with one clear line and exit 1,
    and the graph built before is still there, unchanged."""
    out = tmp_path / "graph.npz"
    assert main(["graph", "import", str(osm_dir / "krems_austria.osm.gz"), "--out", str(out),
                 "--no-db", "--no-tiles"]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    bad = tmp_path / "paths.osm"
    bad.write_text(_FOOTWAYS_ONLY)
    assert main(["graph", "import", str(bad), "--out", str(out), "--no-db"]) == 1
    err = capsys.readouterr().err
    assert "no drivable roads" in err and "left as it was" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert out.read_bytes() == before


def test_import_says_how_much_of_the_network_it_dropped(
        osm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Keeping the largest strongly connected network is reported with the share left out, and
    the figures are stored with the graph."""
    out = tmp_path / "andorra.npz"
    assert main(["graph", "import", str(osm_dir / "andorra_2013.osm.pbf"), "--out", str(out),
                 "--no-db", "--no-tiles"]) == 0
    printed = capsys.readouterr().out
    g = RoadGraph.load(out)
    dropped, drivable = int(g.meta["dropped_nodes"]), int(g.meta["drivable_nodes"])
    assert g.meta["kept_nodes"] == g.n_nodes == drivable - dropped
    assert dropped > 0
    assert f"{dropped:,} of {drivable:,} drivable junctions" in printed
    whole = tmp_path / "all.npz"
    assert main(["graph", "import", str(osm_dir / "andorra_2013.osm.pbf"), "--out", str(whole),
                 "--no-db", "--no-tiles", "--all-components"]) == 0
    assert RoadGraph.load(whole).n_nodes == drivable
