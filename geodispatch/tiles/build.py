"""Build the base map's vector tiles from an OSM extract with tilemaker.

tilemaker reads only ``.osm.pbf``; other formats (``.osm``, ``.osm.gz``, ``.osm.bz2``) are
converted with osmium first. The extract's bounding box (its header's, else its data's) is passed
explicitly, so an extract without a header box still clips to its own area. The tiles are written
to a temporary file beside the target and moved over it at the end, so a running server never
reads a half-written file. The source file and its SHA-256 are stamped into the MBTiles
metadata (``geodispatch_source``) so a caller can tell whether the tiles are up to date.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from geodispatch.errors import ConfigurationError

log = logging.getLogger(__name__)

PROFILE_DIR = Path(__file__).resolve().parent / "tilemaker"
CONFIG = PROFILE_DIR / "config.json"
PROCESS = PROFILE_DIR / "process.lua"
SOURCE_KEY = "geodispatch_source"


@dataclass(frozen=True)
class BuildResult:
    """What one build produced."""

    path: Path
    bytes: int
    tiles: int
    seconds: float
    minzoom: int
    maxzoom: int


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def source_stamp(osm_file: Path) -> dict[str, str]:
    """The identity of an extract: resolved path and SHA-256."""
    return {"file": str(osm_file.resolve()), "sha256": sha256_file(osm_file)}


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if not found:
        raise ConfigurationError(f"{name} not found: install the Debian package {package} "
                                 "(scripts/services.sh does)")
    return found


def _run(cmd: list[str], what: str) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        tail = " | ".join((r.stderr or r.stdout).strip().splitlines()[-5:])
        raise ConfigurationError(f"{what} failed (status {r.returncode}): {tail}")
    return r.stdout


def extract_bbox(osmium: str, pbf: Path) -> str:
    """``minlon,minlat,maxlon,maxlat`` of an extract: its header box, else its data's."""
    for query in (["-g", "header.boxes"], ["-e", "-g", "data.bbox"]):
        out = _run([osmium, "fileinfo", *query, str(pbf)], f"osmium fileinfo {pbf}").strip()
        box = out.splitlines()[0].strip("() ") if out else ""
        parts = box.split(",")
        if len(parts) == 4:
            try:
                minlon, minlat, maxlon, maxlat = (float(p) for p in parts)
            except ValueError:
                continue
            if minlon < maxlon and minlat < maxlat:
                return box
    raise ConfigurationError(f"{pbf}: no bounding box (is the extract empty?)")


def build_tiles(*, osm_file: Path, out: Path, threads: int = 0) -> BuildResult:
    """Build ``out`` (MBTiles) from ``osm_file``; replaces an existing file atomically.

    Parameters
    ----------
    osm_file
        ``.osm.pbf``, ``.osm``, ``.osm.gz`` or ``.osm.bz2`` extract.
    out
        The MBTiles file to write.
    threads
        tilemaker worker threads (0 = one per core).

    Raises
    ------
    ConfigurationError
        The extract is missing, tilemaker or osmium is not installed, or a tool fails.
    """
    if not osm_file.is_file():
        raise ConfigurationError(f"OSM extract {osm_file} not found")
    tilemaker = _tool("tilemaker", "tilemaker")
    osmium = _tool("osmium", "osmium-tool")
    stamp = source_stamp(osm_file)
    t0 = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gd-tiles-", dir=out.parent) as tmp_dir:
        tmp = Path(tmp_dir)
        pbf = osm_file
        if not osm_file.name.endswith(".pbf"):
            pbf = tmp / "extract.osm.pbf"
            _run([osmium, "cat", "--no-progress", "-o", str(pbf), str(osm_file)],
                 f"osmium cat {osm_file}")
        bbox = extract_bbox(osmium, pbf)
        target = tmp / "tiles.mbtiles"
        log.info("tiles: tilemaker %s -> %s (bbox %s)", osm_file, out, bbox)
        _run([tilemaker, "--input", str(pbf), "--output", str(target), "--bbox", bbox,
              "--config", str(CONFIG), "--process", str(PROCESS), "--threads", str(threads)],
             f"tilemaker {osm_file}")
        with sqlite3.connect(target) as conn:
            conn.execute("INSERT OR REPLACE INTO metadata (name, value) VALUES (?, ?)",
                         (SOURCE_KEY, json.dumps(stamp)))
            tiles = int(conn.execute("SELECT count(*) FROM tiles").fetchone()[0])
            zooms = conn.execute("SELECT min(zoom_level), max(zoom_level) FROM tiles").fetchone()
        conn.close()
        if tiles == 0:
            raise ConfigurationError(f"tilemaker wrote no tiles for {osm_file} (bbox {bbox})")
        os.replace(target, out)
    return BuildResult(path=out, bytes=out.stat().st_size, tiles=tiles,
                       seconds=time.perf_counter() - t0, minzoom=int(zooms[0]),
                       maxzoom=int(zooms[1]))


def built_from(path: Path) -> dict[str, str] | None:
    """The source stamp of a built MBTiles file (None if absent or unreadable)."""
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM metadata WHERE name = ?",
                               (SOURCE_KEY,)).fetchone()
        finally:
            conn.close()
        value = json.loads(row[0]) if row else None
    except (sqlite3.Error, ValueError):
        return None
    return value if isinstance(value, dict) else None
