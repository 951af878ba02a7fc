"""the signed event log: canonical event bodies, per-incident sequence, Merkle leaves, tree heads

Replaces the single hash chain (one advisory lock in every write) with events written in their
own transactions and sealed by one sequencer into an RFC 6962 Merkle log with signed tree heads.

Existing events keep their content: each gets its per-incident sequence number and a canonical
body without a state (``"state": null``), and every existing incident gets one ``migrated``
event carrying the state of its rows now, so verification covers them from this point on.

What the triggers below do and do not do: they make the event and log tables append-only for the
application role (which also lacks the grants). The owner role and a superuser can disable or drop
a trigger; nothing inside the database can stop them. What stops them from changing the record
unseen is the signed log and its witnesses outside the database, not these triggers.

Revision ID: 0003_log
Revises: 0002_analytics
Create Date: 2026-12-02 17:40:00
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003_log"
down_revision: str | None = "0002_analytics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ("incident_events", "log_leaves", "tree_heads")

QUEUE_FN = """
CREATE OR REPLACE FUNCTION geodispatch_queue_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    INSERT INTO log_pending (event_id) VALUES (NEW.id);
    RETURN NULL;
END $$;
"""


def _legacy_bodies(conn: sa.Connection) -> None:
    import rfc8785

    rows = conn.execute(sa.text(
        "SELECT id, incident_id, kind, actor, at, data FROM incident_events ORDER BY id")).all()
    seq: dict[int, int] = {}
    for r in rows:
        n = seq[r.incident_id] = seq.get(r.incident_id, 0) + 1
        body = rfc8785.dumps({
            "v": 1, "incident_id": r.incident_id, "incident_seq": n, "kind": r.kind,
            "actor": r.actor, "at": r.at.astimezone(UTC).isoformat(timespec="microseconds"),
            "data": r.data, "state": None})
        conn.execute(sa.text("UPDATE incident_events SET incident_seq = :n, body = :b "
                             "WHERE id = :i"), {"n": n, "b": body, "i": r.id})
    for iid, n in seq.items():
        conn.execute(sa.text("UPDATE incidents SET event_count = :n WHERE id = :i"),
                     {"n": n, "i": iid})


def _migrated_events(conn: sa.Connection) -> None:
    from sqlalchemy.orm import Session

    from geodispatch.incidents.record import append_event

    ids = [int(i) for i in conn.execute(sa.text("SELECT id FROM incidents ORDER BY id")).scalars()]
    if not ids:
        return
    session = Session(bind=conn)
    now = datetime.now(UTC)
    for iid in ids:
        append_event(session=session, incident_id=iid, kind="migrated", actor="migration",
                     data={"note": "state of the rows when the signed log was introduced"},
                     at=now)
    session.flush()
    session.info.clear()
    session.close()


def upgrade() -> None:
    conn = op.get_bind()
    for table in ("incident_events", "chain_anchors"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    op.drop_table("chain_anchors")

    op.add_column("incidents", sa.Column("event_count", sa.Integer(), nullable=False,
                                         server_default="0"))
    op.add_column("incident_events", sa.Column("incident_seq", sa.Integer(), nullable=True))
    op.add_column("incident_events", sa.Column("body", sa.LargeBinary(), nullable=True))
    _legacy_bodies(conn)
    op.alter_column("incident_events", "incident_seq", nullable=False)
    op.alter_column("incident_events", "body", nullable=False)
    op.drop_constraint("incident_events_hash_key", "incident_events", type_="unique")
    op.drop_column("incident_events", "prev_hash")
    op.drop_column("incident_events", "hash")
    op.create_unique_constraint("uq_incident_events_incident_seq", "incident_events",
                                ["incident_id", "incident_seq"])
    op.create_check_constraint("ck_incident_events_seq_positive", "incident_events",
                               "incident_seq > 0")

    op.create_table(
        "log_pending",
        sa.Column("event_id", sa.BigInteger(), sa.ForeignKey("incident_events.id"),
                  primary_key=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
    )
    op.create_table(
        "log_leaves",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.BigInteger(), sa.ForeignKey("incident_events.id"),
                  nullable=False, unique=True),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
    )
    op.create_table(
        "tree_heads",
        sa.Column("tree_size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("log_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
    )
    # Every event already stored waits for its first sealing, in id order.
    op.execute("INSERT INTO log_pending (event_id) SELECT id FROM incident_events ORDER BY id")
    op.execute(QUEUE_FN)
    op.execute("CREATE TRIGGER incident_events_queue AFTER INSERT ON incident_events "
               "FOR EACH ROW EXECUTE FUNCTION geodispatch_queue_event()")
    _migrated_events(conn)
    for table in APPEND_ONLY:
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION geodispatch_refuse_change()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION geodispatch_refuse_change()")


def downgrade() -> None:
    raise NotImplementedError(
        "the signed log cannot be turned back into the hash chain without re-hashing the record; "
        "restore a backup taken before 0003_log instead")
