"""Import zones from GeoJSON polygons: cells by centre containment, overlaps and gaps reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from shapely.geometry import Polygon, box, mapping
from sqlalchemy.orm import Session

from geodispatch.errors import InvalidInput
from geodispatch.settings import Settings
from geodispatch.zones import cells as hc
from geodispatch.zones.geojson import import_geojson, plan_import
from geodispatch.zones.index import ZoneIndex
from geodispatch.zones.service import current_zones

# Central Andorra, in (lng, lat).
X0, X1, X2, X3 = 1.45, 1.52, 1.59, 1.66
Y0, Y1 = 42.46, 42.58


def _fc(*features: tuple[str, Any]) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"code": code, "name": f"District {code}"},
             "geometry": mapping(geom)}
            for code, geom in features
        ],
    }


def test_overlap_and_hole_reported(db: Session, settings: Settings) -> None:
    """Two overlapping polygons and one with a hole: overlap counted, hole listed as uncovered."""
    a = box(X0, Y0, X1 + 0.01, Y1)  # overlaps b by 0.01 deg of longitude
    b = box(X1, Y0, X2, Y1)
    hole = box(X2 + 0.02, Y0 + 0.03, X3 - 0.02, Y1 - 0.03)
    c = Polygon(box(X2, Y0, X3, Y1).exterior.coords, [hole.exterior.coords])
    specs, report = plan_import(session=db, geojson=_fc(("A", a), ("B", b), ("C", c)),
                                level="district", region="AD1", settings=settings)
    assert [o.a for o in report.overlaps] == ["A"] and report.overlaps[0].b == "B"
    assert report.overlaps[0].cells == len(report.overlap_cells) > 0
    hole_cells = hc.geometry_to_cells(hole, settings.h3_zone_res)
    assert set(report.uncovered_cells) == hole_cells and hole_cells
    claimed = [s.cells for s in specs]
    assert not (claimed[0] & claimed[1]) and set(report.overlap_cells) <= claimed[0]
    assert {s.region for s in specs} == {"AD1"}


def test_import_writes_zones_and_index_sees_them(db: Session, settings: Settings) -> None:
    """Imported districts become current zones with their cells; re-import is a no-op."""
    fc = _fc(("A", box(X0, Y0, X1, Y1)), ("B", box(X1, Y0, X2, Y1)))
    report = import_geojson(session=db, geojson=fc, level="district", region="AD1",
                            settings=settings)
    assert report.applied and report.change is not None and len(report.change.created) == 2
    zones = {z.code: z for z in current_zones(session=db, level="district")}
    assert set(zones) == {"A", "B"} and zones["A"].name == "District A"
    index = ZoneIndex.load(db, settings)
    ref = index.lookup(hc.cell_center(sorted(hc.uncompact(zones["B"].cells, zones["B"].res))[0]))
    assert ref.district_id == zones["B"].id and ref.region == "AD1" and ref.sector_id is None
    again = import_geojson(session=db, geojson=fc, level="district", region="AD1",
                           settings=settings)
    assert again.change is not None and len(again.change.unchanged) == 2
    assert not again.change.created and not again.change.updated


def test_uncovered_relative_to_parent_level(db: Session, settings: Settings) -> None:
    """With a region imported first, districts leaving a strip of it uncovered report that strip."""
    import_geojson(session=db, geojson=_fc(("AD1", box(X0, Y0, X3, Y1))), level="region",
                   settings=settings)
    fc = _fc(("A", box(X0, Y0, X1, Y1)), ("B", box(X1 + 0.03, Y0, X3, Y1)))
    report = import_geojson(session=db, geojson=fc, level="district", settings=settings)
    strip = hc.geometry_to_cells(box(X1 + 0.005, Y0 + 0.005, X1 + 0.025, Y1 - 0.005),
                                 settings.h3_zone_res)
    assert strip <= set(report.uncovered_cells)
    region = current_zones(session=db, level="region")[0]
    districts = current_zones(session=db, level="district")
    assert {d.parent_id for d in districts} == {region.id}
    assert {d.region for d in districts} == {"AD1"}


def test_dry_run_writes_nothing(db: Session, settings: Settings) -> None:
    """A dry run validates only."""
    report = import_geojson(session=db, geojson=_fc(("A", box(X0, Y0, X1, Y1))), level="sector",
                            settings=settings, dry_run=True)
    assert not report.applied and report.cells > 0
    assert current_zones(session=db, level="sector") == []


def test_bad_input_refused(db: Session, settings: Settings) -> None:
    """Points and unknown levels are refused with InvalidInput."""
    bad = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": "P"},
         "geometry": {"type": "Point", "coordinates": [1.5, 42.5]}}]}
    with pytest.raises(InvalidInput):
        plan_import(session=db, geojson=bad, level="district", settings=settings)
    with pytest.raises(InvalidInput):
        plan_import(session=db, geojson=_fc(), level="oblast", settings=settings)


def test_cli_import_and_validate(db: Session, settings: Settings, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """`geodispatch zones validate FILE --level` prints the report as JSON without writing."""
    from geodispatch.cli import main

    f = tmp_path / "d.geojson"
    f.write_text(json.dumps(_fc(("A", box(X0, Y0, X1 + 0.01, Y1)), ("B", box(X1, Y0, X2, Y1)))))
    assert main(["zones", "validate", str(f), "--level", "district"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["overlaps"][0]["a"] == "A" and out["applied"] is False
