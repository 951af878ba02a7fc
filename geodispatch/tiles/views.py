"""HTTP edge of the base map: vector tiles from the MBTiles file, and its TileJSON.

``GET /tiles/{z}/{x}/{y}.pbf``
    One Mapbox Vector Tile, bytes as stored (gzip, sent with ``Content-Encoding: gzip``);
    204 for a tile inside the zoom range that holds nothing, 404 outside the zoom range or
    the tile grid, or when no tiles are built (or ``GEODISPATCH_VECTOR_TILES=false``).
    ``Cache-Control`` + ``ETag`` (``If-None-Match`` answers 304).
``GET /tiles/metadata.json``
    TileJSON 3.0.0: tile URL template, zoom range, bounds, centre, vector layers, attribution.

Public, like the static files: the tiles hold only the OpenStreetMap extract, and the crew
terminal (device credentials) and the analyst's report pages load them without a console token.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from geodispatch.api.deps import SettingsDep
from geodispatch.errors import NotFound
from geodispatch.settings import Settings
from geodispatch.tiles.mbtiles import read_metadata, read_tile

router = APIRouter(tags=["tiles"])

MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
CACHE = "public, max-age=3600"


def _archive(settings: Settings) -> Path:
    if not settings.vector_tiles:
        raise NotFound("the vector base map is turned off (GEODISPATCH_VECTOR_TILES=false)")
    path = settings.resolved_tiles_path
    if not path.is_file():
        raise NotFound(f"no vector tiles built at {path}: run `geodispatch tiles build`")
    return path


@lru_cache(maxsize=8)
def _metadata(path: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    """Metadata of one version of the file (the key changes when it is rebuilt)."""
    return read_metadata(path)


def metadata_of(path: Path) -> dict[str, Any]:
    st = path.stat()
    return _metadata(path, st.st_mtime_ns, st.st_size)


@router.get("/tiles/{z}/{x}/{y}.pbf", summary="Vector tile of the base map",
            response_class=Response,
            responses={200: {"content": {MEDIA_TYPE: {}}, "description": "Mapbox Vector Tile"},
                       204: {"description": "Inside the zoom range, but nothing there"},
                       304: {"description": "Not modified (If-None-Match)"},
                       404: {"description": "Outside the zoom range or grid; no tiles built"}})
def tile(z: int, x: int, y: int, request: Request, settings: SettingsDep) -> Response:
    """One tile in XYZ order (the TMS row flip of MBTiles is done here)."""
    path = _archive(settings)
    meta = metadata_of(path)
    lo, hi = int(meta.get("minzoom", 0)), int(meta.get("maxzoom", 14))
    if not lo <= z <= hi:
        raise NotFound(f"zoom {z} is outside the base map's {lo}..{hi}")
    if not (0 <= x < 1 << z and 0 <= y < 1 << z):
        raise NotFound(f"tile {z}/{x}/{y} is outside the tile grid of zoom {z}")
    found = read_tile(path, z, x, y)
    headers = {"Cache-Control": CACHE, "Access-Control-Allow-Origin": "*"}
    if found is None:
        return Response(status_code=204, headers=headers)
    etag = '"' + hashlib.blake2b(found.data, digest_size=12).hexdigest() + '"'
    headers["ETag"] = etag
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if found.gzip:
        headers["Content-Encoding"] = "gzip"
    return Response(found.data, media_type=MEDIA_TYPE, headers=headers)


@router.get("/tiles/metadata.json", summary="TileJSON of the base map")
def tilejson(request: Request, settings: SettingsDep) -> JSONResponse:
    """Where the tiles are and what they hold (TileJSON 3.0.0)."""
    path = _archive(settings)
    meta = metadata_of(path)
    base = str(request.base_url).rstrip("/")
    doc = {
        "tilejson": "3.0.0",
        "name": meta.get("name", "base map"),
        "description": meta.get("description", ""),
        "version": meta.get("version", "1"),
        "attribution": meta.get("attribution", settings.tile_attribution),
        "scheme": "xyz",
        "tiles": [base + "/tiles/{z}/{x}/{y}.pbf"],
        "minzoom": meta.get("minzoom", 0),
        "maxzoom": meta.get("maxzoom", 14),
        "bounds": meta.get("bounds", [-180.0, -85.05, 180.0, 85.05]),
        "center": meta.get("center"),
        "vector_layers": meta.get("vector_layers", []),
    }
    return JSONResponse(doc, headers={"Cache-Control": "no-cache",
                                      "Access-Control-Allow-Origin": "*"})
