"""federation: registry of regional centres, witnessed regional tree heads, verified regional
events, taken notifications (replay guard), refused documents

Revision ID: 0008_federation
Revises: 0007_partition_fn
Create Date: 2026-12-03 12:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_federation"
down_revision: str | None = "0007_partition_fn"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "federation_centres",
        sa.Column("code", sa.String(16), primary_key=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("log_id", sa.String(64), nullable=False, unique=True),
        sa.Column("added_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
    )
    op.create_table(
        "federation_heads",
        sa.Column("centre_code", sa.String(16), sa.ForeignKey("federation_centres.code"),
                  primary_key=True),
        sa.Column("tree_size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
    )
    op.create_table(
        "federation_events",
        sa.Column("centre_code", sa.String(16), sa.ForeignKey("federation_centres.code"),
                  primary_key=True),
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.Column("incident_ref", sa.String(32), nullable=False),
        sa.Column("incident_seq", sa.Integer(), nullable=False),
        sa.Column("national_event_id", sa.BigInteger(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
    )
    op.create_index("ix_federation_events_incident_ref", "federation_events", ["incident_ref"])
    op.create_table(
        "federation_notifications",
        sa.Column("notification_id", sa.String(64), primary_key=True),
        sa.Column("centre_code", sa.String(16), sa.ForeignKey("federation_centres.code"),
                  nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
    )
    op.create_table(
        "federation_refusals",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("centre_code", sa.String(16), nullable=True),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
    )
    # What was witnessed stays witnessed: the application may add heads, never change them.
    for table in ("federation_heads", "federation_events"):
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION geodispatch_refuse_change()")


def downgrade() -> None:
    for table in ("federation_refusals", "federation_notifications", "federation_events",
                  "federation_heads", "federation_centres"):
        op.drop_table(table)
