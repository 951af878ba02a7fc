"""Shared fixtures: the real PostGIS test database, migrated by the real migrations.

The test database is the configured one with ``test_database_suffix`` appended to its name. The
environment is pointed at it before anything reads settings, so subprocesses started by tests
(workers, uvicorn) use it too. Each ``db`` test runs inside a transaction that is rolled back.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from geodispatch.settings import Settings, get_settings


def _test_url(url: str, suffix: str) -> str:
    u = make_url(url)
    name = u.database or "geodispatch"
    if not name.endswith(suffix):
        u = u.set(database=name + suffix)
    return u.render_as_string(hide_password=False)


_base = Settings()
os.environ["GEODISPATCH_DATABASE_URL"] = _test_url(_base.database_url, _base.test_database_suffix)
os.environ["GEODISPATCH_ADMIN_DATABASE_URL"] = _test_url(
    _base.admin_database_url, _base.test_database_suffix
)
# No road graph unless a test builds one: the developer's var/graph.npz (whatever city was last
# imported) must not decide what a test sees. Tests that route build or load their own.
os.environ["GEODISPATCH_GRAPH_PATH"] = str(
    Path(__file__).resolve().parent.parent / "test-artifacts" / "no-graph-by-default.npz")
# The same for the base map's vector tiles: none unless a test builds them (tests/tiles), and an
# import run by a test (the demo's, a CLI's) does not build them behind the other tests' backs.
os.environ["GEODISPATCH_TILES_PATH"] = str(
    Path(__file__).resolve().parent.parent / "test-artifacts" / "no-tiles-by-default.mbtiles")
os.environ["GEODISPATCH_TILES_ON_GRAPH_IMPORT"] = "false"
get_settings.cache_clear()


def _log_keys() -> None:
    # The centre's key pair, as `make services` creates it (kept across runs with the database).
    from geodispatch.ledger.signing import generate_keypair

    s = get_settings()
    generate_keypair(s.resolved_log_signing_key, s.resolved_log_public_key)


_log_keys()

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def data_dir(settings: Settings) -> Path:
    if not settings.data_dir.is_dir():
        pytest.fail(f"shared data folder not found at {settings.data_dir} (GEODISPATCH_DATA_DIR)")
    return settings.data_dir


def _empty_database(settings: Settings) -> None:
    """Start every run from an empty test database and an empty log.

    A test database left by an earlier run (older code, another checkout's keys and pepper)
    would otherwise fail the record's verification for reasons that are not this run's. The
    tree-head file is this database's log's witness, so it goes with the schema.
    """
    from sqlalchemy import create_engine

    eng = create_engine(settings.admin_database_url, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
            conn.execute(text("GRANT USAGE ON SCHEMA public TO PUBLIC"))
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pgrouting"))
    finally:
        eng.dispose()
    settings.resolved_log_tree_head_file.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def migrated(settings: Settings) -> None:
    """An empty test database brought to head by the real migrations (never ``create_all``)."""
    from geodispatch.migrate import upgrade

    _empty_database(settings)
    upgrade(settings)


@pytest.fixture(scope="session")
def engine(settings: Settings, migrated: None) -> Iterator[Engine]:
    from geodispatch.db import app_engine

    eng = app_engine(settings)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def admin_engine(settings: Settings, migrated: None) -> Iterator[Engine]:
    from geodispatch.db import admin_engine as make_admin

    eng = make_admin(settings)
    yield eng
    eng.dispose()


def _rolled_back_session(engine: Engine) -> Iterator[Session]:
    with engine.connect() as conn:
        outer = conn.begin()
        session = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield session
        finally:
            session.close()
            outer.rollback()


@pytest.fixture(scope="session")
def sequencer(settings: Settings, admin_engine: Engine) -> Iterator[object]:
    """The log's sequencer for this test session (``.drain()`` seals what is queued)."""
    from geodispatch.ledger.service import centre_sequencer

    seq = centre_sequencer(settings, admin_engine)
    seq.open()
    yield seq
    seq.close()


@pytest.fixture()
def db(engine: Engine) -> Iterator[Session]:
    """A session as the application role, inside a transaction rolled back after the test."""
    yield from _rolled_back_session(engine)


@pytest.fixture()
def admin_db(admin_engine: Engine) -> Iterator[Session]:
    """A session as the schema owner (a superuser here), rolled back after the test."""
    yield from _rolled_back_session(admin_engine)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def postgis_version(engine: Engine) -> str:
    with engine.connect() as conn:
        v = conn.execute(text("SELECT postgis_lib_version()")).scalar()
    assert v, "PostGIS is not installed in the test database"
    return str(v)


#: The extracts whose addresses the geocoding tests (and the API tests using it) import.
GEOCODE_EXTRACTS = ("baltimore_downtown_2015.osm.pbf", "porto_centre_2020.osm.pbf",
                    "moscow_north_part_2013.osm.gz")


@pytest.fixture(scope="session")
def address_index(settings: Settings, data_dir: Path, migrated: None) -> dict[str, object]:
    """The address index of Baltimore, Porto and Moscow, built by the real import (Nominatim
    into ``<test database>_nominatim``, reused while the files are unchanged), committed."""
    from geodispatch.geocoding.cli import run_import

    return run_import(settings, [data_dir / "osm" / n for n in GEOCODE_EXTRACTS])
