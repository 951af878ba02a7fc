"""HTTP tracker ingest behind the views: one :class:`Ingestor` per app, one write per request.

What the views need from here:

* :meth:`HttpIngest.ingest` stores an authenticated unit's decoded members and returns an
  :class:`Outcome` per member: stored, filtered (a valid fix the app must not resend: too old,
  duplicate, speed jump...) or refused (the member itself is wrong: reason and a short detail).
* The validator remembers a fix only once its write committed (``Ingestor.publish``), so a fix
  whose write failed is accepted when the phone resends it.
* A write that fails because of the database (an outage: see ``pipeline.is_transient``) raises
  :class:`IngestUnavailable` (the views answer 503, and the apps queue and resend); one that
  fails because of the data is retried member by member, and only the members the database
  refuses are reported (``db_rejected``).
* Text from the request is checked before it reaches SQL (:func:`check_device`) and echoed only
  as a short prefix (:func:`clip`).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from geodispatch.db import transaction
from geodispatch.errors import ConfigurationError, InvalidInput, PermissionDenied
from geodispatch.settings import Settings
from geodispatch.tracking.fleet import LiveFleet
from geodispatch.tracking.ingest import Batch, Ingestor, StatusHandler
from geodispatch.tracking.models import Unit
from geodispatch.tracking.pipeline import WriteResult, is_transient, record_drops
from geodispatch.tracking.reports import (
    BAD_JSON,
    BAD_TYPE,
    BAD_VALUE,
    DB_REJECTED,
    IMPLAUSIBLE,
    INTERNAL,
    MISSING_FIELD,
    NOT_FINITE,
    NULL_ISLAND,
    OUT_OF_RANGE,
    UNSTORABLE,
    Rejected,
    Report,
    StatusReport,
)
from geodispatch.tracking.service import authenticate_device

log = logging.getLogger(__name__)

# Reasons that mean "this member is wrong" (4xx), as opposed to filters of valid fixes.
REFUSED = frozenset((BAD_JSON, BAD_TYPE, BAD_VALUE, MISSING_FIELD, OUT_OF_RANGE, NULL_ISLAND,
                     NOT_FINITE, UNSTORABLE, IMPLAUSIBLE, INTERNAL, DB_REJECTED))
DETAIL_MAX = 120
DEVICE_MAX = 64


def clip(text: object, limit: int = DETAIL_MAX) -> str:
    """At most ``limit`` characters of ``text`` (never echo a 10 kB input back)."""
    value = str(text)
    if len(value) <= limit:
        return value
    return f"{value[:limit]}... ({len(value)} characters)"


def check_device(device: str) -> str:
    """A device id from a request, or ``Rejected`` before it reaches SQL or a log line."""
    if "\x00" in device:
        raise Rejected(UNSTORABLE, "the device id contains U+0000 (NUL)")
    if len(device) > DEVICE_MAX:
        raise Rejected(BAD_VALUE, f"the device id is longer than {DEVICE_MAX} characters")
    return device


class IngestUnavailable(Exception):
    """The database cannot take the write now; the device should resend later (503)."""


@dataclass
class Outcome:
    """What one request's members became."""

    members: int
    stored: int = 0
    drops: Counter[str] = field(default_factory=Counter)
    # (member index, reason, detail) of every member not stored.
    rejected: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def refused(self) -> list[tuple[int, str, str]]:
        """The members refused as wrong (not merely filtered)."""
        return [r for r in self.rejected if r[1] in REFUSED]

    @property
    def all_refused(self) -> bool:
        refused = {i for i, _r, _d in self.refused}
        return self.members > 0 and len(refused) >= self.members

    def members_json(self) -> list[dict[str, Any]]:
        return [{"index": i, "reason": r, "detail": clip(d)} for i, r, d in self.rejected]


