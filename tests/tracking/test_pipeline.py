"""Validation steps and the batched write (COPY + ON CONFLICT, forward-only latest)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import h3
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.geo import LatLng
from geodispatch.settings import Settings
from geodispatch.tracking.fleet import LiveFleet
from geodispatch.tracking.ingest import Ingestor
from geodispatch.tracking.pipeline import Validator, record_positions
from geodispatch.tracking.reports import PositionReport
from geodispatch.tracking.service import create_unit, import_gpx, verify_token

NOW = datetime.now(UTC).replace(microsecond=0)


def _fix(unit_id: int, seconds: float, lat: float = 50.45, lng: float = 30.52,
         acc: float | None = None) -> PositionReport:
    return PositionReport(device="d", fix_time=NOW + timedelta(seconds=seconds),
                          position=LatLng(lat, lng), source="native", received_at=NOW,
                          unit_id=unit_id, accuracy_m=acc)


def test_validator_reasons(settings: Settings) -> None:
    """Too old, in the future, poor accuracy, duplicate, speed jump; out-of-order accepted."""
    v = Validator(settings)
    assert v.check(_fix(1, -settings.max_fix_age_s - 10), now=NOW) == "too_old"
    assert v.check(_fix(1, settings.max_future_s + 10), now=NOW) == "in_future"
    assert v.check(_fix(1, 0, acc=settings.max_accuracy_m + 1), now=NOW) == "poor_accuracy"
    assert v.check(_fix(1, 0), now=NOW) is None
    assert v.check(_fix(1, 0), now=NOW) == "duplicate"
    assert v.check(_fix(1, -30), now=NOW) is None  # out of order: history keeps it
    assert v.check(_fix(1, 10, lat=50.55), now=NOW) == "speed_jump"  # 11 km in 10 s
    assert v.check(_fix(1, 12, lat=50.4503), now=NOW) is None


def test_speed_jump_gives_up_after_repeats(settings: Settings) -> None:
    """A unit that really moved far (ferry, tunnel) is believed after a few consistent fixes."""
    v = Validator(settings)
    assert v.check(_fix(2, 0), now=NOW) is None
    results = [v.check(_fix(2, i, lat=51.0 + i * 1e-5), now=NOW) for i in (1, 2, 3)]
    assert results == ["speed_jump", "speed_jump", None]


def test_write_history_and_latest(db: Session, settings: Settings) -> None:
    """COPY batch: duplicates absorbed, H3 stored as BIGINT, latest only moves forward."""
    unit, token = create_unit(session=db, call_sign="PIPE-1", kind="patrol_car",
                              capabilities=[], region="KV", settings=settings)
    assert verify_token(token, unit.device_token_hash) and token not in unit.device_token_hash
    first = record_positions(session=db, reports=[_fix(unit.id, 0), _fix(unit.id, 5, lat=50.451)],
                             settings=settings)
    assert (first.inserted, first.duplicates, first.latest_moved) == (2, 0, {unit.id})
    again = record_positions(session=db, reports=[_fix(unit.id, 5, lat=50.451), _fix(unit.id, -5)],
                             settings=settings)
    assert (again.inserted, again.duplicates, again.latest_moved) == (1, 1, set())
    latest = db.execute(text("SELECT fix_time, ST_Y(geom), h3 FROM unit_latest WHERE unit_id=:u"),
                        {"u": unit.id}).one()
    assert latest[0] == NOW + timedelta(seconds=5) and latest[1] == 50.451
    cell = h3.latlng_to_cell(50.451, 30.52, settings.h3_position_res)
    assert latest[2] == h3.str_to_int(cell)
    n = db.execute(text("SELECT count(*) FROM positions WHERE unit_id=:u"), {"u": unit.id})
    assert n.scalar() == 3


def test_ingestor_updates_fleet(db: Session, settings: Settings) -> None:
    """After the write, the fleet moves the unit and notifies subscribers."""
    unit, _ = create_unit(session=db, call_sign="PIPE-2", kind="patrol_car", capabilities=["k9"],
                          region="KV", settings=settings)
    fleet = LiveFleet(settings)
    fleet.refresh(db)
    seen = []
    fleet.subscribe(seen.append)
    ing = Ingestor(settings, fleet=fleet)
    ing.directory.load(db)
    report = _fix(unit.id, 0)
    report.unit_id = None
    report.device = unit.device_id
    # A fix taken now (NOW is fixed at import and may be stale by the time this test runs).
    report.fix_time = report.received_at = datetime.now(UTC)
    batch = ing.prepare([report])
    result = ing.write(session=db, batch=batch)
    ing.publish(batch, result)
    state = fleet.get(unit.id)
    assert state is not None and state.position == LatLng(50.45, 30.52) and not state.stale
    assert [s.unit_id for s in seen] == [unit.id]
    assert state.capabilities == ("k9",)


def test_import_gpx(db: Session, settings: Settings, data_dir: Path) -> None:
    """The Višnjan GPX track: all 104 fixes stored once; a second import stores nothing."""
    unit, _ = create_unit(session=db, call_sign="GPX-1", kind="patrol_car", capabilities=[],
                          region="KV", settings=settings)
    path = data_dir / "traces" / "visnjan_car.gpx"
    res = import_gpx(session=db, unit=unit, path=path, settings=settings)
    assert (res.points, res.stored, res.dropped) == (104, 104, {})
    again = import_gpx(session=db, unit=unit, path=path, settings=settings)
    assert again.stored == 0 and again.duplicates == 104
