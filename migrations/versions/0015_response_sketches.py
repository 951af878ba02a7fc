"""analytics: response_sketches (mergeable log-bucket quantile sketches per day and month, per H3
cell / sector / hour / weekday, region, category, priority, interval) replace response_cell_days

Revision ID: 0015_response_sketches
Revises: 0014_import_batches
Create Date: 2026-12-06 22:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015_response_sketches"
down_revision: str | None = "0014_import_batches"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "response_sketches",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("span", sa.String(1), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("dim", sa.SmallInteger(), nullable=False),
        sa.Column("key", sa.BigInteger(), nullable=True),
        sa.Column("region", sa.String(16), nullable=False),
        sa.Column("category", sa.String(48), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("iv", sa.SmallInteger(), nullable=False),
        sa.Column("incidents", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("sketch", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_response_sketches_lookup", "response_sketches",
                    ["dim", "iv", "span", "period"])
    from sqlalchemy.orm import Session

    from geodispatch.analytics.sketch import rebuild_sketches

    session = Session(bind=op.get_bind())
    rebuild_sketches(session=session, days=None)
    session.flush()
    op.drop_table("response_cell_days")


def downgrade() -> None:
    op.create_table(
        "response_cell_days",
        sa.Column("res", sa.SmallInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("cell", sa.BigInteger(), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("incidents", sa.Integer(), nullable=False),
        sa.Column("total_response_s",
                  postgresql.ARRAY(postgresql.DOUBLE_PRECISION()), nullable=False),
        sa.PrimaryKeyConstraint("res", "day", "cell", "region"),
    )
    op.drop_index("ix_response_sketches_lookup", "response_sketches")
    op.drop_table("response_sketches")
