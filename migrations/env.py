"""Alembic environment: the URL from settings, the metadata from ``geodispatch.models``.

After every upgrade the application role's grants are re-applied (``geodispatch.db.apply_grants``),
so new tables are covered and the event log stays append-only for that role.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from geodispatch.db import apply_grants
from geodispatch.migrate import include_object
from geodispatch.models import Base
from geodispatch.settings import get_settings

config = context.config
target_metadata = Base.metadata

def run_migrations() -> None:
    url = config.get_main_option("sqlalchemy.url") or get_settings().admin_database_url
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_object=include_object,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
            apply_grants(connection, get_settings().app_db_role)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) mode is not supported; run against a database")
run_migrations()
