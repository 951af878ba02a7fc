"""One ingest step shared by the MQTT worker, HTTP ingest and GPX import.

:class:`Ingestor` takes decoded reports (or ``Rejected`` markers from the decoders), resolves each
device to its unit, validates, and splits the batch into positions to write, crew statuses,
offline notices and drops. :meth:`Ingestor.write` then does all the database work of the batch in
the caller's transaction; after the caller commits, :meth:`Ingestor.publish` pushes the changes to
the live fleet. Keeping "prepare" apart from "write" lets the worker retry the write of the very
same batch after a database outage.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from geodispatch.geo import LatLng
from geodispatch.settings import Settings
from geodispatch.tracking.fleet import LiveFleet
from geodispatch.tracking.models import Unit
from geodispatch.tracking.pipeline import (
    Drops,
    Validator,
    WriteResult,
    implausible_field,
    mark_offline,
    record_drops,
    record_positions,
    storage_problem,
)
from geodispatch.tracking.reports import (
    DEAD_LETTER_REASONS,
    IMPLAUSIBLE,
    INTERNAL,
    STATUS_REJECTED,
    UNKNOWN_DEVICE,
    UNSTORABLE,
    OfflineReport,
    PositionReport,
    Rejected,
    Report,
    StatusReport,
)

log = logging.getLogger(__name__)

DIRECTORY_POLL_S = 1.0


VERSION_SQL = "SELECT version FROM unit_directory_version WHERE id = 1"


class DeviceDirectory:
    """Device id and OwnTracks ``user/device`` -> unit id of the *active* units.

    ``version`` is the ``unit_directory_version`` row seen at the last load: a trigger bumps it
    whenever a unit is created, deleted, (de)activated or changes logins, and
    :meth:`refresh_if_changed` reloads when it moved.
    """

    def __init__(self) -> None:
        self.by_device: dict[str, int] = {}
        self.by_owntracks: dict[tuple[str, str], int] = {}
        self.loaded_at = 0.0
        self.version: int | None = None

    def load(self, session: Session) -> None:
        version = session.execute(text(VERSION_SQL)).scalar()
        by_device: dict[str, int] = {}
        by_ot: dict[tuple[str, str], int] = {}
        for uid, dev, ot_user, ot_dev in session.execute(
            select(Unit.id, Unit.device_id, Unit.owntracks_user, Unit.owntracks_device).where(
                Unit.active.is_(True)
            )
        ):
            by_device[dev] = uid
            if ot_user:
                by_ot[(ot_user, ot_dev or "")] = uid
        self.by_device, self.by_owntracks = by_device, by_ot
        self.version = None if version is None else int(version)
        self.loaded_at = time.monotonic()

    def refresh_if_changed(self, session: Session) -> bool:
        """Reload if the units changed since the last load; True when it reloaded."""
        version = session.execute(text(VERSION_SQL)).scalar()
        if version is not None and self.version is not None and int(version) == self.version:
            return False
        self.load(session)
        return True

    def resolve(self, device: str, source: str) -> int | None:
        """The unit of a device key (OwnTracks keys are ``user/device``)."""
        if source != "owntracks":
            return self.by_device.get(device)
        user, _, dev = device.partition("/")
        # The broker ACL makes the topic's user the publisher's MQTT username = a device id.
        uid = self.by_device.get(user)
        if uid is None:
            uid = self.by_owntracks.get((user, dev)) or self.by_owntracks.get((user, ""))
        return uid


@dataclass
class Batch:
    """A prepared batch: what to write, and what was dropped (already logged).

    Every report carries ``msg``, the index of the message (MQTT) or body member (HTTP) it came
    from; ``rejected`` lists ``(msg, reason, detail, unit_id)`` of every drop, so
    the HTTP edge can answer per member and the worker can dead-letter whole messages.
    ``token`` is the validator's: :meth:`Ingestor.publish` commits it, :meth:`Ingestor.abandon`
    discards it.
    """

    positions: list[PositionReport] = field(default_factory=list)
    statuses: list[StatusReport] = field(default_factory=list)
    offline: list[OfflineReport] = field(default_factory=list)
    heartbeats: int = 0
    drops: Drops = field(default_factory=Drops)
    statuses_applied: list[StatusReport] = field(default_factory=list)
    rejected: list[tuple[int, str, str, int | None]] = field(default_factory=list)
    token: int = 0

    def messages(self) -> list[int]:
        """Indices of the messages that have something to write (sorted)."""
        found = {r.msg for r in self.positions}
        found.update(r.msg for r in self.statuses)
        found.update(r.msg for r in self.offline)
        return sorted(found)

    def subset(self, msgs: Iterable[int]) -> Batch:
        """The part of this batch that came from ``msgs`` (no drop counts: they stay here)."""
        keep = set(msgs)
        return Batch(
            positions=[r for r in self.positions if r.msg in keep],
            statuses=[r for r in self.statuses if r.msg in keep],
            offline=[r for r in self.offline if r.msg in keep],
            token=self.token,
        )

    def dead_letters(self) -> list[tuple[int, str, str, int | None]]:
        """``(msg, reason, detail, unit_id)`` of the drops whose message is to be kept whole."""
        seen: set[int] = set()
        out = []
        for msg, reason, detail, unit in self.rejected:
            if reason in DEAD_LETTER_REASONS and msg >= 0 and msg not in seen:
                seen.add(msg)
                out.append((msg, reason, detail, unit))
        return out


Item = Report | Rejected | tuple[str, Rejected]
class StatusHandler(Protocol):
    """Applies a crew status decoded by ingest (the dispatch workflow's
    ``crew_status_report``, handed over by the composition root)."""

    def __call__(self, *, session: Session, unit_id: int, status: str, at: datetime | None,
                 source: str, key: str | None = None,
                 assignment_id: int | None = None) -> object: ...


class Ingestor:
    """Resolve, validate, write and publish batches of reports (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        *,
        fleet: LiveFleet | None = None,
        directory: DeviceDirectory | None = None,
        session_factory: sessionmaker[Session] | None = None,
        status_handler: StatusHandler | None = None,
    ) -> None:
        self.settings = settings
        self.fleet = fleet
        self.directory = directory or DeviceDirectory()
        self.session_factory = session_factory
        self.validator = Validator(settings)
        self.status_handler = status_handler
        self._checked_at = time.monotonic()

    def load(self, session: Session) -> None:
        """Load the device directory and seed the validator from ``unit_latest``."""
        self.directory.load(session)
        for uid, fix_time, lat, lng in session.execute(
            text("SELECT unit_id, fix_time, ST_Y(geom), ST_X(geom) FROM unit_latest")
        ):
            self.validator.seed(uid, fix_time, LatLng(lat, lng))

    def _check_directory(self) -> None:
        """At most once a second: reload the device directory if the units changed (a unit
        deactivated in another process is refused from then on)."""
        if self.session_factory is None or time.monotonic() - self._checked_at < DIRECTORY_POLL_S:
            return
        self._checked_at = time.monotonic()
        try:
            with self.session_factory() as session:
                if self.directory.refresh_if_changed(session):
                    log.info("device directory reloaded: %d active devices",
                             len(self.directory.by_device))
        except Exception as exc:  # noqa: BLE001 - an outage: keep the directory we have
            log.warning("device directory not checked (%s)", type(exc).__name__)

    def _resolve(self, report: Report) -> int | None:
        if report.unit_id is not None:
            return report.unit_id
        uid = self.directory.resolve(report.device, report.source)
        if uid is None and self.session_factory is not None and (
            time.monotonic() - self.directory.loaded_at > 2.0
        ):
            # A unit created since the last load (another process): reload, at most every 2 s.
            try:
                with self.session_factory() as session:
                    self.directory.load(session)
            except Exception as exc:  # noqa: BLE001 - an outage: keep the directory we have
                self.directory.loaded_at = time.monotonic()
                log.warning("device directory not reloaded (%s)", type(exc).__name__)
            uid = self.directory.resolve(report.device, report.source)
        report.unit_id = uid
        return uid

    def prepare(self, items: Iterable[Item], *, now: datetime | None = None,
                check_age: bool = True) -> Batch:
        """Split decoded items into a :class:`Batch`; every drop is counted and logged.

        Total: an item on which a step raises is dropped as ``internal_error`` (and logged with
        its traceback) instead of failing the batch.
        """
        now = now or datetime.now(UTC)
        self._check_directory()
        batch = Batch(token=self.validator.begin())
        drops = batch.drops
        rejected = batch.rejected
        check = self.validator.check
        token = batch.token
        for item in items:
            try:
                if isinstance(item, tuple):
                    device, exc = item
                    drops.add(exc.reason, unit=device, detail=exc.detail)
                    rejected.append((exc.msg, exc.reason, exc.detail, None))
                    continue
                if isinstance(item, Rejected):
                    drops.add(item.reason, unit="?", detail=item.detail)
                    rejected.append((item.msg, item.reason, item.detail, None))
                    continue
                uid = self._resolve(item)
                if uid is None:
                    drops.add(UNKNOWN_DEVICE, unit=item.device)
                    rejected.append((item.msg, UNKNOWN_DEVICE, "", None))
                    continue
                if isinstance(item, PositionReport):
                    if item.position is None:
                        batch.heartbeats += 1
                        continue
                    problem = storage_problem(item)
                    if problem is not None:
                        drops.add(UNSTORABLE, unit=uid, detail=problem)
                        rejected.append((item.msg, UNSTORABLE, problem, uid))
                        continue
                    problem = implausible_field(item, self.settings)
                    if problem is not None:
                        drops.add(IMPLAUSIBLE, unit=uid, detail=problem)
                        rejected.append((item.msg, IMPLAUSIBLE, problem, uid))
                        continue
                    reason = check(item, now=now, check_age=check_age, token=token)
                    if reason is None:
                        batch.positions.append(item)
                    else:
                        detail = item.fix_time.isoformat()
                        drops.add(reason, unit=uid, detail=detail)
                        rejected.append((item.msg, reason, detail, uid))
                elif isinstance(item, StatusReport):
                    batch.statuses.append(item)
                else:
                    batch.offline.append(item)
            except Exception as exc:  # noqa: BLE001 - one item never fails the batch
                msg = getattr(item, "msg", -1)
                log.exception("ingest step failed on an item of message %s", msg)
                detail = f"{type(exc).__name__}: {str(exc)[:200]}"
                drops.add(INTERNAL, unit="?", detail=detail)
                unit = getattr(item, "unit_id", None)
                rejected.append((msg if isinstance(msg, int) else -1, INTERNAL, detail,
                                 unit if isinstance(unit, int) else None))
        return batch

    def write(self, *, session: Session, batch: Batch) -> WriteResult:
        """All database work of one batch in the caller's transaction (flushes, never commits).

        :meth:`write_statuses` then :meth:`write_positions`. The MQTT worker runs them in two
        transactions instead, so the COPY of thousands of fixes never holds (or waits for) the
        dispatch rows a crew status locks.
        """
        status_drops = self.write_statuses(session=session, batch=batch)
        return self.write_positions(session=session, batch=batch, extra_drops=status_drops)

    def write_statuses(self, *, session: Session, batch: Batch) -> Drops:
        """Hand the batch's crew statuses to the dispatch workflow; return the refused ones.

        Statuses go to the ``status_handler`` the composition root gave (the dispatch workflow's
        ``crew_status_report``: tracking does not import dispatch), each inside a savepoint, so
        a refused status is a counted drop and not a failed batch; without a handler every
        status is a counted drop. Safe to call again with the same batch after a rollback (the
        worker retries after database outages).
        """
        drops = Drops()
        batch.statuses_applied = []
        for st in batch.statuses:
            if self.status_handler is None:
                drops.add(STATUS_REJECTED, unit=st.unit_id,
                          detail="this ingest takes no crew statuses (no status handler)")
                continue
            if st.unit_id is None:
                drops.add(STATUS_REJECTED, unit=None, detail="a crew status from no known unit")
                continue
            try:
                with session.begin_nested():
                    self.status_handler(
                        session=session, unit_id=st.unit_id, status=st.status, at=st.at,
                        source=f"mqtt:{st.source}", key=st.key, assignment_id=st.assignment_id,
                    )
                batch.statuses_applied.append(st)
            except Exception as exc:  # noqa: BLE001 - domain refusals (bad transition...)
                if isinstance(exc, OperationalError):
                    raise
                drops.add(STATUS_REJECTED, unit=st.unit_id, detail=f"{type(exc).__name__}: {exc}")
        return drops

    def write_positions(self, *, session: Session, batch: Batch,
                        extra_drops: Drops | None = None) -> WriteResult:
        """Store the batch's fixes and offline flags and count its drops (flushes, never commits).

        Touches no dispatch row; safe to call again with the same batch after a rollback.
        """
        result = record_positions(session=session, reports=batch.positions, settings=self.settings)
        result.written = list(batch.positions)
        mark_offline(session=session, unit_ids=[o.unit_id for o in batch.offline if o.unit_id])
        counts = batch.drops.counts + (extra_drops.counts if extra_drops else Counter())
        if result.duplicates:
            counts["duplicate"] += result.duplicates
        record_drops(session=session, counts=counts)
        return result

    def publish(self, batch: Batch, result: WriteResult) -> None:
        """After the commit: the validator remembers what was written; new latest positions,
        statuses and offline flags go to the fleet (a failing fleet subscriber is logged, never
        raised: the batch is committed and must be acknowledged)."""
        self.validator.commit(batch.token, result.written)
        fleet = self.fleet
        if fleet is None:
            return
        try:
            if result.latest_moved:
                moved = result.latest_moved
                fleet.apply_positions(r for r in result.written if r.unit_id in moved)
            for st in batch.statuses_applied:
                if st.unit_id is not None:
                    fleet.set_status(st.unit_id, st.status)
            for off in batch.offline:
                if off.unit_id is not None:
                    fleet.set_online(off.unit_id, False)
        except Exception:  # noqa: BLE001 - the live map must not stop ingest
            log.exception("live fleet update failed; the 1 s refresh catches up")

    def abandon(self, batch: Batch) -> None:
        """The batch was not written (or only through :meth:`publish` of its parts)."""
        self.validator.discard(batch.token)
