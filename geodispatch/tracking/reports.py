"""The normalised messages every decoder returns, whatever the wire format was.

A decoder turns bytes into a list of :class:`PositionReport` (a GPS fix, or a "no fix" heartbeat),
:class:`StatusReport` (a crew status change) or :class:`OfflineReport` (the device dropped), or
raises :class:`Rejected` with a short machine-readable reason. Units are fixed here: speed in m/s,
heading in degrees, accuracy and altitude in metres, battery in percent, times timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from geodispatch.geo import LatLng

# Drop reasons (ingest_drops.reason). Decoders and validation use only these.
BAD_JSON = "bad_json"
BAD_TYPE = "bad_type"
MISSING_FIELD = "missing_field"
BAD_VALUE = "bad_value"
TOO_LARGE = "too_large"
BAD_TOPIC = "bad_topic"
UNKNOWN_DEVICE = "unknown_device"
OUT_OF_RANGE = "out_of_range"
NULL_ISLAND = "null_island"
NOT_FINITE = "not_finite"
TOO_OLD = "too_old"
IN_FUTURE = "in_future"
POOR_ACCURACY = "poor_accuracy"
SPEED_JUMP = "speed_jump"
DUPLICATE = "duplicate"
STATUS_REJECTED = "status_rejected"
UNSTORABLE = "unstorable"  # text PostgreSQL cannot hold (NUL), nesting or integers JSON cannot
IMPLAUSIBLE = "implausible"  # a numeric field outside its plausibility bounds (settings)
INTERNAL = "internal_error"  # a stage raised on this message (a bug): dead-lettered
DB_REJECTED = "db_rejected"  # the database refused this message's write: dead-lettered

# Drops whose raw message is also kept in ``ingest_dead_letters``: the message broke (or would
# have broken) a stage, so it is evidence of a bug or an attack, not just a bad fix.
DEAD_LETTER_REASONS = frozenset((UNSTORABLE, INTERNAL, DB_REJECTED))

SOURCES = ("native", "owntracks", "osmand", "gpx")


class Rejected(ValueError):
    """A message (or one item of it) that cannot become a report; ``reason`` is a drop reason."""

    def __init__(self, reason: str, detail: str = "", *, msg: int = -1) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        # Index of the message (MQTT) or body member (HTTP) it came from; -1 when unknown.
        self.msg = msg


@dataclass(slots=True)
class PositionReport:
    """One fix from one device. ``position`` None means the message carried no fix (heartbeat)."""

    device: str
    fix_time: datetime
    position: LatLng | None
    source: str
    received_at: datetime
    speed_mps: float | None = None
    heading: float | None = None
    accuracy_m: float | None = None
    altitude_m: float | None = None
    battery: float | None = None
    attributes: dict[str, Any] | None = None
    unit_id: int | None = None
    h3: int | None = None
    # MQTT bookkeeping (not stored): when the broker handed the message over.
    extra: dict[str, Any] = field(default_factory=dict)
    # Index of the message (MQTT) or body member (HTTP) it came from; -1 when unknown.
    msg: int = -1
    # ``attributes`` as the JSON text stored, set by the storability check before the write.
    attrs_json: str | None = None


@dataclass(slots=True)
class StatusReport:
    """A crew status change sent by the crew's terminal."""

    device: str
    status: str
    at: datetime
    source: str
    unit_id: int | None = None
    msg: int = -1
    #: For ``delivered`` / ``acknowledged``: which assignment; the terminal's idempotency key.
    assignment_id: int | None = None
    key: str | None = None


@dataclass(slots=True)
class OfflineReport:
    """The device went offline (OwnTracks ``lwt``: the broker's last will for the device)."""

    device: str
    at: datetime
    source: str
    unit_id: int | None = None
    msg: int = -1


Report = PositionReport | StatusReport | OfflineReport
