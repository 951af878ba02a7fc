"""Coverage over the real Andorra road graph with the routing engine's Router."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from geodispatch.geo import LatLng
from geodispatch.routing import engine
from geodispatch.settings import Settings
from geodispatch.zones.coverage import compute_coverage, coverage_geojson
from geodispatch.zones.generation import GeneratedZones
from geodispatch.zones.index import ZoneIndex


@pytest.fixture(scope="module")
def andorra_router(andorra_pbf: Path) -> Any:
    from geodispatch.routing.importer import import_osm_file

    return engine.Router(import_osm_file(andorra_pbf, progress=False))


def test_andorra_coverage_with_router(
    andorra: GeneratedZones, db: Session, settings: Settings, andorra_router: Any
) -> None:
    """Two crews in Andorra la Vella and Encamp: nearby cells covered in 5 min, the far north not;
    a longer target covers a superset."""
    index = ZoneIndex.load(db, settings)
    crews = [LatLng(42.5078, 1.5211), LatLng(42.5345, 1.5805)]
    cells = index.cells(region="ADX")
    five = compute_coverage(router=andorra_router, sources=crews, target_s=300.0,
                            res=settings.h3_zone_res, cells=cells)
    assert five.cells_total == len(cells)
    assert 0 < five.cells_covered < five.cells_total
    covered = {c for c in five.cell_times if c not in set(five.gap_cells)}
    for crew in crews:
        assert int(crew.h3_cell(index.res), 16) in covered
    twenty = compute_coverage(router=andorra_router, sources=crews, target_s=1200.0,
                              res=settings.h3_zone_res, cells=cells)
    assert set(twenty.gap_cells) <= set(five.gap_cells)
    assert twenty.cells_covered > five.cells_covered
    assert set(twenty.no_road_cells) == set(five.no_road_cells)  # mountains without roads
    layer = coverage_geojson(twenty)
    assert layer["properties"]["crews"] == 2
