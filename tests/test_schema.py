"""The schema built by the migrations: PostGIS present, models agree, event log append-only."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from geodispatch.models import Base
from geodispatch.settings import Settings


def test_postgis_is_installed(postgis_version: str) -> None:
    """The test database really has the PostGIS extension."""
    assert postgis_version.split(".")[0] == "3"


def test_models_and_migrations_agree(admin_engine: Engine) -> None:
    """Autogenerate finds no difference between the ORM models and the migrated schema."""
    from geodispatch.migrate import include_object

    with admin_engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"include_object": include_object, "compare_type": True}
        )
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def _insert_event(session: Session) -> int:
    from geodispatch.incidents.record import append_event

    session.execute(
        text(
            "INSERT INTO incidents (reference, region, received_at, location, h3, category, "
            "original_category, priority, status, description, created_by, caller_lang, "
            "sms_opt_out, source) VALUES (:ref, 'T', now(), "
            "ST_GeomFromText('POINT(30.52 50.45)', 4326), 0, 'theft', 'theft', 3, 'registered', '', "
            "'test', 'uk', false, 'call')"
        ),
        {"ref": f"T-{uuid.uuid4().hex[:12]}"},
    )
    iid = session.execute(text("SELECT currval('incidents_id_seq')")).scalar_one()
    return append_event(session=session, incident_id=int(iid), kind="registered", actor="test")


@pytest.mark.parametrize("statement", ["UPDATE incident_events SET actor = 'x' WHERE id = :id",
                                       "DELETE FROM incident_events WHERE id = :id"])
def test_app_role_cannot_change_events(db: Session, statement: str) -> None:
    """The application role has no UPDATE/DELETE grant on the event log."""
    eid = _insert_event(db)
    with pytest.raises(DBAPIError, match="permission denied"):
        db.execute(text(statement), {"id": eid})


@pytest.mark.parametrize("statement", ["UPDATE incident_events SET actor = 'x' WHERE id = :id",
                                       "DELETE FROM incident_events WHERE id = :id",
                                       "TRUNCATE incident_events CASCADE"])
def test_trigger_refuses_change_even_for_owner(admin_db: Session, statement: str) -> None:
    """The owner hits the append-only trigger too (it can drop it; the signed log catches that)."""
    eid = _insert_event(admin_db)
    with pytest.raises(DBAPIError, match="append-only"):
        admin_db.execute(text(statement), {"id": eid})


def test_positions_are_partitioned(db: Session) -> None:
    """Position history is range-partitioned by fix time with a default partition."""
    parts = db.execute(
        text("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
             "WHERE i.inhparent = 'positions'::regclass")
    ).scalars().all()
    assert "positions_default" in parts
    assert len(parts) >= 4


def test_upgrade_on_empty_database(settings: Settings, admin_engine: Engine) -> None:
    """`geodispatch db upgrade` builds the whole schema in a brand-new database."""
    name = f"gd_empty_{uuid.uuid4().hex[:8]}"
    ac = admin_engine.execution_options(isolation_level="AUTOCOMMIT")
    with ac.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(settings.admin_database_url).set(database=name)
    try:
        e = create_engine(url)
        with e.begin() as conn:
            conn.execute(text("CREATE EXTENSION postgis"))
        e.dispose()
        env = {"GEODISPATCH_ADMIN_DATABASE_URL": url.render_as_string(hide_password=False),
               "GEODISPATCH_DATABASE_URL": url.render_as_string(hide_password=False)}
        r = _cli(["db", "upgrade"], env)
        assert r.returncode == 0, r.stderr
        e = create_engine(url)
        with e.connect() as conn:
            n = conn.execute(text("SELECT count(*) FROM information_schema.tables "
                                  "WHERE table_name IN ('incidents', 'incident_events', 'units')")).scalar()
        e.dispose()
        assert n == 3
    finally:
        with ac.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    full = {**os.environ, **env}
    return subprocess.run([sys.executable, "-m", "geodispatch.cli", *args], env=full,
                          capture_output=True, text=True, timeout=120)
