"""Import a city's addresses: Nominatim builds its database from the extract, we index it.

Two steps, both offline:

1. :func:`nominatim_import` runs Nominatim's own importer (``nominatim-db``, which drives
   ``osm2pgsql``) on the extract(s) into a database of its own on the project's PostgreSQL
   (``GEODISPATCH_GEOCODE_DATABASE``, default ``<database>_nominatim``). osm2pgsql wants sorted
   input, so each file is first sorted with ``osmium sort`` into ``var/nominatim/``. Nominatim
   works out what a call-taker cannot: which street each house belongs to, the houses along
   ``addr:interpolation`` ways, building centroids, countries. The import is skipped when the
   database already holds the same files (a fingerprint of their bytes, the style and the
   Nominatim version is kept in it).
2. :func:`build_index` reads streets, houses, interpolation lines, named areas and landmarks
   from Nominatim's tables and writes the project's address index
   (:mod:`geodispatch.geocoding.models`): same-named ways that hang together become one street,
   every name variant is keyed with :func:`~geodispatch.geocoding.text.core_key`, houses are
   tied to their street. It replaces the whole index, in the caller's transaction.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import shapely
from shapely import wkb
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Engine, create_engine, delete, insert, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

from geodispatch.errors import ConfigurationError
from geodispatch.geocoding.models import GeocodeFeature, GeocodeName, GeocodeStreet
from geodispatch.geocoding.text import core_key, housenumber_key, housenumber_value, street_type
from geodispatch.settings import Settings

log = logging.getLogger(__name__)

#: Countries whose addresses put the number before the street ("750 East Pratt Street").
NUMBER_FIRST = frozenset({"us", "ca", "gb", "ie", "au", "nz", "za", "in", "ph", "fr", "lu"})
_NAME_KEYS = ("name", "old_name", "alt_name", "official_name", "short_name", "loc_name")
_FINGERPRINT_TABLE = "geodispatch_import"


@dataclass(frozen=True)
class IndexSummary:
    """What one import wrote."""

    streets: int
    names: int
    houses: int
    interpolations: int
    areas: int
    landmarks: int
    nominatim_s: float
    index_s: float


def nominatim_url(settings: Settings, *, admin: bool = True) -> URL:
    """The URL of Nominatim's database (the owner's credentials, or the application role's)."""
    base = make_url(settings.admin_database_url if admin else settings.database_url)
    name = settings.geocode_database or f"{base.database or 'geodispatch'}_nominatim"
    return base.set(database=name)


def _dsn(url: URL) -> str:
    parts = {"dbname": url.database, "host": url.host, "port": url.port, "user": url.username,
             "password": url.password}
    return "pgsql:" + ";".join(f"{k}={v}" for k, v in parts.items() if v not in (None, ""))


def _fingerprint(paths: Sequence[Path], style: str) -> str:
    h = hashlib.sha256(f"{style}|nominatim-db {version('nominatim-db')}".encode())
    for p in sorted(paths):
        h.update(p.name.encode())
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _stored_fingerprint(url: URL) -> str | None:
    eng = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"),
                                  {"d": url.database}).first()
    finally:
        eng.dispose()
    if not exists:
        return None
    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            if conn.execute(text("SELECT to_regclass(:t)"), {"t": _FINGERPRINT_TABLE}).scalar():
                value = conn.execute(text(f"SELECT fingerprint FROM {_FINGERPRINT_TABLE}")).scalar()
                return str(value) if value else None
    finally:
        eng.dispose()
    return None


