"""calls: every call from its first ring (calls, call_callbacks, call_locations, rejects); a
call is a subject of the signed record of its own (incident_events.call_id)

Revision ID: 0011_calls
Revises: 0010_log_nodes
Create Date: 2026-12-05 09:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_calls"
down_revision: str | None = "0010_log_nodes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("caller_phone", sa.String(64), nullable=True),
        sa.Column("line", sa.String(64), nullable=False),
        sa.Column("ring_at", TZ, nullable=False),
        sa.Column("recorded_at", TZ, server_default=sa.func.now(), nullable=False),
        sa.Column("queue_position", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("answered_at", TZ, nullable=True),
        sa.Column("operator", sa.String(64), nullable=True),
        sa.Column("ended_at", TZ, nullable=True),
        sa.Column("outcome", sa.String(24), nullable=True),
        sa.Column("outcome_at", TZ, nullable=True),
        sa.Column("outcome_by", sa.String(64), nullable=True),
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("incidents.id"), nullable=True),
        sa.Column("transferred_to", sa.String(128), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("closed_at", TZ, nullable=True),
        sa.Column("event_count", sa.Integer(), server_default="0", nullable=False),
        sa.UniqueConstraint("source", "external_id", name="uq_calls_source_external_id"),
        sa.CheckConstraint("state IN ('ringing','answered','ended','abandoned','closed')",
                           name="ck_calls_state"),
        sa.CheckConstraint("outcome IS NULL OR outcome IN ('new_incident','additional_caller',"
                           "'information','prank','wrong_number','silent','transferred')",
                           name="ck_calls_outcome"),
        sa.CheckConstraint("state <> 'closed' OR outcome IS NOT NULL OR answered_at IS NULL",
                           name="ck_calls_closed_has_outcome"),
    )
    op.create_index("ix_calls_state", "calls", ["state"])
    op.create_index("ix_calls_ring_at", "calls", ["ring_at"])
    op.create_index("ix_calls_caller_phone", "calls", ["caller_phone"])
    op.create_index("ix_calls_incident_id", "calls", ["incident_id"])
    op.create_table(
        "call_callbacks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("call_id", sa.Integer(), sa.ForeignKey("calls.id"), nullable=False),
        sa.Column("phone", sa.String(64), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sms_id", sa.Integer(), sa.ForeignKey("sms_outbox.id"), nullable=True),
        sa.Column("sms_skipped", sa.String(64), nullable=True),
        sa.Column("done_at", TZ, nullable=True),
        sa.Column("done_by", sa.String(64), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.CheckConstraint("status IN ('pending','done','failed')",
                           name="ck_call_callbacks_status"),
    )
    op.create_index("ix_call_callbacks_call_id", "call_callbacks", ["call_id"])
    op.create_index("ix_call_callbacks_status", "call_callbacks", ["status"])
    op.create_table(
        "call_locations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("phone", sa.String(64), nullable=True),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lng", sa.Float(), nullable=True),
        sa.Column("radius_m", sa.Float(), nullable=True),
        sa.Column("fix_at", TZ, nullable=True),
        sa.Column("method", sa.String(32), nullable=True),
        sa.Column("confidence", sa.Integer(), nullable=True),
        sa.Column("call_id", sa.Integer(), sa.ForeignKey("calls.id"), nullable=True),
        sa.Column("matched_at", TZ, nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
    )
    op.create_index("ix_call_locations_phone", "call_locations", ["phone", "received_at"])
    op.create_index("ix_call_locations_call_id", "call_locations", ["call_id"])
    op.create_table(
        "call_location_rejects",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("received_at", TZ, server_default=sa.func.now(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
    )
    # A call is a subject of the record of its own.
    op.add_column("incident_events", sa.Column("call_id", sa.Integer(),
                                               sa.ForeignKey("calls.id"), nullable=True))
    op.create_index("ix_incident_events_call_id", "incident_events", ["call_id"])
    op.alter_column("incident_events", "incident_id", nullable=True)
    op.create_unique_constraint("uq_incident_events_call_seq", "incident_events",
                                ["call_id", "incident_seq"])
    op.create_check_constraint("ck_incident_events_one_subject", "incident_events",
                               "(incident_id IS NULL) <> (call_id IS NULL)")


def downgrade() -> None:
    op.drop_constraint("ck_incident_events_one_subject", "incident_events", type_="check")
    op.drop_constraint("uq_incident_events_call_seq", "incident_events", type_="unique")
    op.alter_column("incident_events", "incident_id", nullable=False)
    op.drop_index("ix_incident_events_call_id", "incident_events")
    op.drop_column("incident_events", "call_id")
    for t in ("call_location_rejects", "call_locations", "call_callbacks", "calls"):
        op.drop_table(t)
