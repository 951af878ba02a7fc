"""analytics: call-processing interval, crew count, per-cell-day sorted response arrays

Revision ID: 0002_analytics
Revises: 0001
Create Date: 2026-11-29 06:55:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_analytics"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("response_intervals", sa.Column("call_processing_s", sa.Float(), nullable=True))
    op.add_column(
        "response_intervals",
        sa.Column("crews", sa.SmallInteger(), nullable=False, server_default="0"),
    )
    op.alter_column("response_intervals", "crews", server_default=None)
    op.create_table(
        "response_cell_days",
        sa.Column("res", sa.SmallInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("cell", sa.BigInteger(), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("incidents", sa.Integer(), nullable=False),
        sa.Column(
            "total_response_s", postgresql.ARRAY(postgresql.DOUBLE_PRECISION()), nullable=False
        ),
        sa.PrimaryKeyConstraint("res", "day", "cell", "region"),
    )


def downgrade() -> None:
    op.drop_table("response_cell_days")
    op.drop_column("response_intervals", "crews")
    op.drop_column("response_intervals", "call_processing_s")