def _tool(name: str, package: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise ConfigurationError(f"`{name}` not found: install {package} "
                                 "(scripts/services.sh does)")
    return found


def nominatim_import(*, settings: Settings, paths: Sequence[Path], force: bool = False) -> bool:
    """Build Nominatim's database from ``paths`` unless it already holds them; True if built.

    Raises ConfigurationError (one line, what to do) when a tool is missing or the import fails.
    """
    for p in paths:
        if not p.is_file():
            raise ConfigurationError(f"no OSM file at {p}")
    url = nominatim_url(settings)
    style = settings.geocode_nominatim_style
    fingerprint = _fingerprint(paths, style)
    if not force and _stored_fingerprint(url) == fingerprint:
        log.info("Nominatim database %s already holds these files", url.database)
        return False
    osmium = _tool("osmium", "the Debian package osmium-tool")
    nominatim = _tool("nominatim", "nominatim-db (pip) and osm2pgsql (Debian)")
    _tool("osm2pgsql", "the Debian package osm2pgsql")
    work = settings.var_dir / "nominatim" / str(url.database)
    work.mkdir(parents=True, exist_ok=True)
    sorted_files = []
    for n, p in enumerate(paths):
        out = work / f"input-{n}.osm.pbf"
        _run([osmium, "sort", "--overwrite", "-o", str(out), str(p)], what=f"osmium sort {p}")
        sorted_files.append(out)
    eng = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :d AND pid <> pg_backend_pid()"),
                         {"d": url.database})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}"'))
    finally:
        eng.dispose()
    env = dict(os.environ, NOMINATIM_DATABASE_DSN=_dsn(url),
               NOMINATIM_DATABASE_WEBUSER=settings.app_db_role,
               NOMINATIM_IMPORT_STYLE=style, PGPASSWORD=url.password or "")
    cmd = [nominatim, "import", "--project-dir", str(work), "--offline", "--no-updates",
           "--no-partitions", "--threads", str(max(1, min(4, os.cpu_count() or 1)))]
    for f in sorted_files:
        cmd += ["--osm-file", str(f)]
    _run(cmd, what="nominatim import", env=env, cwd=work)
    eng = create_engine(url)
    try:
        with eng.begin() as conn:
            conn.execute(text(f"CREATE TABLE {_FINGERPRINT_TABLE} (fingerprint text, files text)"))
            conn.execute(text(f"INSERT INTO {_FINGERPRINT_TABLE} VALUES (:f, :n)"),
                         {"f": fingerprint, "n": ", ".join(str(p) for p in paths)})
    finally:
        eng.dispose()
    for f in sorted_files:
        f.unlink(missing_ok=True)
    return True


def _run(cmd: list[str], *, what: str, env: dict[str, str] | None = None,
         cwd: Path | None = None) -> None:
    log.info("running %s", " ".join(cmd))
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ConfigurationError(f"{what} failed ({done.returncode}): {' | '.join(tail)}")


# --- step 2: the index ---------------------------------------------------------------------------

_STREETS_SQL = """
WITH ways AS (
    SELECT place_id, name, country_code, geometry, lower(name->'name') AS lname
    FROM placex
    WHERE name ? 'name' AND ((class = 'highway' AND rank_address BETWEEN 26 AND 27)
                             OR (class = 'place' AND type = 'square'))
), clustered AS (
    SELECT *, ST_ClusterDBSCAN(ST_Transform(geometry, 3857), eps := :eps, minpoints := 1)
              OVER (PARTITION BY lname) AS cl
    FROM ways
)
SELECT lname, cl, array_agg(place_id) AS place_ids,
       jsonb_agg(hstore_to_jsonb(name)) AS names, min(country_code) AS country,
       ST_AsBinary(ST_Collect(geometry)) AS geom
FROM clustered GROUP BY lname, cl
"""
_HOUSES_SQL = """
SELECT p.osm_type, p.osm_id, p.address->'housenumber' AS hn,
       coalesce(p.address->'street', p.address->'place', s.name->'name') AS street,
       p.parent_place_id, p.name->'name' AS name, p.country_code, ST_AsBinary(p.centroid) AS geom
FROM placex p LEFT JOIN placex s ON s.place_id = p.parent_place_id
WHERE p.address ? 'housenumber'
"""
_INTERPOLATIONS_SQL = """
SELECT o.osm_id, o.startnumber, o.endnumber, o.step,
       coalesce(o.address->'street', o.address->'place', s.name->'name') AS street,
       o.parent_place_id, o.country_code, ST_AsBinary(o.linegeo) AS geom
FROM location_property_osmline o LEFT JOIN placex s ON s.place_id = o.parent_place_id
WHERE o.startnumber IS NOT NULL AND o.endnumber IS NOT NULL
"""
_AREAS_SQL = """
SELECT osm_type, osm_id, name->'name' AS name, ST_AsBinary(centroid) AS geom,
       CASE WHEN rank_search = 30 THEN 'poi' ELSE 'area' END AS kind
FROM placex
WHERE name ? 'name' AND NOT (class = 'highway' OR (class = 'place' AND type = 'square'))
  AND ((rank_address BETWEEN 13 AND 25) OR (rank_search = 30 AND class NOT IN
       ('boundary', 'place', 'waterway', 'railway', 'power', 'barrier')))
"""


