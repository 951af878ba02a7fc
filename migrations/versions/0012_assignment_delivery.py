"""assignment delivery: when each assignment was sent to the crew terminal, received by it, how
often it was sent; crew report idempotency keys (a press resent by an offline terminal is stored
once)

Revision ID: 0012_assignment_delivery
Revises: 0011_calls
Create Date: 2026-12-06 07:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_assignment_delivery"
down_revision: str | None = "0011_calls"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("assignments", sa.Column("sent_at", TZ, nullable=True))
    op.add_column("assignments", sa.Column("delivered_at", TZ, nullable=True))
    op.add_column("assignments", sa.Column("send_count", sa.Integer(), nullable=False,
                                           server_default="0"))
    op.create_table(
        "crew_report_keys",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("unit_id", sa.Integer(), sa.ForeignKey("units.id"), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("received_at", TZ, server_default=sa.func.now(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("crew_report_keys")
    for col in ("send_count", "delivered_at", "sent_at"):
        op.drop_column("assignments", col)
