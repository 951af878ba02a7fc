"""archive imports: import_batches (one per imported file), incidents/assignments.import_batch_id,
and an import batch as a subject of the signed record (incident_events.import_batch_id): one event
per batch carries the file's sha256, its counts and a hash over the canonical imported rows

Revision ID: 0014_import_batches
Revises: 0013_crew_roster
Create Date: 2026-12-06 21:30:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_import_batches"
down_revision: str | None = "0013_crew_roster"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "import_batches",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("region", sa.String(16), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("mapping", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, server_default=sa.func.now(), nullable=False),
    )
    for table in ("incidents", "assignments"):
        op.add_column(table, sa.Column("import_batch_id", sa.Integer(),
                                       sa.ForeignKey("import_batches.id"), nullable=True))
        op.create_index(f"ix_{table}_import_batch", table, ["import_batch_id"])
    op.add_column("incident_events", sa.Column("import_batch_id", sa.Integer(),
                                               sa.ForeignKey("import_batches.id"),
                                               nullable=True))
    op.create_index("ix_incident_events_import_batch_id", "incident_events", ["import_batch_id"])
    op.drop_constraint("ck_incident_events_one_subject", "incident_events", type_="check")
    op.create_check_constraint("ck_incident_events_one_subject", "incident_events",
                               "num_nonnulls(incident_id, call_id, unit_id, import_batch_id) = 1")
    op.create_unique_constraint("uq_incident_events_batch_seq", "incident_events",
                                ["import_batch_id", "incident_seq"])


def downgrade() -> None:
    op.drop_constraint("uq_incident_events_batch_seq", "incident_events", type_="unique")
    op.drop_constraint("ck_incident_events_one_subject", "incident_events", type_="check")
    op.create_check_constraint("ck_incident_events_one_subject", "incident_events",
                               "num_nonnulls(incident_id, call_id, unit_id) = 1")
    op.drop_index("ix_incident_events_import_batch_id", "incident_events")
    op.drop_column("incident_events", "import_batch_id")
    for table in ("assignments", "incidents"):
        op.drop_index(f"ix_{table}_import_batch", table)
        op.drop_column(table, "import_batch_id")
    op.drop_table("import_batches")