@dataclass
class _Street:
    id: int
    name: str
    names: set[str]
    country: str | None
    geom: BaseGeometry
    source: str


def _label(street: str, hn: str, country: str | None) -> str:
    return f"{hn} {street}" if (country or "") in NUMBER_FIRST else f"{street}, {hn}"


def _split_numbers(hn: str) -> list[str]:
    return [h.strip() for h in hn.replace(",", ";").split(";") if h.strip()]


class _Streets:
    """The streets found so far, by key, to tie each house to the nearest of its name."""

    def __init__(self) -> None:
        self.rows: list[_Street] = []
        self.by_place: dict[int, int] = {}
        self.by_key: dict[str, list[int]] = defaultdict(list)
        self._pending: dict[tuple[str, int], list[BaseGeometry]] = {}

    def add(self, name: str, names: Iterable[str], country: str | None, geom: BaseGeometry,
            source: str, place_ids: Iterable[int] = ()) -> int:
        sid = len(self.rows) + 1
        self.rows.append(_Street(sid, name, set(names) | {name}, country, geom, source))
        for n in self.rows[-1].names:
            key = core_key(n)
            if key and sid not in self.by_key[key]:
                self.by_key[key].append(sid)
        for pid in place_ids:
            self.by_place[int(pid)] = sid
        return sid

    def find(self, street: str, parent: int | None, point: BaseGeometry,
             max_m: float) -> int | None:
        key = core_key(street)
        sid = self.by_place.get(int(parent)) if parent is not None else None
        if sid is not None and key in {core_key(n) for n in self.rows[sid - 1].names}:
            return sid
        best, best_d = None, max_m / 111_320.0
        for cand in self.by_key.get(key, ()):
            d = self.rows[cand - 1].geom.distance(point)
            if d <= best_d:
                best, best_d = cand, d
        return best


def _read(conn: Any, sql: str, **params: Any) -> list[Any]:
    return list(conn.execute(text(sql), params).mappings())


