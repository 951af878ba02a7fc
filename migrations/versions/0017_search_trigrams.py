"""search at archive scale: trigram indexes (pg_trgm) for the console's search box on the
incident reference, the address as typed and as resolved, the caller's number and the crew call
sign, so a reference or a rare street is found among a year of incidents without a full scan

Revision ID: 0017_search_trigrams
Revises: 0016_intervals_received_btree
Create Date: 2026-12-06 22:10:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0017_search_trigrams"
down_revision: str | None = "0016_intervals_received_btree"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (index, table, column): what ``incidents.service.list_incidents`` matches with (I)LIKE.
INDEXES = (
    ("ix_incidents_reference_trgm", "incidents", "reference"),
    ("ix_incidents_address_trgm", "incidents", "address"),
    ("ix_incidents_address_resolved_trgm", "incidents", "address_resolved"),
    ("ix_incidents_caller_phone_trgm", "incidents", "caller_phone"),
    ("ix_units_call_sign_trgm", "units", "call_sign"),
)


def upgrade() -> None:
    # pg_trgm is a trusted extension: the database owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table, column in INDEXES:
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} "
                   f"USING gin ({column} gin_trgm_ops)")


def downgrade() -> None:
    for name, _table, _column in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
