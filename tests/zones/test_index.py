"""The in-memory zone index agrees with SQL (zone_cells) and its vectorised look-up is exact."""

from __future__ import annotations

import numpy as np
from h3.api import basic_int as h3i
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.geo import LatLng
from geodispatch.settings import Settings
from geodispatch.zones.generation import GeneratedZones
from geodispatch.zones.index import ZoneIndex, ZoneRef
from geodispatch.zones.service import sql_lookup


def _sql_lookup(db: Session, p: LatLng, res: int) -> tuple[int | None, int | None]:
    cell = h3i.latlng_to_cell(p.lat, p.lng, res)
    rows = dict(
        db.execute(text("SELECT level, zone_id FROM zone_cells WHERE cell = :c"), {"c": cell}).all()
    )
    return rows.get("sector"), rows.get("district")


def test_memory_and_sql_agree(
    andorra: GeneratedZones, db: Session, settings: Settings,
    andorra_bbox: tuple[float, float, float, float],
) -> None:
    """For random points over (and around) Andorra, memory and SQL give the same zones."""
    index = ZoneIndex.load(db, settings)
    lat0, lng0, lat1, lng1 = andorra_bbox
    rng = np.random.default_rng(7)
    inside = 0
    for lat, lng in zip(rng.uniform(lat0 - 0.02, lat1 + 0.02, 300),
                        rng.uniform(lng0 - 0.02, lng1 + 0.02, 300), strict=True):
        p = LatLng(float(lat), float(lng))
        ref = index.lookup(p)
        assert (ref.sector_id, ref.district_id) == _sql_lookup(db, p, settings.h3_zone_res)
        cell = h3i.latlng_to_cell(p.lat, p.lng, settings.h3_zone_res)
        assert sql_lookup(session=db, cell=cell, settings=settings) == ref
        if ref.sector_id is not None:
            inside += 1
            assert ref.region == "ADX"
        else:
            assert ref.region == settings.default_region
    assert inside > 200


def test_lookup_returns_current_ids(
    andorra: GeneratedZones, db: Session, settings: Settings
) -> None:
    """A sector's centre cell maps to that sector and its district."""
    index = ZoneIndex.load(db, settings)
    s = andorra.sectors[3]
    cell = sorted(h3i.uncompact_cells(s.cells, s.res))[0]
    lat, lng = h3i.cell_to_latlng(cell)
    assert index.lookup(LatLng(lat, lng)) == ZoneRef(s.id, s.parent_id, "ADX")
    child = h3i.cell_to_center_child(cell, 10)
    assert index.lookup_cell(child) == ZoneRef(s.id, s.parent_id, "ADX")


def test_lookup_many_is_exact(
    andorra: GeneratedZones, db: Session, settings: Settings,
    andorra_bbox: tuple[float, float, float, float],
) -> None:
    """The raster-prefiltered vectorised look-up equals per-point h3 for 100k points."""
    index = ZoneIndex.load(db, settings)
    lat0, lng0, lat1, lng1 = andorra_bbox
    rng = np.random.default_rng(11)
    lats = rng.uniform(lat0 - 0.05, lat1 + 0.05, 100_000)
    lngs = rng.uniform(lng0 - 0.05, lng1 + 0.05, 100_000)
    lats[:3] = [np.nan, 95.0, lat0]
    got = index.lookup_many(lats, lngs)
    for i in range(0, 100_000, 997):
        ref = index.lookup(LatLng(float(lats[i]), float(lngs[i])))
        assert (ref.sector_id or -1, ref.district_id or -1, ref.region) == (
            int(got.sector_id[i]), int(got.district_id[i]), str(got.region[i])
        )
    combos = index.combos_many(lats, lngs)
    expected = [
        index.cell_combo.get(h3i.latlng_to_cell(a, b, index.res), 0)
        if np.isfinite(a) and abs(a) <= 90
        else 0
        for a, b in zip(lats.tolist(), lngs.tolist(), strict=True)
    ]
    assert combos.tolist() == expected
    assert got.sector_id[0] == -1 and got.region[0] == settings.default_region


def test_empty_index(settings: Settings) -> None:
    """Without zones every point is outside, in the default region."""
    index = ZoneIndex.from_membership([], zones={}, res=8, default_region="KV")
    assert index.lookup(LatLng(50.45, 30.52)) == ZoneRef(None, None, "KV")
    assert index.lookup_many([50.45], [30.52]).sector_id.tolist() == [-1]
