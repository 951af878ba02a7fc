"""``geodispatch zones ...``: import, generate and validate zones; report coverage."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session


@contextmanager
def _session(*, commit: bool = True) -> Iterator[Session]:
    from geodispatch.db import app_engine, check_database, session_factory
    from geodispatch.settings import get_settings

    engine = app_engine(get_settings())
    check_database(engine)
    try:
        with session_factory(engine)() as session:
            try:
                yield session
            except BaseException:
                session.rollback()
                raise
            if commit:
                session.commit()
            else:
                session.rollback()
    finally:
        engine.dispose()


def _friendly(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Domain errors become one line on stderr and exit status 2, not a traceback."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        from geodispatch.errors import ConfigurationError, GeodispatchError

        try:
            return func(args)
        except ConfigurationError:
            raise
        except GeodispatchError as exc:
            print(f"geodispatch zones: {exc}", file=sys.stderr)
            return 2

    return run


def _print(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


OSM_SUFFIXES = (".pbf", ".osm", ".gz", ".bz2")


def _read_features(path: Path, admin_level: int | None) -> dict[str, Any]:
    """GeoJSON from a file, or the administrative areas of an OSM extract (``--admin-level``)."""
    from geodispatch.errors import InvalidInput

    if path.suffix in OSM_SUFFIXES:
        from geodispatch.zones.osm_boundaries import admin_boundaries

        if admin_level is None:
            raise InvalidInput("an OSM extract needs --admin-level (e.g. 4 oblast, 6 raion)")
        fc, incomplete = admin_boundaries(path, admin_level)
        if incomplete:
            print(f"not assembled (cut by the extract): {', '.join(incomplete)}", file=sys.stderr)
        return fc
    return _read_geojson(path)


def _read_geojson(path: Path) -> dict[str, Any]:
    from geodispatch.errors import InvalidInput

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: not a GeoJSON object")
    return data


def _import(args: argparse.Namespace) -> int:
    from geodispatch.zones.geojson import import_geojson

    dry = bool(getattr(args, "dry_run", False))
    with _session(commit=not dry) as session:
        report = import_geojson(
            session=session,
            geojson=_read_features(args.file, args.admin_level),
            level=args.level,
            region=args.region,
            code_property=args.code_property,
            name_property=args.name_property,
            dry_run=dry,
        )
        _print(report.summary())
    return 1 if report.overlaps and args.strict else 0


def _validate(args: argparse.Namespace) -> int:
    from geodispatch.zones.geojson import plan_import
    from geodispatch.zones.service import validate_hierarchy

    with _session(commit=False) as session:
        if args.file is None:
            _print(validate_hierarchy(session=session))
            return 0
        if not args.level:
            raise SystemExit("zones validate FILE needs --level")
        _, report = plan_import(
            session=session,
            geojson=_read_features(args.file, args.admin_level),
            level=args.level,
            region=args.region,
            code_property=args.code_property,
            name_property=args.name_property,
        )
        out = report.summary()
        out["uncovered_cell_ids"] = [f"{c:x}" for c in report.uncovered_cells[:1000]]
        _print(out)
    return 0


def _generate(args: argparse.Namespace) -> int:
    from geodispatch.settings import get_settings
    from geodispatch.zones.extent import osm_road_extent
    from geodispatch.zones.generation import generate_zones

    if args.bbox:
        parts = [float(v) for v in args.bbox.split(",")]
        if len(parts) != 4:
            raise SystemExit("--bbox needs min_lat,min_lng,max_lat,max_lng")
        bbox = (parts[0], parts[1], parts[2], parts[3])
    elif args.osm is None and get_settings().resolved_graph_path.exists():
        from geodispatch.routing.graph import RoadGraph

        bbox = RoadGraph.load(get_settings().resolved_graph_path).bbox()
    else:
        bbox = osm_road_extent(args.osm or get_settings().resolved_osm_file)
    with _session() as session:
        gen = generate_zones(
            session=session,
            bbox=bbox,
            country_code=args.country,
            region_code=args.region,
            district_res=args.district_res,
            sector_res=args.sector_res,
            country_name=args.country_name,
            region_name=args.region_name,
        )
        _print(
            {
                "bbox": bbox,
                "country": gen.country.code,
                "region": gen.region.code,
                "districts": len(gen.districts),
                "sectors": len(gen.sectors),
            }
        )
    return 0


def _coverage(args: argparse.Namespace) -> int:
    from geodispatch.errors import ConfigurationError
    from geodispatch.settings import get_settings
    from geodispatch.zones.coverage import compute_coverage, coverage_geojson, database_sources
    from geodispatch.zones.index import ZoneIndex

    settings = get_settings()
    try:
        from geodispatch.routing.engine import load_router
    except ImportError:
        raise ConfigurationError("routing engine not installed") from None
    router = load_router(settings)
    if router is None:
        raise ConfigurationError("no road graph built yet: run `geodispatch routing build` first")
    with _session(commit=False) as session:
        index = ZoneIndex.load(session, settings)
        sources = database_sources(
            session=session, stale_after_s=settings.stale_after_s, region=args.region
        )
    result = compute_coverage(
        router=router,
        sources=sources,
        target_s=args.minutes * 60.0,
        res=settings.h3_zone_res,
        cells=index.cells(region=args.region) or None,
    )
    out = result.summary()
    out["gaps"] = result.gaps_hex()[: args.max_gaps]
    _print(out)
    if args.geojson:
        args.geojson.write_text(json.dumps(coverage_geojson(result, merge=not args.per_cell)))
    return 0


def _add_file_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--admin-level", type=int, default=None,
        help="FILE is an OSM extract: import its boundary=administrative areas of this level",
    )
    p.add_argument("--region", default=None, help="region code for every feature")
    p.add_argument("--code-property", default="code", help="feature property with the zone code")
    p.add_argument("--name-property", default="name", help="feature property with the zone name")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from geodispatch.zones.models import LEVELS

    p = sub.add_parser("zones", help="patrol sectors, districts, regions (H3 cell sets)")
    s = p.add_subparsers(dest="zones_command", metavar="ACTION", required=True)

    imp = s.add_parser(
        "import", help="import zones of one level from GeoJSON polygons (or OSM boundaries)"
    )
    imp.add_argument("file", type=Path)
    imp.add_argument("--level", required=True, choices=LEVELS)
    _add_file_options(imp)
    imp.add_argument("--dry-run", action="store_true", help="validate only")
    imp.add_argument("--strict", action="store_true", help="exit 1 when polygons overlap")
    imp.set_defaults(func=_friendly(_import))

    val = s.add_parser("validate", help="check stored zones, or a GeoJSON file before import")
    val.add_argument("file", type=Path, nargs="?")
    val.add_argument("--level", choices=LEVELS)
    _add_file_options(val)
    val.set_defaults(func=_friendly(_validate))

    gen = s.add_parser("generate", help="generate a region with districts and sectors (H3 parents)")
    gen.add_argument("--country", required=True, help="country code, e.g. UA")
    gen.add_argument("--region", required=True, help="region code, e.g. KV")
    gen.add_argument("--country-name")
    gen.add_argument("--region-name")
    gen.add_argument(
        "--osm", type=Path,
        help="OSM extract whose road extent to cover (default: the built road graph's extent, "
        "else settings.osm_file)",
    )
    gen.add_argument("--bbox", help="min_lat,min_lng,max_lat,max_lng instead of --osm")
    gen.add_argument("--district-res", type=int, default=None)
    gen.add_argument("--sector-res", type=int, default=None)
    gen.set_defaults(func=_friendly(_generate))

    cov = s.add_parser("coverage", help="cells an available crew reaches within X minutes")
    cov.add_argument("--minutes", type=float, default=10.0)
    cov.add_argument("--region", default=None)
    cov.add_argument("--geojson", type=Path, help="write the map layer here")
    cov.add_argument("--per-cell", action="store_true", help="one feature per cell in the layer")
    cov.add_argument("--max-gaps", type=int, default=200, help="gap cells listed in the output")
    cov.set_defaults(func=_friendly(_coverage))
