"""Generated zones on the real Andorra extract: a nested, gap-free, overlap-free hierarchy."""

from __future__ import annotations

from h3.api import basic_int as h3i
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from geodispatch.settings import Settings
from geodispatch.zones import cells as hc
from geodispatch.zones.generation import GeneratedZones
from geodispatch.zones.models import Zone, ZoneCell
from geodispatch.zones.service import validate_hierarchy


def test_generated_levels_nest(andorra: GeneratedZones, db: Session, settings: Settings) -> None:
    """Sectors lie in their district, districts in the region, the region in the country."""
    assert andorra.region.parent_id == andorra.country.id
    assert len(andorra.districts) >= 2 and len(andorra.sectors) > len(andorra.districts)
    region_cells = hc.uncompact(andorra.region.cells, settings.h3_zone_res)
    by_id = {d.id: hc.uncompact(d.cells, d.res) for d in andorra.districts}
    assert set().union(*by_id.values()) == region_cells
    for s in andorra.sectors:
        assert s.parent_id in by_id
        assert hc.uncompact(s.cells, s.res) <= by_id[s.parent_id]
    assert validate_hierarchy(session=db) == {
        "region": {"cells": len(region_cells), "uncovered": 0, "orphans": 0},
        "district": {"cells": len(region_cells), "uncovered": 0, "orphans": 0},
        "sector": {"cells": len(region_cells), "uncovered": 0, "orphans": 0},
    }


def test_cells_stored_compacted_and_expanded(andorra: GeneratedZones, db: Session) -> None:
    """zones.cells is compacted (fewer entries); zone_cells holds every expanded cell once."""
    region = andorra.region
    expanded = hc.uncompact(region.cells, region.res)
    assert len(region.cells) < len(expanded)
    n = db.scalar(
        select(func.count()).select_from(ZoneCell).where(ZoneCell.zone_id == region.id)
    )
    assert n == len(expanded)


def test_zone_polygon_matches_cells(andorra: GeneratedZones, db: Session) -> None:
    """The stored MultiPolygon covers exactly the cells: each centre is inside, area agrees."""
    sector = andorra.sectors[0]
    cells = hc.uncompact(sector.cells, sector.res)
    for c in cells:
        p = hc.cell_center(c)
        inside = db.scalar(
            select(func.ST_Contains(Zone.geom, func.ST_GeomFromText(p.to_wkt(), 4326))).where(
                Zone.id == sector.id
            )
        )
        assert inside
    area_m2 = db.scalar(
        text("SELECT ST_Area(geom::geography) FROM zones WHERE id = :i"), {"i": sector.id}
    )
    expected = sum(h3i.cell_area(c, "m^2") for c in cells)
    assert abs(area_m2 - expected) / expected < 0.01


def test_generation_covers_the_extent(
    andorra: GeneratedZones, andorra_bbox: tuple[float, float, float, float], settings: Settings
) -> None:
    """The corners and centre of the road extent fall in generated cells."""
    lat0, lng0, lat1, lng1 = andorra_bbox
    cells = hc.uncompact(andorra.country.cells, andorra.country.res)
    for lat, lng in [(lat0, lng0), (lat1, lng1), ((lat0 + lat1) / 2, (lng0 + lng1) / 2)]:
        assert h3i.latlng_to_cell(lat, lng, settings.h3_zone_res) in cells


def test_second_region_does_not_overlap(
    andorra: GeneratedZones, db: Session, settings: Settings,
    andorra_bbox: tuple[float, float, float, float],
) -> None:
    """A second generated region overlapping the first takes only free cells; the country grows."""
    from geodispatch.zones.generation import generate_zones

    lat0, lng0, lat1, lng1 = andorra_bbox
    second = generate_zones(
        session=db, bbox=(lat0, lng1 - 0.05, lat1, lng1 + 0.1), country_code="AD",
        region_code="ADY", settings=settings,
    )
    a = hc.uncompact(andorra.region.cells, andorra.region.res)
    b = hc.uncompact(second.region.cells, second.region.res)
    assert a and b and not (a & b)
    assert hc.uncompact(second.country.cells, second.country.res) == a | b
    assert second.region.parent_id == second.country.id
