"""crew roster: who is in which car for the shift (crew_shifts, one open shift per officer), a
unit's roster as a subject of the signed record (incident_events.unit_id, numbered per unit in
unit_rosters.event_count)

Revision ID: 0013_crew_roster
Revises: 0012_assignment_delivery
Create Date: 2026-12-06 21:20:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_crew_roster"
down_revision: str | None = "0012_assignment_delivery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "unit_rosters",
        sa.Column("unit_id", sa.Integer(), sa.ForeignKey("units.id"), primary_key=True,
                  autoincrement=False),
        sa.Column("event_count", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_table(
        "crew_shifts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("unit_id", sa.Integer(), sa.ForeignKey("units.id"), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("signed_on_at", TZ, nullable=False),
        sa.Column("signed_off_at", TZ, nullable=True),
        sa.Column("signed_off_by", sa.String(64), nullable=True),
        sa.Column("sign_off_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_crew_shifts_unit", "crew_shifts", ["unit_id"])
    op.create_index("ux_crew_shifts_open_user", "crew_shifts", ["user_id"], unique=True,
                    postgresql_where=sa.text("signed_off_at IS NULL"))
    op.add_column("incident_events", sa.Column("unit_id", sa.Integer(),
                                               sa.ForeignKey("units.id"), nullable=True))
    op.create_index("ix_incident_events_unit_id", "incident_events", ["unit_id"])
    op.create_unique_constraint("uq_incident_events_unit_seq", "incident_events",
                                ["unit_id", "incident_seq"])
    op.drop_constraint("ck_incident_events_one_subject", "incident_events", type_="check")
    op.create_check_constraint("ck_incident_events_one_subject", "incident_events",
                               "num_nonnulls(incident_id, call_id, unit_id) = 1")


def downgrade() -> None:
    op.execute("DELETE FROM incident_events WHERE unit_id IS NOT NULL")
    op.drop_constraint("ck_incident_events_one_subject", "incident_events", type_="check")
    op.create_check_constraint("ck_incident_events_one_subject", "incident_events",
                               "(incident_id IS NULL) <> (call_id IS NULL)")
    op.drop_constraint("uq_incident_events_unit_seq", "incident_events", type_="unique")
    op.drop_index("ix_incident_events_unit_id", "incident_events")
    op.drop_column("incident_events", "unit_id")
    op.drop_table("crew_shifts")
    op.drop_table("unit_rosters")
