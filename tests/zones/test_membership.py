"""Boundary changes version zones and re-derive membership, keeping the old one in history."""

from __future__ import annotations

import uuid

from h3.api import basic_int as h3i
from shapely.geometry import mapping
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from geodispatch.settings import Settings
from geodispatch.zones import cells as hc
from geodispatch.zones.generation import GeneratedZones
from geodispatch.zones.geojson import import_geojson
from geodispatch.zones.models import Zone
from geodispatch.zones.service import membership_history, rederive_membership, set_home_zone


def _incident(db: Session, cell: int, status: str, sector: int | None, district: int | None,
              settings: Settings) -> int:
    lat, lng = h3i.cell_to_latlng(cell)
    fine = h3i.latlng_to_cell(lat, lng, settings.h3_incident_res)
    return int(db.execute(
        text(
            "INSERT INTO incidents (reference, region, received_at, location, h3, category, "
            "original_category, priority, status, description, created_by, caller_lang, "
            "sms_opt_out, source, sector_id, district_id) VALUES (:ref, 'ADX', now(), "
            "ST_SetSRID(ST_MakePoint(:lng, :lat), 4326), :h3, 'theft', 'theft', 3, :st, '', "
            "'test', 'uk', false, 'call', :s, :d) RETURNING id"
        ),
        {"ref": f"T-{uuid.uuid4().hex[:12]}", "lat": lat, "lng": lng, "h3": fine, "st": status,
         "s": sector, "d": district},
    ).scalar_one())


def _unit(db: Session) -> int:
    sign = f"U-{uuid.uuid4().hex[:8]}"
    return int(db.execute(
        text(
            "INSERT INTO units (call_sign, kind, capabilities, region, status, device_id, "
            "device_token_hash, active) VALUES (:c, 'patrol_car', '{}', 'ADX', 'available', :c, "
            "'x', true) RETURNING id"
        ),
        {"c": sign},
    ).scalar_one())


def _neighbour_pair(gz: GeneratedZones) -> tuple[Zone, Zone, int]:
    """Two sectors and a cell of the first that touches the second."""
    cells = {s.id: hc.uncompact(s.cells, s.res) for s in gz.sectors}
    for a in gz.sectors:
        for c in sorted(cells[a.id]):
            for n in hc.neighbours(c):
                for b in gz.sectors:
                    if b.id != a.id and n in cells[b.id] and len(cells[a.id]) > 1:
                        return a, b, c
    raise AssertionError("no adjacent sectors")


def test_boundary_change_moves_open_incident_and_keeps_history(
    andorra: GeneratedZones, db: Session, settings: Settings
) -> None:
    """A cell handed from sector A to B: A and B get new versions, the open incident moves to B,
    the closed one stays, the unit homed in A follows A's new version; history has both."""
    a, b, cell = _neighbour_pair(andorra)
    rederive_membership(session=db, settings=settings)
    open_id = _incident(db, cell, "queued", a.id, a.parent_id, settings)
    closed_id = _incident(db, cell, "closed", a.id, a.parent_id, settings)
    unit_id = _unit(db)
    set_home_zone(session=db, unit_id=unit_id, zone_id=a.id)

    new_b_cells = hc.uncompact(b.cells, b.res) | {cell}
    fc = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"code": b.code, "name": b.name},
        "geometry": mapping(hc.cells_to_multipolygon(new_b_cells))}]}
    report = import_geojson(session=db, geojson=fc, level="sector", settings=settings)
    assert report.change is not None
    assert set(report.change.closed) == {a.id, b.id}
    assert report.change.moved_incidents == 1 and report.change.moved_units == 1

    db.expire_all()
    old_a, old_b = db.get(Zone, a.id), db.get(Zone, b.id)
    assert old_a is not None and old_a.valid_to is not None
    assert old_b is not None and old_b.valid_to is not None
    new_a = db.scalars(select(Zone).where(Zone.code == a.code, Zone.valid_to.is_(None))).one()
    new_b = db.scalars(select(Zone).where(Zone.code == b.code, Zone.valid_to.is_(None))).one()
    assert hc.uncompact(new_b.cells, new_b.res) == new_b_cells
    assert cell not in hc.uncompact(new_a.cells, new_a.res)
    assert new_a.parent_id == a.parent_id

    sector_now = db.execute(text("SELECT sector_id FROM incidents WHERE id = :i"),
                            {"i": open_id}).scalar_one()
    assert sector_now == new_b.id
    hist = membership_history(session=db, entity="incident", entity_id=open_id)
    assert [(h.level, h.old_zone_id, h.new_zone_id) for h in hist if h.level == "sector"] == [
        ("sector", a.id, new_b.id)
    ]
    assert db.execute(text("SELECT sector_id FROM incidents WHERE id = :i"),
                      {"i": closed_id}).scalar_one() == a.id
    assert membership_history(session=db, entity="incident", entity_id=closed_id) == []
    home = db.execute(text("SELECT home_zone_id FROM units WHERE id = :u"), {"u": unit_id}).scalar()
    assert home == new_a.id
    [uh] = membership_history(session=db, entity="unit", entity_id=unit_id)
    assert (uh.old_zone_id, uh.new_zone_id) == (a.id, new_a.id)


def test_sql_lookup_uses_only_current_versions(
    andorra: GeneratedZones, db: Session, settings: Settings
) -> None:
    """After a change, zone_cells points every cell at exactly one current zone per level."""
    a, b, cell = _neighbour_pair(andorra)
    fc = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"code": b.code},
        "geometry": mapping(hc.cells_to_multipolygon(hc.uncompact(b.cells, b.res) | {cell}))}]}
    import_geojson(session=db, geojson=fc, level="sector", settings=settings)
    stale = db.execute(text(
        "SELECT count(*) FROM zone_cells zc JOIN zones z ON z.id = zc.zone_id "
        "WHERE z.valid_to IS NOT NULL")).scalar_one()
    assert stale == 0
    row = db.execute(text(
        "SELECT z.code FROM zone_cells zc JOIN zones z ON z.id = zc.zone_id "
        "WHERE zc.cell = :c AND zc.level = 'sector'"), {"c": cell}).scalar_one()
    assert row == b.code
