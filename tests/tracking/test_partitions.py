"""Position partitions created ahead by a scheduled job; their absence is a supervisor alert."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from geodispatch.db import make_engine, session_factory
from geodispatch.dispatch.alerts import supervisor_alerts
from geodispatch.geo import LatLng
from geodispatch.settings import Settings
from geodispatch.tracking.pipeline import record_positions
from geodispatch.tracking.reports import PositionReport
from geodispatch.tracking.scheduled import (
    PartitionJob,
    _month,
    ensure_partitions,
    partition_status,
)
from geodispatch.tracking.service import create_unit


def _fix(unit_id: int, at: datetime) -> PositionReport:
    return PositionReport(device="d", fix_time=at, position=LatLng(50.45, 30.52), source="gpx",
                          received_at=datetime.now(UTC), unit_id=unit_id)


def _partition_of(session: Session, unit_id: int, at: datetime) -> str:
    return str(session.execute(text(
        "SELECT tableoid::regclass::text FROM positions WHERE unit_id = :u AND fix_time = :t"),
        {"u": unit_id, "t": at}).scalar_one())


def test_rows_in_the_default_partition_get_their_month(db: Session, settings: Settings) -> None:
    """As the application role: a fix six months ahead and one from 2019 sit in the default
    partition; the job gives both months a partition, moves the rows, keeps the keys unique."""
    unit, _ = create_unit(session=db, call_sign="PART-1", kind="patrol_car", capabilities=[],
                          region="KV", settings=settings)
    now = datetime.now(UTC)
    ahead = (now.replace(day=15, hour=12, minute=0, second=0, microsecond=0)
             + timedelta(days=31 * 6))
    old = datetime(2019, 5, 7, 8, 30, tzinfo=UTC)
    record_positions(session=db, reports=[_fix(unit.id, ahead), _fix(unit.id, old)],
                     settings=settings)
    assert _partition_of(db, unit.id, ahead) == _partition_of(db, unit.id, old) == \
        "positions_default"
    created = ensure_partitions(session=db, months_ahead=settings.partition_months_ahead)
    assert created >= 2
    assert _partition_of(db, unit.id, ahead) == _month(ahead, 0)
    assert _partition_of(db, unit.id, old) == "positions_201905"
    assert partition_status(session=db, months=settings.partition_months_ahead + 1).missing == []
    assert db.execute(text("SELECT count(*) FROM positions_default")).scalar() == 0
    again = record_positions(session=db, reports=[_fix(unit.id, old)], settings=settings)
    assert (again.inserted, again.duplicates) == (0, 1)  # the attached partition kept the key


def test_missing_partition_is_a_supervisor_alert(admin_db: Session, settings: Settings) -> None:
    """A month of the coming window without its partition: a high alert for every supervisor,
    gone once the job has run; a recent dead letter is an alert too."""
    month = _month(datetime.now(UTC), 2)
    assert admin_db.execute(text(f"SELECT count(*) FROM {month}")).scalar() == 0
    admin_db.execute(text(f"DROP TABLE {month}"))
    admin_db.execute(text(
        "INSERT INTO ingest_dead_letters (transport, topic, payload, reason, detail) "
        "VALUES ('mqtt', 'geodispatch/units/x/position', '\\x00'::bytea, 'unstorable', '')"))
    alerts = {a.kind: a for a in supervisor_alerts(session=admin_db, region="KV",
                                                   settings=settings)}
    missing = alerts["position_partitions_missing"]
    assert missing.severity == "high" and month in missing.message
    assert "ingest_dead_letters" in alerts
    assert ensure_partitions(session=admin_db, months_ahead=settings.partition_months_ahead) == 1
    kinds = {a.kind for a in supervisor_alerts(session=admin_db, region="KV", settings=settings)}
    assert "position_partitions_missing" not in kinds


def test_job_failure_is_logged_at_error(settings: Settings,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """The job cannot reach the database: an ERROR line, and the job keeps going."""
    engine = make_engine("postgresql+psycopg://x:y@127.0.0.1:9/none", pool_size=1)
    job = PartitionJob(session_factory(engine), settings)
    with caplog.at_level(logging.ERROR, logger="geodispatch.tracking.scheduled"):
        assert job.run_once() is False
    engine.dispose()
    assert job.last_error
    assert any(r.levelno == logging.ERROR and "position partitions not ensured" in r.getMessage()
               for r in caplog.records)


def test_job_runs_on_its_schedule(settings: Settings, engine: object) -> None:
    """The job runs at once and then every interval until stopped."""
    from sqlalchemy import Engine

    assert isinstance(engine, Engine)
    factory: sessionmaker[Session] = session_factory(engine)
    job = PartitionJob(factory, settings.model_copy(update={"partition_job_interval_s": 0.2}))
    stop = threading.Event()
    thread = threading.Thread(target=job.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while job.runs < 3 and datetime.now(UTC) < deadline:
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(5)
    assert job.runs >= 3 and job.last_error is None
