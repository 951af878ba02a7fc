"""Tracking's timers: position partitions created ahead of time, and the health a supervisor sees.

``positions`` is range-partitioned by month with a default partition for anything else. A month
without its partition sends its rows to the default one, where every query over that month scans
them all; the database function ``ensure_position_partitions`` (migration 0007) creates the
current month and ``partition_months_ahead`` more, and gives every month that has rows in the
default partition (late fixes, imported tracks) its own partition, moving the rows into it.

:class:`PartitionJob` runs it at start and then every ``partition_job_interval_s``, in the ingest
supervisor (``geodispatch ingest``) and in ``serve``; ``geodispatch tracking partitions`` runs it
once (cron). A failure is logged at ERROR. :func:`tracking_alerts` turns what a failure leads to
into supervisor alerts (shown with the dispatch timers at ``GET /api/dispatch/alerts``): a month
of the coming window without its partition, rows in the default partition, and messages
dead-lettered in the last hour.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from geodispatch.db import transaction
from geodispatch.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_ROWS_COUNTED = 100_000  # counting stops here: the alert only needs "how bad"

PARTITIONS_SQL = """
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'positions'::regclass
"""


def _month(at: datetime, ahead: int) -> str:
    at = at.astimezone(UTC)
    index = at.year * 12 + at.month - 1 + ahead
    return f"positions_{index // 12:04d}{index % 12 + 1:02d}"


def ensure_partitions(*, session: Session, months_ahead: int, now: datetime | None = None) -> int:
    """Create the monthly partitions from ``now``'s month to ``months_ahead`` months later (and
    move their rows out of the default partition); return how many were created."""
    created = session.execute(text("SELECT ensure_position_partitions(:at, :n)"),
                              {"at": now or datetime.now(UTC), "n": months_ahead}).scalar()
    return int(created or 0)


@dataclass
class PartitionStatus:
    """Which monthly partitions of a window are missing, and how full the default one is."""

    missing: list[str] = field(default_factory=list)
    default_rows: int = 0


def partition_status(*, session: Session, months: int, now: datetime | None = None,
                     received_before: datetime | None = None) -> PartitionStatus:
    """The partitions of ``now``'s month and the ``months - 1`` following that do not exist, and
    the rows in the default partition (received before ``received_before`` if given; counted up
    to ``DEFAULT_ROWS_COUNTED``)."""
    now = now or datetime.now(UTC)
    have = {r[0] for r in session.execute(text(PARTITIONS_SQL))}
    missing = [name for name in (_month(now, i) for i in range(months)) if name not in have]
    rows = session.execute(text(
        "SELECT count(*) FROM (SELECT 1 FROM positions_default WHERE CAST(:cut AS timestamptz) "
        f"IS NULL OR received_at < :cut LIMIT {DEFAULT_ROWS_COUNTED}) d"),
        {"cut": received_before}).scalar()
    return PartitionStatus(missing=missing, default_rows=int(rows or 0))


@dataclass(frozen=True)
class HealthAlert:
    """A system condition a supervisor must see (shaped like the dispatch timers' alerts)."""

    kind: str
    severity: str
    since: datetime
    seconds: float
    message: str


def tracking_alerts(*, session: Session, settings: Settings, now: datetime | None = None,
                    ) -> list[HealthAlert]:
    """Partitions missing from the coming window (high: the scheduled job is failing), rows in
    the default partition (medium), messages dead-lettered in the last hour (medium)."""
    now = now or datetime.now(UTC)
    out: list[HealthAlert] = []
    # The job keeps partition_months_ahead months ready; one month short is the slack of a
    # month change, anything more means it has not run successfully for a while.
    # Rows reach the default partition legitimately (a late fix for a month not created yet,
    # an old imported track) and the next run of the job moves them; still there after a whole
    # interval, the job is not running.
    status = partition_status(
        session=session, months=max(1, settings.partition_months_ahead), now=now,
        received_before=now - timedelta(seconds=settings.partition_job_interval_s))
    if status.missing:
        out.append(HealthAlert(
            "position_partitions_missing", "high", now, 0.0,
            f"position partitions missing: {', '.join(status.missing)} (the partition job is "
            "failing: see the ingest or serve log; `geodispatch tracking partitions` runs it)"))
    if status.default_rows:
        shown = (f"{status.default_rows:,}" if status.default_rows < DEFAULT_ROWS_COUNTED
                 else f"over {DEFAULT_ROWS_COUNTED:,}")
        out.append(HealthAlert(
            "positions_in_default_partition", "medium", now, 0.0,
            f"{shown} positions have been in the default partition for over "
            f"{settings.partition_job_interval_s:.0f} s (the partition job is not running: see "
            "the ingest or serve log; `geodispatch tracking partitions` moves them)"))
    hour_ago = now - timedelta(hours=1)
    row = session.execute(text(
        "SELECT count(*), min(received_at) FROM ingest_dead_letters WHERE received_at > :t"),
        {"t": hour_ago}).one()
    if row[0]:
        since = row[1] or now
        out.append(HealthAlert(
            "ingest_dead_letters", "medium", since, (now - since).total_seconds(),
            f"{row[0]} tracker message(s) dead-lettered in the last hour "
            "(`geodispatch tracking dead-letters`)"))
    return out


class PartitionJob:
    """Ensure the position partitions now and then every ``partition_job_interval_s``."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        self.factory = factory
        self.settings = settings
        self.last_error: str | None = None
        self.runs = 0

    def run_once(self) -> bool:
        """One attempt; a failure is logged at ERROR (and remembered in ``last_error``)."""
        self.runs += 1
        try:
            with transaction(self.factory) as session:
                created = ensure_partitions(session=session,
                                            months_ahead=self.settings.partition_months_ahead)
        except Exception as exc:  # noqa: BLE001 - logged; the next run tries again
            orig = getattr(exc, "orig", None) or exc
            self.last_error = (str(orig).strip().splitlines() or [type(orig).__name__])[0][:300]
            log.error("position partitions not ensured (%s): rows go to the default partition "
                      "until this works", self.last_error)
            return False
        self.last_error = None
        if created:
            log.info("created %d position partition(s)", created)
        return True

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: at once, then every interval (a failure retries after a minute)."""
        while not stop.is_set():
            ok = self.run_once()
            interval = self.settings.partition_job_interval_s
            stop.wait(interval if ok else min(60.0, interval))
