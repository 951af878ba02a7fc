"""Zones generated for a place without official boundaries: districts and sectors as blocks of
H3 cells over an extent, stored through the versioning core (:mod:`geodispatch.zones.service`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from geodispatch.errors import InvalidInput
from geodispatch.settings import Settings, get_settings
from geodispatch.zones import cells as hc
from geodispatch.zones.models import Zone
from geodispatch.zones.service import ZoneSpec, _level_cells, _now, apply_level, current_zones

log = logging.getLogger(__name__)


@dataclass
class GeneratedZones:
    country: Zone
    region: Zone
    districts: list[Zone]
    sectors: list[Zone]





def _reading_order(cells: Iterable[int]) -> list[int]:
    """North to south, then west to east: stable, human-friendly numbering."""

    def key(c: int) -> tuple[float, float]:
        p = hc.cell_center(c)
        return (-round(p.lat, 3), p.lng)

    return sorted(cells, key=key)


def generate_zones(
    *,
    session: Session,
    bbox: tuple[float, float, float, float],
    country_code: str,
    region_code: str,
    settings: Settings | None = None,
    district_res: int | None = None,
    sector_res: int | None = None,
    country_name: str | None = None,
    region_name: str | None = None,
) -> GeneratedZones:
    """Generate a region with districts and sectors from an extent (no official boundaries).

    Parameters
    ----------
    bbox : (min_lat, min_lng, max_lat, max_lng)
        Extent to cover, e.g. the road graph's bounding box; every zone-resolution cell touching it
        is included.
    country_code, region_code : str
        The country zone is created or grown; the region zone is created (or replaced).
    district_res, sector_res : int, optional
        H3 resolutions of the parent cells that become districts and sectors; default
        ``zone_res - 2`` (about 36 km2 at res 6) and ``zone_res - 1`` (about 5 km2 at res 7).

    Returns
    -------
    GeneratedZones

    Notes
    -----
    Districts are the zone cells grouped by their parent at ``district_res``; sectors by their
    parent at ``sector_res`` (which nests in the district parent, because H3 parents nest). Cells
    already held by another region are left to it, so generated regions never overlap. Codes are
    ``{region}-D01`` and ``{region}-D01-S01``, numbered north to south, west to east.
    """
    settings = settings or get_settings()
    res = settings.h3_zone_res
    district_res = res - 2 if district_res is None else district_res
    sector_res = res - 1 if sector_res is None else sector_res
    if not (0 <= district_res <= sector_res <= res):
        raise InvalidInput(f"need district_res <= sector_res <= {res}")
    cells = hc.bbox_cells(bbox, res)
    region_ids = {
        z.id for z in current_zones(session=session, level="region") if z.code != region_code
    }
    taken = {c for c, z in _level_cells(session=session, level="region").items() if z in region_ids}
    cells -= taken
    if not cells:
        raise InvalidInput("the extent holds no free cells")
    at = _now()

    country = next(
        (z for z in current_zones(session=session, level="country") if z.code == country_code), None
    )
    country_cells = (hc.uncompact(country.cells, country.res) if country else set()) | cells
    apply_level(
        session=session,
        level="country",
        specs=[ZoneSpec(country_code, country_name or (country.name if country else country_code),
                        "country", country_code, country_cells)],
        settings=settings,
        at=at,
    )
    apply_level(
        session=session,
        level="region",
        specs=[ZoneSpec(region_code, region_name or region_code, "region", region_code, cells)],
        settings=settings,
        at=at,
    )
    by_district: dict[int, set[int]] = {}
    for c in cells:
        by_district.setdefault(hc.parent(c, district_res), set()).add(c)
    district_specs: list[ZoneSpec] = []
    sector_specs: list[ZoneSpec] = []
    for di, dparent in enumerate(_reading_order(by_district), start=1):
        dcode = f"{region_code}-D{di:02d}"
        dcells = by_district[dparent]
        district_specs.append(ZoneSpec(dcode, dcode, "district", region_code, dcells))
        by_sector: dict[int, set[int]] = {}
        for c in dcells:
            by_sector.setdefault(hc.parent(c, sector_res), set()).add(c)
        for si, sparent in enumerate(_reading_order(by_sector), start=1):
            scode = f"{dcode}-S{si:02d}"
            sector_specs.append(ZoneSpec(scode, scode, "sector", region_code, by_sector[sparent]))
    apply_level(session=session, level="district", specs=district_specs, settings=settings, at=at)
    apply_level(session=session, level="sector", specs=sector_specs, settings=settings, at=at)
    zones = {z.code: z for z in current_zones(session=session)}
    return GeneratedZones(
        country=zones[country_code],
        region=zones[region_code],
        districts=[zones[s.code] for s in district_specs],
        sectors=[zones[s.code] for s in sector_specs],
    )
