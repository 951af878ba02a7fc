"""Database plumbing: engine and session factories, grants, and readable connection errors.

Engines are created by the entry point (app factory, CLI command, worker), never at import time.
Service functions receive a ``Session`` and may ``flush()``; the edge that opened it commits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from geodispatch.errors import ConfigurationError, NotFound
from geodispatch.settings import Settings

log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    """Declarative base of every ORM model (one metadata for Alembic)."""


def make_engine(url: str, *, pool_size: int = 10, **kwargs: object) -> Engine:
    """Create an engine with sane defaults for a long-running service."""
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, **kwargs)


def app_engine(settings: Settings) -> Engine:
    return make_engine(settings.database_url, pool_size=settings.db_pool_size,
                       pool_timeout=settings.db_pool_timeout_s)


def admin_engine(settings: Settings) -> Engine:
    return make_engine(settings.admin_database_url, pool_size=2)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    with factory() as session, session.begin():
        yield session


R = TypeVar("R", bound=Base)


def get_row(session: Session, model: type[R], row_id: int, *, what: str,
            lock: bool = False) -> R:
    """The row of ``model`` with this primary key (``FOR UPDATE`` when ``lock``), or NotFound
    naming ``what`` ("incident 7 not found").

    A locked read also refreshes a copy the session already holds: the values under the lock
    are the committed ones, not what this session read before another transaction changed the
    row (``Session.get`` alone returns the identity map's copy untouched).
    """
    row = session.get(model, row_id, with_for_update=lock or None, populate_existing=lock)
    if row is None:
        raise NotFound(f"{what} {row_id} not found")
    return row


def describe_url(url: str) -> str:
    """The URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def check_database(engine: Engine) -> None:
    """Connect once and verify PostGIS; raise ``ConfigurationError`` with a one-line fix otherwise."""
    where = describe_url(str(engine.url.render_as_string(hide_password=False)))
    try:
        with engine.connect() as conn:
            version = conn.execute(
                text("SELECT extversion FROM pg_extension WHERE extname = 'postgis'")
            ).scalar()
    except OperationalError as exc:
        msg = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        if "password authentication failed" in msg:
            hint = "wrong user or password: fix GEODISPATCH_DATABASE_URL or run `make services`"
        elif "does not exist" in msg:
            hint = "database or role missing: run `make services` (creates them)"
        else:
            hint = "PostgreSQL is not reachable: run `make services` or fix GEODISPATCH_DATABASE_URL"
        raise ConfigurationError(f"database {where}: {msg} -- {hint}") from None
    except ProgrammingError as exc:  # pragma: no cover - unusual catalog permissions
        raise ConfigurationError(f"database {where}: {exc.orig}") from None
    if version is None:
        raise ConfigurationError(
            f"database {where}: the PostGIS extension is missing -- as a superuser run "
            "`CREATE EXTENSION postgis;` in that database (or `make services`)"
        )


def apply_grants(conn: object, role: str) -> None:
    """Grant the application role DML on every table; the record and its log are append-only.

    Called by the migration environment after every upgrade, so new tables are covered without
    each migration having to remember. Does nothing when the role does not exist.
    """
    assert isinstance(conn, Connection)
    exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar()
    if not exists:
        log.warning("role %s does not exist; no grants applied", role)
        return
    q = f'"{role}"'
    conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {q}"))
    conn.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {q}"))
    conn.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {q}"))
    conn.execute(text(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {q}"))
    # The record: the application appends events and nothing else. The sealed log (leaves,
    # tree heads, the sequencing queue) is written by the sequencer as the owner; the
    # application only reads it.
    for table, revoke in (("incident_events", "UPDATE, DELETE, TRUNCATE"),
                          ("log_leaves", "INSERT, UPDATE, DELETE, TRUNCATE"),
                          ("tree_heads", "INSERT, UPDATE, DELETE, TRUNCATE"),
                          ("log_pending", "INSERT, UPDATE, DELETE, TRUNCATE"),
                          ("log_nodes", "INSERT, UPDATE, DELETE, TRUNCATE")):
        if conn.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar() is None:
            continue
        conn.execute(text(f"REVOKE {revoke} ON {table} FROM {q}"))
