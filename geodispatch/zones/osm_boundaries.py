"""Official boundaries from OpenStreetMap: administrative areas of one level as GeoJSON features.

OSM maps most countries' subdivisions as ``boundary=administrative`` relations with an
``admin_level`` (for Ukraine: 4 = oblast, 6 = raion, 7-8 = hromada; for Andorra: 7 = parish).
pyosmium assembles the multipolygons; relations cut by the extract's edge cannot be assembled
and are reported by name in ``incomplete`` instead of silently dropped.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import osmium


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9]+", "-", ascii_name).strip("-").upper()[:64] or "ZONE"


def admin_boundaries(path: Path, admin_level: int) -> tuple[dict[str, Any], list[str]]:
    """Administrative areas of ``admin_level`` in an OSM extract.

    Returns
    -------
    (dict, list of str)
        A GeoJSON FeatureCollection (properties ``code``, ``name``, ``osm_id``; the code is the
        ``ISO3166-2`` tag, else ``ref``, else the upper-case ASCII name) and the names of
        boundaries that could not be assembled (incomplete in the extract).
    """
    factory = osmium.geom.GeoJSONFactory()
    level = str(admin_level)
    features: list[dict[str, Any]] = []
    wanted: dict[int, str] = {}
    for obj in osmium.FileProcessor(str(path), osmium.osm.RELATION):
        tags = obj.tags
        if tags.get("boundary") == "administrative" and tags.get("admin_level") == level:
            wanted[obj.id] = tags.get("name") or str(obj.id)
    fp = (
        osmium.FileProcessor(str(path))
        .with_areas()
        .with_filter(osmium.filter.KeyFilter("boundary"))
    )
    found: set[int] = set()
    for obj in fp:
        if not isinstance(obj, osmium.osm.Area) or obj.from_way():
            continue
        rid = obj.orig_id()
        if rid not in wanted:
            continue
        try:
            geom = json.loads(factory.create_multipolygon(obj))
        except RuntimeError:
            continue
        tags = obj.tags
        name = tags.get("name") or wanted[rid]
        code = tags.get("ISO3166-2") or tags.get("ref") or _slug(name)
        found.add(rid)
        features.append(
            {
                "type": "Feature",
                "properties": {"code": code, "name": name, "osm_id": rid},
                "geometry": geom,
            }
        )
    incomplete = sorted(name for rid, name in wanted.items() if rid not in found)
    features.sort(key=lambda f: f["properties"]["code"])
    return {"type": "FeatureCollection", "features": features}, incomplete