class HttpIngest:
    """The app's HTTP ingest state: one Ingestor (validator memory) shared by all requests."""

    def __init__(self, settings: Settings, factory: sessionmaker[Session],
                 fleet: LiveFleet | None, status_handler: StatusHandler | None) -> None:
        self.settings = settings
        self.factory = factory
        self.ingestor = Ingestor(settings, fleet=fleet, status_handler=status_handler)
        self.lock = threading.Lock()
        self.loaded = False

    def count(self, reason: str, device: str, detail: str = "") -> None:
        """Count and log one refused request (before any member was decoded)."""
        log.warning("dropped HTTP message from device %s: %s %s", clip(device, DEVICE_MAX),
                    reason, clip(detail))
        with transaction(self.factory) as session:
            record_drops(session=session, counts={reason: 1})

    def authenticate(self, device: str, token: str | None) -> Unit:
        with transaction(self.factory) as session:
            return authenticate_device(session=session, device_id=device, token=token)

    def apply_status(self, report: StatusReport) -> None:
        """Hand a crew status to the dispatch workflow in its own transaction; domain refusals
        (unknown status, forbidden transition) propagate to the error table (422 / 409)."""
        handler = self.ingestor.status_handler
        if handler is None:
            raise ConfigurationError("this server takes no crew statuses (no status handler)")
        if report.unit_id is None:
            raise InvalidInput("a crew status must come from a signed-in unit")
        with transaction(self.factory) as session:
            handler(session=session, unit_id=report.unit_id, status=report.status,
                    at=report.at, source="http")
        if self.ingestor.fleet is not None:
            self.ingestor.fleet.set_status(report.unit_id, report.status)

    def ingest(self, unit: Unit, items: Sequence[Report | Rejected], *, members: int) -> Outcome:
        """Store the decoded members of an authenticated unit (``Rejected`` ones as they are)."""
        for r in items:
            if r.msg < 0:
                r.msg = 0
            if isinstance(r, Rejected):
                continue
            if r.device not in (unit.device_id, unit.owntracks_user) and r.source != "owntracks":
                raise PermissionDenied(
                    f"device {clip(unit.device_id)} may not report as {clip(r.device)}")
            r.unit_id = unit.id
        with self.lock:
            if not self.loaded:
                with self.factory() as session:
                    self.ingestor.load(session)
                self.loaded = True
            batch = self.ingestor.prepare(items)
        result = self._write(batch)
        self.ingestor.publish(batch, result)
        outcome = Outcome(members=members, stored=result.inserted,
                          drops=Counter(batch.drops.counts))
        if result.duplicates:
            outcome.drops["duplicate"] += result.duplicates
        outcome.rejected = [(m, r, d) for m, r, d, _u in batch.rejected]
        return outcome

    def _write(self, batch: Batch) -> WriteResult:
        try:
            with transaction(self.factory) as session:
                return self.ingestor.write(session=session, batch=batch)
        except Exception as exc:  # noqa: BLE001 - classified: outage (503) or data (isolate)
            if is_transient(exc):
                self.ingestor.abandon(batch)
                raise IngestUnavailable(_first_line(exc)) from None
            log.error("HTTP batch refused by the database (%s); writing member by member",
                      _first_line(exc))
        total = WriteResult()
        for msg in batch.messages():
            part = batch.subset([msg])
            try:
                with transaction(self.factory) as session:
                    total.merge(self.ingestor.write(session=session, batch=part))
            except Exception as exc:  # noqa: BLE001
                if is_transient(exc):
                    self.ingestor.publish(batch, total)  # what did commit is remembered
                    raise IngestUnavailable(_first_line(exc)) from None
                detail = _first_line(exc)
                batch.drops.add(DB_REJECTED, unit=batch.positions[0].unit_id if batch.positions
                                else "?", detail=detail)
                batch.rejected.append((msg, DB_REJECTED, detail, None))
        try:
            with transaction(self.factory) as session:
                record_drops(session=session, counts=batch.drops.counts)
        except Exception:  # noqa: BLE001 - counts only; the members are answered anyway
            log.exception("HTTP drop counts not recorded")
        return total


def shared_ingest(state: Any) -> HttpIngest:
    """The app's one :class:`HttpIngest` (on ``app.state``, made at first use): every HTTP
    source of fixes (the tracker protocols, the crew app) goes through the same validator."""
    inst: HttpIngest | None = getattr(state, "tracking_http_ingest", None)
    if inst is None:
        inst = HttpIngest(state.settings, state.session_factory, getattr(state, "fleet", None),
                          getattr(state, "crew_status_handler", None))
        state.tracking_http_ingest = inst
    return inst


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    line = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    state = getattr(orig, "sqlstate", None)
    return clip(f"{state} {line}" if state else line, 200)
