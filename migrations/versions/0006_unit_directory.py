"""tracking: unit_directory_version, bumped by a trigger when a unit's logins or active flag change

Ingest processes poll this one row to reload their device directory, so deactivating a unit
takes effect everywhere within about a second.

Revision ID: 0006_unit_directory
Revises: 0005_dead_letters
Create Date: 2026-12-03 10:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_unit_directory"
down_revision: str | None = "0005_dead_letters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUMP_FN = """
CREATE OR REPLACE FUNCTION geodispatch_bump_unit_directory() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE unit_directory_version SET version = version + 1, changed_at = now() WHERE id = 1;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.create_table(
        "unit_directory_version",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.CheckConstraint("id = 1", name="unit_directory_version_one_row"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO unit_directory_version (id, version) VALUES (1, 0)")
    op.execute(BUMP_FN)
    op.execute(
        "CREATE TRIGGER units_directory_changed AFTER INSERT OR DELETE OR UPDATE OF device_id, "
        "owntracks_user, owntracks_device, active ON units FOR EACH STATEMENT "
        "EXECUTE FUNCTION geodispatch_bump_unit_directory()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS units_directory_changed ON units")
    op.execute("DROP FUNCTION IF EXISTS geodispatch_bump_unit_directory()")
    op.drop_table("unit_directory_version")
