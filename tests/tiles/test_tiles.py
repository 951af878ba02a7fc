"""Vector tiles: built by tilemaker from the real extracts, served under /tiles by the real app."""

from __future__ import annotations

import gzip
import math
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from geodispatch.api.app import create_app
from geodispatch.errors import ConfigurationError
from geodispatch.settings import Settings
from geodispatch.tiles.build import build_tiles, built_from, source_stamp
from geodispatch.tiles.mbtiles import read_metadata
from tests.helpers import running_server

OSM = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "osm"
BALTIMORE = OSM / "baltimore_downtown_2015.osm.pbf"
SF = OSM / "sf_mission_bernal_2014.osm"  # plain XML without a <bounds>: converted, data bbox
SPOT = (39.2840, -76.5960)  # Little Italy / Harbor East, inside the downtown extract


def xyz(lat: float, lng: float, z: int) -> tuple[int, int]:
    n = 1 << z
    x = int((lng + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


@pytest.fixture(scope="module")
def baltimore_tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiles") / "baltimore.mbtiles"
    result = build_tiles(osm_file=BALTIMORE, out=out)
    assert result.tiles > 10 and (result.minzoom, result.maxzoom) == (10, 14)
    return out


@pytest.fixture(scope="module")
def base(settings: Settings, baltimore_tiles: Path) -> Iterator[str]:
    app = create_app(settings.model_copy(update={"serve_ingest": False,
                                                 "tiles_path": baltimore_tiles}))
    with running_server(app) as url:
        yield url


def test_build_stamps_the_source_and_the_layers(baltimore_tiles: Path) -> None:
    """The MBTiles file names its extract (path + SHA-256) and the layers the client draws."""
    assert built_from(baltimore_tiles) == source_stamp(BALTIMORE)
    meta = read_metadata(baltimore_tiles)
    assert {layer["id"] for layer in meta["vector_layers"]} >= {"roads", "water", "places"}
    west, south, east, north = meta["bounds"]
    assert west < SPOT[1] < east and south < SPOT[0] < north


def test_build_converts_xml_extracts_and_replaces_the_old_file(tmp_path: Path) -> None:
    """An .osm file is converted first; a second build replaces the first atomically."""
    out = tmp_path / "sf.mbtiles"
    first = build_tiles(osm_file=SF, out=out)
    assert first.tiles > 0
    meta = read_metadata(out)
    west, south, east, north = meta["bounds"]
    assert -122.43 < west < east < -122.40 and 37.74 < south < north < 37.77
    again = build_tiles(osm_file=SF, out=out)
    assert again.tiles == first.tiles and not list(tmp_path.glob("gd-tiles-*"))


def test_build_errors_are_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing extract or a missing tilemaker is a ConfigurationError that says what to do."""
    with pytest.raises(ConfigurationError, match="not found"):
        build_tiles(osm_file=tmp_path / "nope.osm.pbf", out=tmp_path / "t.mbtiles")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigurationError, match="tilemaker not found: install"):
        build_tiles(osm_file=BALTIMORE, out=tmp_path / "t.mbtiles")
    assert not (tmp_path / "t.mbtiles").exists()


def test_a_tile_is_served_gzip_with_street_names_and_cache_headers(base: str) -> None:
    """The tile over Harbor East comes gzip-encoded as stored, has named roads, revalidates."""
    x, y = xyz(*SPOT, 14)
    r = httpx.get(f"{base}/tiles/14/{x}/{y}.pbf")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert r.headers["content-encoding"] == "gzip"
    assert "max-age" in r.headers["cache-control"] and r.headers["etag"]
    body = r.content  # httpx undid the gzip: this is the protobuf
    assert b"roads" in body and b"Street" in body
    again = httpx.get(f"{base}/tiles/14/{x}/{y}.pbf", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_rows_are_flipped_from_tms(base: str, baltimore_tiles: Path) -> None:
    """The stored TMS row is served at the XYZ row; the unflipped row is empty (204)."""
    x, y = xyz(*SPOT, 14)
    tms = (1 << 14) - 1 - y
    with sqlite3.connect(baltimore_tiles) as conn:
        stored = conn.execute("SELECT tile_data FROM tiles WHERE zoom_level=14 AND tile_column=? "
                              "AND tile_row=?", (x, tms)).fetchone()[0]
    conn.close()
    r = httpx.get(f"{base}/tiles/14/{x}/{y}.pbf")
    assert r.content == gzip.decompress(stored)
    assert httpx.get(f"{base}/tiles/14/{x}/{tms}.pbf").status_code == 204


@pytest.mark.parametrize("path", ["9/0/0", "15/9411/12488", "14/16384/0", "14/0/16384",
                                  "14/-1/5", "0/0/0"])
def test_outside_the_zoom_range_or_grid_is_404(base: str, path: str) -> None:
    """Zooms the file lacks and coordinates off the grid are 404 problems, never a 500."""
    r = httpx.get(f"{base}/tiles/{path}.pbf")
    assert r.status_code == 404, r.text
    assert r.headers["content-type"] == "application/problem+json"


def test_an_empty_tile_inside_the_range_is_204(base: str) -> None:
    """A tile in range where the extract has nothing (mid-Pacific) is 204 with cache headers."""
    r = httpx.get(f"{base}/tiles/14/0/8000.pbf")
    assert r.status_code == 204 and r.content == b"" and "max-age" in r.headers["cache-control"]


def test_garbage_coordinates_are_a_422_problem(base: str) -> None:
    r = httpx.get(f"{base}/tiles/a/b/c.pbf")
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"


def test_tilejson_describes_the_tiles(base: str) -> None:
    """/tiles/metadata.json is TileJSON 3 with our URL template, zooms, bounds and layers."""
    r = httpx.get(f"{base}/tiles/metadata.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["tilejson"] == "3.0.0" and doc["tiles"] == [base + "/tiles/{z}/{x}/{y}.pbf"]
    assert (doc["minzoom"], doc["maxzoom"]) == (10, 14)
    assert "OpenStreetMap" in doc["attribution"]
    assert "roads" in {layer["id"] for layer in doc["vector_layers"]}


def test_no_tiles_or_tiles_turned_off_is_404(settings: Settings, tmp_path: Path,
                                             baltimore_tiles: Path) -> None:
    """Without a built file, or with GEODISPATCH_VECTOR_TILES=false, both endpoints say why."""
    for update, words in (({"tiles_path": tmp_path / "none.mbtiles"}, "tiles build"),
                          ({"tiles_path": baltimore_tiles, "vector_tiles": False},
                           "VECTOR_TILES=false")):
        app = create_app(settings.model_copy(update={"serve_ingest": False, **update}))
        with running_server(app) as url:
            for path in ("/tiles/metadata.json", "/tiles/14/4705/6244.pbf"):
                r = httpx.get(url + path)
                assert r.status_code == 404 and words in r.json()["detail"], (path, r.text)


def test_tiles_build_command(tmp_path: Path) -> None:
    """`geodispatch tiles build FILE --out` builds and reports tiles, size and time."""
    import subprocess
    import sys

    out = tmp_path / "cli.mbtiles"
    r = subprocess.run([sys.executable, "-m", "geodispatch.cli", "tiles", "build", str(SF),
                        "--out", str(out)], capture_output=True, text=True, check=False,
                       env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    assert "vector tiles:" in r.stdout and out.is_file()


def test_graph_import_also_builds_the_tiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """`graph import PATH` builds the vector tiles into GEODISPATCH_TILES_PATH; --no-tiles not."""
    from geodispatch.cli import main
    from geodispatch.settings import get_settings

    tiles = tmp_path / "city.mbtiles"
    monkeypatch.setenv("GEODISPATCH_TILES_PATH", str(tiles))
    monkeypatch.setenv("GEODISPATCH_TILES_ON_GRAPH_IMPORT", "true")
    get_settings.cache_clear()
    try:
        assert main(["graph", "import", str(SF), "--out", str(tmp_path / "g.npz"), "--no-db",
                     "--no-tiles"]) == 0
        assert not tiles.exists()
        assert main(["graph", "import", str(SF), "--out", str(tmp_path / "g.npz"),
                     "--no-db"]) == 0
    finally:
        get_settings.cache_clear()
    assert "vector tiles:" in capsys.readouterr().out
    assert built_from(tiles) == source_stamp(SF)
