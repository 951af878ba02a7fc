"""Zones from and to GeoJSON: plan an import of official polygons (what would change, overlaps,
cells left out), apply it through the versioning core, and serve the current zones as GeoJSON."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

from shapely.geometry import Polygon, mapping, shape
from shapely.ops import unary_union
from sqlalchemy import select
from sqlalchemy.orm import Session

from geodispatch.errors import InvalidInput
from geodispatch.settings import Settings, get_settings
from geodispatch.zones import cells as hc
from geodispatch.zones.models import Zone
from geodispatch.zones.service import (
    ImportReport,
    Overlap,
    ZoneSpec,
    _check_level,
    _level_cells,
    _majority_parent,
    _parent_level,
    apply_level,
)

log = logging.getLogger(__name__)


def _features(geojson: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    kind = geojson.get("type")
    if kind == "FeatureCollection":
        return list(geojson.get("features") or [])
    if kind == "Feature":
        return [geojson]
    raise InvalidInput("expected a GeoJSON FeatureCollection or Feature")


def plan_import(
    *,
    session: Session,
    geojson: Mapping[str, Any],
    level: str,
    region: str | None = None,
    code_property: str = "code",
    name_property: str = "name",
    settings: Settings | None = None,
) -> tuple[list[ZoneSpec], ImportReport]:
    """Turn polygons into zone specs and validate them, without writing anything.

    Parameters
    ----------
    geojson : mapping
        FeatureCollection of Polygon/MultiPolygon features in WGS 84 (``lng, lat``).
    level : str
        Level of every feature.
    region : str, optional
        Region code for every feature; otherwise the feature's ``region`` property, the parent
        zone's region, the feature's own code for ``level="region"``, or the default region.
    code_property, name_property : str
        Feature properties holding the zone code and name (code falls back to the feature id).

    Returns
    -------
    (list of ZoneSpec, ImportReport)
        Specs have disjoint cells (a cell claimed by several features goes to the first, and is
        reported as an overlap).

    Notes
    -----
    *Uncovered* cells are those of the parent level's current zones that no feature covers; when
    there is no parent level data, the holes inside the features' outer outline (gaps between
    neighbouring polygons large enough to hold a cell centre).
    """
    _check_level(level)
    settings = settings or get_settings()
    res = settings.h3_zone_res
    feats = _features(geojson)
    parent_level = _parent_level(level)
    parent_map = _level_cells(session=session, level=parent_level) if parent_level else {}
    owner: dict[int, str] = {}
    pair_counts: Counter[tuple[str, str]] = Counter()
    overlap_cells: set[int] = set()
    specs: list[ZoneSpec] = []
    empty: list[str] = []
    geoms = []
    for i, f in enumerate(feats):
        props = dict(f.get("properties") or {})
        code = str(props.get(code_property) or f.get("id") or f"{level}-{i + 1}")
        name = str(props.get(name_property) or code)
        geom_json = f.get("geometry")
        if not geom_json or geom_json.get("type") not in ("Polygon", "MultiPolygon"):
            raise InvalidInput(f"feature {code}: geometry must be a Polygon or MultiPolygon")
        g = shape(geom_json)
        if not g.is_valid:
            g = g.buffer(0)
        geoms.append(g)
        cells = hc.geometry_to_cells(g, res)
        mine: set[int] = set()
        for c in cells:
            other = owner.get(c)
            if other is not None and other != code:
                pair_counts[(other, code)] += 1
                overlap_cells.add(c)
                continue
            owner[c] = code
            mine.add(c)
        if not mine:
            empty.append(code)
            continue
        parent_id = _majority_parent(mine, parent_map) if parent_map else None
        zone_region = region or props.get("region")
        if not zone_region and parent_id is not None:
            parent = session.get(Zone, parent_id)
            zone_region = parent.region if parent else None
        if not zone_region:
            zone_region = code if level == "region" else settings.default_region
        if level == "country":
            zone_region = code
        specs.append(ZoneSpec(code, name, level, str(zone_region), mine, parent_id))
    covered = set(owner)
    if parent_map:
        if region:
            scope = {
                c for c, z in parent_map.items()
                if (zz := session.get(Zone, z)) is not None and zz.region == region
            }
        else:
            scope = set(parent_map)
        uncovered = scope - covered
    elif geoms:
        outline = unary_union(geoms)
        parts = getattr(outline, "geoms", [outline])
        filled = unary_union([Polygon(p.exterior) for p in parts])
        uncovered = hc.geometry_to_cells(mapping(filled), res) - covered
    else:
        uncovered = set()
    report = ImportReport(
        level=level,
        features=len(feats),
        cells=len(covered),
        overlaps=[Overlap(a, b, n) for (a, b), n in sorted(pair_counts.items())],
        overlap_cells=sorted(overlap_cells),
        uncovered_cells=sorted(uncovered),
        empty_features=empty,
    )
    return specs, report


def import_geojson(
    *,
    session: Session,
    geojson: Mapping[str, Any],
    level: str,
    region: str | None = None,
    code_property: str = "code",
    name_property: str = "name",
    settings: Settings | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Import polygons as zones of ``level`` (validate, then version what changed).

    See :func:`plan_import` for validation and :func:`apply_level` for versioning.
    """
    specs, report = plan_import(
        session=session,
        geojson=geojson,
        level=level,
        region=region,
        code_property=code_property,
        name_property=name_property,
        settings=settings,
    )
    if dry_run or not specs:
        return report
    report.change = apply_level(session=session, level=level, specs=specs, settings=settings)
    report.applied = True
    return report




def zones_feature_collection(
    *, session: Session, level: str, region: str | None = None
) -> dict[str, Any]:
    """Current zones of one level as a GeoJSON FeatureCollection (``lng, lat``)."""
    _check_level(level)
    q = (
        select(Zone, Zone.geom.ST_AsGeoJSON())
        .where(Zone.valid_to.is_(None), Zone.level == level)
        .order_by(Zone.code)
    )
    if region is not None:
        q = q.where(Zone.region == region)

    features = []
    for zone, geom in session.execute(q).all():
        features.append(
            {
                "type": "Feature",
                "id": zone.id,
                "geometry": json.loads(geom) if geom else None,
                "properties": {
                    "id": zone.id,
                    "code": zone.code,
                    "name": zone.name,
                    "level": zone.level,
                    "region": zone.region,
                    "parent_id": zone.parent_id,
                    "cells": len(hc.uncompact(zone.cells, zone.res)),
                    "valid_from": zone.valid_from.isoformat() if zone.valid_from else None,
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}
