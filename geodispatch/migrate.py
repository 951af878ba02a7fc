"""Run the Alembic migrations in ``migrations/`` programmatically (``geodispatch db upgrade``)."""

from __future__ import annotations

import re

from alembic import command
from alembic.config import Config

from geodispatch.db import admin_engine, check_database
from geodispatch.settings import PROJECT_ROOT, Settings


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(settings: Settings, *, revision: str = "head") -> None:
    """Check the database is reachable and has PostGIS, then upgrade it to ``revision``."""
    engine = admin_engine(settings)
    try:
        check_database(engine)
    finally:
        engine.dispose()
    command.upgrade(alembic_config(settings.admin_database_url), revision)


# Partitions of partitioned tables and PostGIS's own tables are not part of the model.
_PARTITION = re.compile(r"^positions_(default|\d{6})$")
_FOREIGN_TABLES = {"spatial_ref_sys", "geography_columns", "geometry_columns"}


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic filter: compare only what the models own."""
    if type_ == "table" and name is not None and (_PARTITION.match(name) or name in _FOREIGN_TABLES):
        return False
    # Tables outside our metadata (pgRouting's, a user's own) are not ours to drop.
    return not (type_ == "table" and reflected and compare_to is None)
