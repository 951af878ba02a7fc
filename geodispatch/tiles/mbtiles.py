"""Read tiles and metadata from an MBTiles file (SQLite; rows in TMS order: y counted from the
south), read-only, one short-lived connection per call so a rebuilt file is picked up at once."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geodispatch.errors import NotFound

GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Tile:
    """One stored tile; ``gzip`` when the bytes are gzip-compressed (tilemaker's default)."""

    data: bytes
    gzip: bool


def _connect(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise NotFound(f"no vector tiles at {path}: run `geodispatch tiles build`")
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def read_metadata(path: Path) -> dict[str, Any]:
    """The ``metadata`` table with numbers, bounds and the ``json`` entry decoded."""
    conn = _connect(path)
    try:
        rows = conn.execute("SELECT name, value FROM metadata").fetchall()
    finally:
        conn.close()
    meta: dict[str, Any] = {str(k): v for k, v in rows}
    for key in ("minzoom", "maxzoom"):
        if key in meta:
            meta[key] = int(meta[key])
    for key in ("bounds", "center"):
        if key in meta:
            meta[key] = [float(v) for v in str(meta[key]).split(",")]
    if "json" in meta:
        meta.update(json.loads(meta.pop("json")))
    return meta


def read_tile(path: Path, z: int, x: int, y: int) -> Tile | None:
    """The tile at XYZ ``z/x/y`` (None when the archive has none there)."""
    conn = _connect(path)
    try:
        row = conn.execute(
            "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
            (z, x, (1 << z) - 1 - y),
        ).fetchone()
    finally:
        conn.close()
    if row is None or not row[0]:
        return None
    data = bytes(row[0])
    return Tile(data=data, gzip=data[:2] == GZIP_MAGIC)
