"""a call is registered even when its place is not known yet

``incidents.location`` and ``incidents.h3`` become nullable: a call whose address could not be
resolved (or that came with none) is registered with the typed text kept in ``address`` and no
point, shown in the queue as "location unknown" until a call-taker places it on the map.

Revision ID: 0004_location
Revises: 0003_log
Create Date: 2026-12-02 22:40:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_location"
down_revision: str | None = "0003_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("incidents", "location", nullable=True)
    op.alter_column("incidents", "h3", existing_type=sa.BigInteger(), nullable=True)


def downgrade() -> None:
    # Incidents still without a place cannot go back to a schema that demands one.
    unplaced = op.get_bind().execute(
        sa.text("SELECT count(*) FROM incidents WHERE location IS NULL")).scalar()
    if unplaced:
        raise RuntimeError(f"{unplaced} incidents have no location yet; place them first")
    op.alter_column("incidents", "h3", existing_type=sa.BigInteger(), nullable=False)
    op.alter_column("incidents", "location", nullable=False)
