"""analytics: response_intervals.received_at gets a btree index (the BRIN one only helps rows
stored in time order; an archive imported out of order, or a generated one, made the partial-day
edges of a period scan every row)

Revision ID: 0016_intervals_received_btree
Revises: 0015_response_sketches
Create Date: 2026-12-06 22:15:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0016_intervals_received_btree"
down_revision: str | None = "0015_response_sketches"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_response_intervals_received", table_name="response_intervals",
                  postgresql_using="brin")
    op.create_index("ix_response_intervals_received", "response_intervals", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_response_intervals_received", table_name="response_intervals")
    op.create_index("ix_response_intervals_received", "response_intervals", ["received_at"],
                    postgresql_using="brin")
