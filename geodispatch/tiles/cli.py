"""``geodispatch tiles ...``: the offline base map's vector tiles.

``geodispatch tiles build [FILE] [--out MBTILES]``
    Build the vector tiles of an OSM extract (default ``GEODISPATCH_OSM_FILE``) into
    ``GEODISPATCH_TILES_PATH`` (default ``var/tiles.mbtiles``) with tilemaker.
``geodispatch tiles info [--path MBTILES]``
    Zoom range, bounds, size and source of a built file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from geodispatch.settings import Settings, get_settings
from geodispatch.tiles.build import BuildResult, build_tiles, built_from


def describe(result: BuildResult) -> str:
    return (f"vector tiles: {result.tiles:,} tiles (z{result.minzoom}-{result.maxzoom}), "
            f"{result.bytes / 1e6:.2f} MB in {result.path} ({result.seconds:.1f} s)")


def build_for(settings: Settings, osm_file: Path, out: Path | None = None) -> BuildResult:
    """Build the configured (or given) MBTiles file from ``osm_file``."""
    return build_tiles(osm_file=osm_file, out=out or settings.resolved_tiles_path)


def _build(args: argparse.Namespace) -> int:
    settings = get_settings()
    src = Path(args.path) if args.path else settings.resolved_osm_file
    print(describe(build_for(settings, src, Path(args.out) if args.out else None)))
    return 0


def _info(args: argparse.Namespace) -> int:
    from geodispatch.tiles.mbtiles import read_metadata

    path = Path(args.path) if args.path else get_settings().resolved_tiles_path
    if not path.is_file():
        print(f"no vector tiles at {path}: run `geodispatch tiles build`")
        return 1
    meta = read_metadata(path)
    info = {k: meta.get(k) for k in ("name", "minzoom", "maxzoom", "bounds", "center")}
    info.update(bytes=path.stat().st_size, source=built_from(path),
                layers=[layer.get("id") for layer in meta.get("vector_layers", [])])
    print(json.dumps(info, indent=2))
    return 0


def register(sub: Any) -> None:
    """Add the ``tiles`` command family to the main parser's subparsers."""
    tiles = sub.add_parser("tiles", help="offline base map: build and inspect the vector tiles")
    tsub = tiles.add_subparsers(dest="tiles_command", metavar="ACTION", required=True)
    b = tsub.add_parser("build", help="build vector tiles of an OSM extract with tilemaker")
    b.add_argument("path", nargs="?", help=".osm.pbf, .osm, .osm.gz or .osm.bz2 "
                                           "(default: GEODISPATCH_OSM_FILE)")
    b.add_argument("--out", help="MBTiles file (default: GEODISPATCH_TILES_PATH or "
                                 "var/tiles.mbtiles)")
    b.set_defaults(func=_build)
    i = tsub.add_parser("info", help="zoom range, bounds, size and source of built tiles")
    i.add_argument("--path", help="MBTiles file (default: the configured one)")
    i.set_defaults(func=_info)
