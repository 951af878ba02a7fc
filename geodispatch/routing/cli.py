"""``geodispatch graph ...``: build the road graph from OSM and look at it.

``geodispatch graph import [PATH] [--out FILE] [--no-db]``
    Stream a local extract (``.osm``, ``.osm.gz``, ``.osm.bz2``, ``.osm.pbf``; default: the demo
    extract of ``GEODISPATCH_OSM_FILE``), save the compact graph (default ``var/graph.npz``),
    replace the ``road_edges`` table and import the extract's addresses (``geocode import``;
    ``--no-addresses`` or ``GEODISPATCH_GEOCODE_ON_GRAPH_IMPORT=false`` to skip) and build the
    base map's vector tiles (``tiles build``; ``--no-tiles`` or
    ``GEODISPATCH_TILES_ON_GRAPH_IMPORT=false`` to skip).
``geodispatch graph import --place NAME``
    The same from an osmnx download by place name (needs the internet).
``geodispatch graph info [--path FILE]``
    Size and provenance of a built graph.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from geodispatch.settings import get_settings

log = logging.getLogger(__name__)


def _import(args: argparse.Namespace) -> int:
    from geodispatch.routing.importer import graph_from_osmnx, import_osm_file
    from geodispatch.routing.speeds import load_speed_table

    settings = get_settings()
    t0 = time.perf_counter()
    table = load_speed_table(settings.speed_table_file)
    if args.place:
        import osmnx as ox

        print(f"downloading the drivable network of {args.place!r} with osmnx ...")
        G = ox.graph_from_place(args.place, network_type="drive", simplify=True)
        graph = graph_from_osmnx(G, speed_table=table, largest_component=not args.all_components,
                                 source=f"osmnx place {args.place}")
    else:
        path = Path(args.path) if args.path else settings.resolved_osm_file
        graph = import_osm_file(path, speed_table=table, largest_component=not args.all_components)
    out = Path(args.out) if args.out else settings.resolved_graph_path
    graph.save(out)
    summary: dict[str, Any] = graph.summary()
    print(f"graph saved to {out}: {summary['nodes']:,} nodes, {summary['edges']:,} edges "
          f"({time.perf_counter() - t0:.1f} s)")
    dropped = int(graph.meta.get("dropped_nodes", 0))
    if dropped:
        share = float(graph.meta.get("dropped_share", 0.0))
        print(f"kept the largest network that can be driven both ways: {dropped:,} of "
              f"{int(graph.meta['drivable_nodes']):,} drivable junctions ({share:.1%}) are on "
              "roads cut off from it (one-way dead ends, islands, private estates) and left out"
              + ("; that is a lot: check the extract's boundary or import with --all-components"
                 if share > 0.05 else ""))
        print(f"{graph.n_spurs:,} of the left-out road pieces stay snappable: a point on one is "
              "placed at the junction it is reached from (within the snap distance)")
    if not args.no_db:
        from geodispatch.db import app_engine, check_database, session_factory, transaction
        from geodispatch.routing.service import write_edges

        engine = app_engine(settings)
        try:
            check_database(engine)
            with transaction(session_factory(engine)) as session:
                n = write_edges(session=session, graph=graph)
        finally:
            engine.dispose()
        print(f"road_edges: {n:,} rows written")
        if not args.place and not args.no_addresses and settings.geocode_on_graph_import:
            _import_addresses(settings, path)
    if not args.place and not args.no_tiles and settings.tiles_on_graph_import:
        _build_tiles(settings, path)
    return 0


def _build_tiles(settings: Any, path: Path) -> None:
    """The same extract's vector tiles (``tiles build``); the graph stands if this fails."""
    import sys

    from geodispatch.errors import ConfigurationError
    from geodispatch.tiles.cli import build_for, describe

    try:
        print(describe(build_for(settings, path)))
    except ConfigurationError as exc:
        print(f"geodispatch: vector tiles not built: {exc} (the road graph is in place; "
              "run `geodispatch tiles build` once that is fixed)", file=sys.stderr)


def _import_addresses(settings: Any, path: Path) -> None:
    """The same extract's addresses (``geocode import``); the graph stands if this fails."""
    import sys

    from geodispatch.errors import ConfigurationError
    from geodispatch.geocoding.cli import run_import

    try:
        s = run_import(settings, [path])
    except ConfigurationError as exc:
        print(f"geodispatch: addresses not imported: {exc} (the road graph is in place; "
              "run `geodispatch geocode import` once that is fixed)", file=sys.stderr)
        return
    print(f"addresses: {s['houses']:,} houses, {s['streets']:,} streets, "
          f"{s['interpolations']:,} interpolation lines, {s['landmarks']:,} landmarks")


def _info(args: argparse.Namespace) -> int:
    from geodispatch.routing.graph import RoadGraph

    path = Path(args.path) if args.path else get_settings().resolved_graph_path
    if not path.exists():
        print(f"no graph at {path}: run `geodispatch graph import`")
        return 1
    t0 = time.perf_counter()
    graph = RoadGraph.load(path)
    info = dict(graph.summary(), load_s=round(time.perf_counter() - t0, 3),
                source=graph.meta.get("source"), built_at=graph.meta.get("built_at"))
    print(json.dumps(info, indent=2))
    return 0


def register(sub: Any) -> None:
    """Add the ``graph`` command family to the main parser's subparsers."""
    graph = sub.add_parser("graph", help="road graph: import OpenStreetMap, inspect")
    gsub = graph.add_subparsers(dest="graph_command", metavar="ACTION", required=True)
    imp = gsub.add_parser("import", help="build the road graph from an OSM file or a place name")
    src = imp.add_mutually_exclusive_group()
    src.add_argument("path", nargs="?", help=".osm, .osm.gz, .osm.bz2 or .osm.pbf "
                                            "(default: GEODISPATCH_OSM_FILE)")
    src.add_argument("--place", help="download by place name with osmnx (needs the internet)")
    imp.add_argument("--out", help="graph file (default: GEODISPATCH_GRAPH_PATH or var/graph.npz)")
    imp.add_argument("--no-db", action="store_true", help="do not write the road_edges table")
    imp.add_argument("--no-addresses", action="store_true",
                     help="do not import the extract's addresses (geocode import)")
    imp.add_argument("--no-tiles", action="store_true",
                     help="do not build the base map's vector tiles (tiles build)")
    imp.add_argument("--all-components", action="store_true",
                     help="keep roads not connected both ways to the main network")
    imp.set_defaults(func=_import)
    info = gsub.add_parser("info", help="size and provenance of a built graph")
    info.add_argument("--path", help="graph file (default: the configured one)")
    info.set_defaults(func=_info)
