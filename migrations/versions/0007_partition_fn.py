"""tracking: ensure_position_partitions() runs as the owner, moves default-partition rows, says
how many partitions it created

The first version ran with the caller's rights: the application role may not create tables, so
the ingest worker's call failed (and was logged at DEBUG), and rows piled into the default
partition, after which creating that month's partition failed too ("updated partition
constraint for default partition would be violated"). This one is SECURITY DEFINER (owned by
the schema owner, callable by the application role), serialised by an advisory lock (the
scheduled job, the workers and ``serve`` may all call it), pinned to UTC (month boundaries do not
depend on the session's time zone), and it also gives every month that has rows in the default
partition its own partition (created apart, the rows moved into it, then attached), so the
default partition is empty afterwards.

Revision ID: 0007_partition_fn
Revises: 0006_unit_directory
Create Date: 2026-12-03 11:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007_partition_fn"
down_revision: str | None = "0006_unit_directory"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENSURE_FN = """
CREATE FUNCTION ensure_position_partitions(around timestamptz, months_ahead int)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp SET "TimeZone" = 'UTC' AS $$
DECLARE
    m date;
    lo timestamptz;
    hi timestamptz;
    name text;
    created integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('geodispatch.position_partitions'));
    -- The coming months, and every month that already has rows in the default partition
    -- (late or imported fixes): afterwards the default partition is empty.
    FOR m IN
        SELECT (date_trunc('month', around) + make_interval(months => i))::date
        FROM generate_series(0, months_ahead) AS i
        UNION
        SELECT DISTINCT date_trunc('month', fix_time)::date FROM positions_default
        ORDER BY 1
    LOOP
        name := 'positions_' || to_char(m, 'YYYYMM');
        lo := m::timestamptz;
        hi := (m + interval '1 month')::timestamptz;
        CONTINUE WHEN to_regclass(name) IS NOT NULL;
        IF EXISTS (SELECT 1 FROM positions_default WHERE fix_time >= lo AND fix_time < hi) THEN
            EXECUTE format('CREATE TABLE %I (LIKE positions INCLUDING DEFAULTS)', name);
            EXECUTE format('WITH moved AS (DELETE FROM positions_default WHERE fix_time >= %L '
                           'AND fix_time < %L RETURNING *) INSERT INTO %I SELECT * FROM moved',
                           lo, hi, name);
            EXECUTE format('ALTER TABLE positions ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                           name, lo, hi);
        ELSE
            EXECUTE format('CREATE TABLE %I PARTITION OF positions FOR VALUES FROM (%L) TO (%L)',
                           name, lo, hi);
        END IF;
        created := created + 1;
    END LOOP;
    RETURN created;
END $$;
"""

OLD_FN = """
CREATE FUNCTION ensure_position_partitions(around timestamptz, months_ahead int)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    m date;
    name text;
BEGIN
    FOR i IN 0..months_ahead LOOP
        m := (date_trunc('month', around) + make_interval(months => i))::date;
        name := 'positions_' || to_char(m, 'YYYYMM');
        IF to_regclass(name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF positions FOR VALUES FROM (%L) TO (%L)',
                name, m::timestamptz, (m + interval '1 month')::timestamptz);
        END IF;
    END LOOP;
END $$;
"""


def upgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS ensure_position_partitions(timestamptz, int)")
    op.execute(ENSURE_FN)
    op.execute("REVOKE ALL ON FUNCTION ensure_position_partitions(timestamptz, int) FROM PUBLIC")
    op.execute("SELECT ensure_position_partitions(now(), 3)")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS ensure_position_partitions(timestamptz, int)")
    op.execute(OLD_FN)
