"""Zone fixtures: the Andorra extract's extent and zones generated over it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from geodispatch.settings import Settings
from geodispatch.zones.extent import osm_road_extent
from geodispatch.zones.generation import GeneratedZones, generate_zones


@pytest.fixture(scope="session")
def andorra_pbf(data_dir: Path) -> Path:
    return data_dir / "osm" / "andorra_2013.osm.pbf"


@pytest.fixture(scope="session")
def andorra_bbox(andorra_pbf: Path) -> tuple[float, float, float, float]:
    return osm_road_extent(andorra_pbf)


@pytest.fixture()
def andorra(
    db: Session, settings: Settings, andorra_bbox: tuple[float, float, float, float]
) -> GeneratedZones:
    """Andorra as country AD with one region AD-X, generated districts and sectors."""
    return generate_zones(
        session=db, bbox=andorra_bbox, country_code="AD", region_code="ADX", settings=settings
    )
