"""Real boundaries: Andorra's parishes from the OSM extract imported as districts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from h3.api import basic_int as h3i
from sqlalchemy.orm import Session

from geodispatch.geo import LatLng
from geodispatch.settings import Settings
from geodispatch.zones.generation import GeneratedZones
from geodispatch.zones.geojson import import_geojson, plan_import
from geodispatch.zones.index import ZoneIndex
from geodispatch.zones.osm_boundaries import admin_boundaries

ANDORRA_LA_VELLA = LatLng(42.5078, 1.5211)
CANILLO = LatLng(42.5676, 1.5976)


@pytest.fixture(scope="module")
def parishes(andorra_pbf: Path) -> tuple[dict[str, Any], list[str]]:
    return admin_boundaries(andorra_pbf, 7)


def test_parishes_read(parishes: tuple[dict[str, Any], list[str]]) -> None:
    """Six parishes assemble; Canillo, cut by the extract's edge, is reported as incomplete."""
    fc, incomplete = parishes
    codes = [f["properties"]["code"] for f in fc["features"]]
    assert len(codes) == 6 and "ANDORRA-LA-VELLA" in codes and "ORDINO" in codes
    assert "Canillo" in incomplete


def test_parishes_validate_against_generated_region(
    andorra: GeneratedZones, db: Session, settings: Settings,
    parishes: tuple[dict[str, Any], list[str]],
) -> None:
    """Neighbouring parishes do not overlap; the missing Canillo shows up as uncovered cells."""
    specs, report = plan_import(session=db, geojson=parishes[0], level="district",
                                settings=settings)
    assert report.overlaps == [] and len(specs) == 6
    assert all(s.parent_id == andorra.region.id and s.region == "ADX" for s in specs)
    assert h3i.latlng_to_cell(*CANILLO, settings.h3_zone_res) in set(report.uncovered_cells)
    alv = next(s for s in specs if s.code == "ANDORRA-LA-VELLA")
    assert h3i.latlng_to_cell(*ANDORRA_LA_VELLA, settings.h3_zone_res) in alv.cells


def test_parishes_import_and_lookup(
    db: Session, settings: Settings, parishes: tuple[dict[str, Any], list[str]]
) -> None:
    """Imported parishes answer point look-ups by name."""
    report = import_geojson(session=db, geojson=parishes[0], level="district", region="AD",
                            settings=settings)
    assert report.change is not None and len(report.change.created) == 6
    index = ZoneIndex.load(db, settings)
    ref = index.lookup(ANDORRA_LA_VELLA)
    assert ref.district_id is not None and ref.region == "AD"
    assert index.zones[ref.district_id].name == "Andorra la Vella"
