"""``geodispatch geocode ...``: import a city's addresses, and look one up from the shell.

``geodispatch geocode import [PATH ...] [--force]``
    Nominatim imports the extract(s) (default: ``GEODISPATCH_OSM_FILE``, the one the road graph
    is built from) into its own database, then the address index is rebuilt from it. Offline.
    ``graph import PATH`` runs this too (``GEODISPATCH_GEOCODE_ON_GRAPH_IMPORT``).
``geodispatch geocode search TEXT [--near LAT,LNG]`` / ``geodispatch geocode reverse LAT LNG``
    What the console would get, as JSON lines.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geodispatch.errors import InvalidInput
from geodispatch.geo import LatLng
from geodispatch.settings import Settings, get_settings


def run_import(settings: Settings, paths: Sequence[Path], *, force: bool = False) -> dict[str, Any]:
    """Import addresses from ``paths`` into the configured database (one transaction)."""
    from sqlalchemy import text

    from geodispatch.db import (
        admin_engine,
        app_engine,
        check_database,
        session_factory,
        transaction,
    )
    from geodispatch.geocoding.importer import import_addresses

    engine = app_engine(settings)
    try:
        check_database(engine)
        with transaction(session_factory(engine)) as session:
            summary = import_addresses(session=session, settings=settings, paths=paths,
                                       force=force)
    finally:
        engine.dispose()
    owner = admin_engine(settings)
    try:
        with owner.connect() as conn:  # fresh statistics for the trigram and spatial plans
            conn.execute(text("ANALYZE geocode_streets, geocode_names, geocode_features"))
            conn.commit()
    finally:
        owner.dispose()
    return dict(summary.__dict__)


def _import(args: argparse.Namespace) -> int:
    settings = get_settings()
    paths = [Path(p) for p in args.paths] or [settings.resolved_osm_file]
    s = run_import(settings, paths, force=args.force)
    print(f"addresses: {s['houses']:,} houses, {s['interpolations']:,} interpolation lines, "
          f"{s['streets']:,} streets ({s['names']:,} names), {s['areas']:,} areas, "
          f"{s['landmarks']:,} landmarks (Nominatim {s['nominatim_s']} s, index {s['index_s']} s)")
    return 0


def _near(value: str | None) -> LatLng | None:
    if not value:
        return None
    try:
        lat, lng = (float(v) for v in value.split(","))
    except ValueError:
        raise InvalidInput(f"--near wants LAT,LNG, not {value!r}") from None
    return LatLng(lat, lng)


def _result(r: Any) -> str:
    return json.dumps({"label": r.label, "lat": round(r.point.lat, 7), "lng": round(r.point.lng, 7),
                       "precision": r.precision, "method": r.method, "score": round(r.score, 3),
                       "note": r.note, "distance_m": r.distance_m}, ensure_ascii=False)


def _lookup(args: argparse.Namespace) -> int:
    from geodispatch.db import app_engine, session_factory, transaction
    from geodispatch.geocoding.service import IndexGeocoder

    settings = get_settings()
    engine = app_engine(settings)
    try:
        with transaction(session_factory(engine)) as session:
            geocoder = IndexGeocoder(session, settings)
            if args.geocode_command == "search":
                hits = geocoder.forward(args.text, near=_near(args.near), limit=args.limit)
            else:
                one = geocoder.reverse(lon=args.lng, lat=args.lat)
                hits = [one] if one is not None else []
    finally:
        engine.dispose()
    for h in hits:
        print(_result(h))
    return 0 if hits else 1


def register(sub: Any) -> None:
    """Add the ``geocode`` command family to the main parser's subparsers."""
    geo = sub.add_parser("geocode", help="addresses: import from OSM with Nominatim, look up")
    gsub = geo.add_subparsers(dest="geocode_command", metavar="ACTION", required=True)
    imp = gsub.add_parser("import", help="import a city's addresses from its OSM extract")
    imp.add_argument("paths", nargs="*", help="OSM files (default: GEODISPATCH_OSM_FILE)")
    imp.add_argument("--force", action="store_true", help="re-run Nominatim even if current")
    imp.set_defaults(func=_import)
    search = gsub.add_parser("search", help="forward geocoding of a typed address")
    search.add_argument("text")
    search.add_argument("--near", help="LAT,LNG hint (caller's position, zone centre)")
    search.add_argument("--limit", type=int, default=5)
    search.set_defaults(func=_lookup)
    rev = gsub.add_parser("reverse", help="the nearest address to a point")
    rev.add_argument("lat", type=float)
    rev.add_argument("lng", type=float)
    rev.set_defaults(func=_lookup)
