"""ledger: log_nodes, the perfect interior nodes of the Merkle tree, so a proof is read, not rebuilt

An inclusion or consistency proof needs O(log n) perfect subtree roots. Without them the API
rebuilt the whole tree from every leaf for each proof (2.9 s at 1,000,000 events). The sequencer
now stores every interior node as soon as it is complete (level >= 1; level 0 is
``log_leaves.leaf_hash``), in the same transaction as the leaves and the signed head; on start it
fills in the nodes of a log sealed before this table existed. The nodes are derived data: a
changed node gives a proof that fails against the signed root, never one that passes, so they
need no more protection than the append-only trigger and the application's read-only grant.

Revision ID: 0010_log_nodes
Revises: 0009_geocoding
Create Date: 2026-12-03 07:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_log_nodes"
down_revision: str | None = "0009_geocoding"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "log_nodes",
        sa.Column("level", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("level >= 1 AND idx >= 0", name="ck_log_nodes_position"),
    )
    op.execute("CREATE TRIGGER log_nodes_append_only BEFORE UPDATE OR DELETE ON log_nodes "
               "FOR EACH ROW EXECUTE FUNCTION geodispatch_refuse_change()")
    op.execute("CREATE TRIGGER log_nodes_no_truncate BEFORE TRUNCATE ON log_nodes "
               "FOR EACH STATEMENT EXECUTE FUNCTION geodispatch_refuse_change()")


def downgrade() -> None:
    op.drop_table("log_nodes")