def build_index(*, session: Session, settings: Settings, source: Engine | None = None
                ) -> IndexSummary:
    """Replace the address index with what Nominatim's database holds (flushes, no commit)."""
    t0 = time.perf_counter()
    eng = source or create_engine(nominatim_url(settings))
    try:
        with eng.connect() as conn:
            street_rows = _read(conn, _STREETS_SQL, eps=settings.geocode_street_cluster_m)
            house_rows = _read(conn, _HOUSES_SQL)
            interp_rows = _read(conn, _INTERPOLATIONS_SQL)
            area_rows = _read(conn, _AREAS_SQL)
    finally:
        if source is None:
            eng.dispose()
    streets = _Streets()
    for r in street_rows:
        values: dict[str, int] = defaultdict(int)
        primary: dict[str, int] = defaultdict(int)
        for pairs in r["names"]:
            for k, v in pairs.items():
                if k in _NAME_KEYS or k.startswith("name:"):
                    values[v] += 1
            if "name" in pairs:
                primary[pairs["name"]] += 1
        name = max(primary, key=lambda n: primary[n])
        streets.add(name, values, r["country"], wkb.loads(bytes(r["geom"])), "road",
                    r["place_ids"])
    features: list[dict[str, Any]] = []
    orphans: dict[str, list[tuple[dict[str, Any], BaseGeometry]]] = defaultdict(list)
    max_m = settings.geocode_house_street_max_m
    houses = 0
    for r in house_rows:
        if not r["street"] or not r["hn"]:
            continue
        point = wkb.loads(bytes(r["geom"]))
        sid = streets.find(r["street"], r["parent_place_id"], point, max_m)
        for hn in _split_numbers(r["hn"]):
            row = {"kind": "house", "street_id": sid, "housenumber": hn,
                   "hn_key": housenumber_key(hn)[:32], "hn_value": housenumber_value(hn),
                   "name": r["name"], "key": core_key(r["name"]) if r["name"] else None,
                   "label": _label(r["street"], hn, r["country_code"]),
                   "osm_type": r["osm_type"], "osm_id": r["osm_id"], "geom": point.wkt}
            houses += 1
            if sid is None:
                orphans[r["street"]].append((row, point))
            else:
                features.append(row)
    # Streets the road data does not have (outside the extract, footpaths without a name):
    # one street per name made of its houses' points, so the houses are still found.
    for name, items in orphans.items():
        sid = streets.add(name, [name], None, shapely.MultiPoint([p for _, p in items]),
                          "addresses")
        for row, _p in items:
            row["street_id"] = sid
            features.append(row)
    interpolations = 0
    for r in interp_rows:
        if not r["street"]:
            continue
        line = wkb.loads(bytes(r["geom"]))
        sid = streets.find(r["street"], r["parent_place_id"], line.centroid, max_m)
        if sid is None:
            continue
        interpolations += 1
        features.append({"kind": "interpolation", "street_id": sid, "housenumber": None,
                         "hn_key": None, "hn_value": None, "start_value": r["startnumber"],
                         "end_value": r["endnumber"], "step": max(1, int(r["step"] or 1)),
                         "name": None, "key": None,
                         "label": f"{r['street']} {r['startnumber']}-{r['endnumber']}",
                         "osm_type": "W", "osm_id": r["osm_id"], "geom": line.wkt})
    counts = {"area": 0, "poi": 0}
    for r in area_rows:
        key = core_key(r["name"])
        if not key:
            continue
        counts[r["kind"]] += 1
        features.append({"kind": r["kind"], "street_id": None, "housenumber": None,
                         "hn_key": None, "hn_value": None, "name": r["name"], "key": key,
                         "label": r["name"], "osm_type": r["osm_type"], "osm_id": r["osm_id"],
                         "geom": wkb.loads(bytes(r["geom"])).wkt})
    session.execute(delete(GeocodeFeature))
    session.execute(delete(GeocodeName))
    session.execute(delete(GeocodeStreet))
    street_values = [{"id": s.id, "name": s.name, "street_type": street_type(s.name),
                      "area": None, "country": s.country, "source": s.source,
                      "geom": f"SRID=4326;{s.geom.wkt}"} for s in streets.rows]
    name_values = [{"street_id": s.id, "name": n, "key": core_key(n)}
                   for s in streets.rows for n in sorted(s.names) if core_key(n)]
    for row in features:
        row["geom"] = f"SRID=4326;{row['geom']}"
        for k in ("start_value", "end_value", "step"):
            row.setdefault(k, None)
    for table, rows in ((GeocodeStreet, street_values), (GeocodeName, name_values),
                        (GeocodeFeature, features)):
        for start in range(0, len(rows), 5000):
            session.execute(insert(table), rows[start:start + 5000])
    session.flush()
    return IndexSummary(streets=len(street_values), names=len(name_values), houses=houses,
                        interpolations=interpolations, areas=counts["area"],
                        landmarks=counts["poi"], nominatim_s=0.0,
                        index_s=round(time.perf_counter() - t0, 2))


def import_addresses(*, session: Session, settings: Settings, paths: Sequence[Path],
                     force: bool = False) -> IndexSummary:
    """Both steps: Nominatim's import (skipped when it is current), then the index."""
    t0 = time.perf_counter()
    nominatim_import(settings=settings, paths=paths, force=force)
    t1 = time.perf_counter()
    summary = build_index(session=session, settings=settings)
    return IndexSummary(**{**summary.__dict__, "nominatim_s": round(t1 - t0, 2)})
