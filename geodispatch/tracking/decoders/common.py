"""What every decoder shares: JSON and time parsing, checked numbers and points, batches.

Pure functions of their input (no database, no clock, no I/O); each raises
:class:`~geodispatch.tracking.reports.Rejected` with a drop reason for anything unusable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from geodispatch.geo import LatLng, valid_latlng
from geodispatch.tracking.reports import (
    BAD_JSON,
    BAD_TYPE,
    BAD_VALUE,
    NOT_FINITE,
    NULL_ISLAND,
    OUT_OF_RANGE,
    Rejected,
    Report,
)

KNOTS_TO_MPS = 1852.0 / 3600.0
KMH_TO_MPS = 1.0 / 3.6
EPOCH_MS_THRESHOLD = 100_000_000_000  # above this an epoch number is in milliseconds
MAX_BATCH_ITEMS = 10_000

NATIVE_KEYS = {"lat", "lon", "lng", "t", "speed", "heading", "acc", "alt", "batt"}
OSMAND_KNOWN = {
    "id", "deviceid", "lat", "lon", "location", "timestamp", "speed", "bearing", "heading",
    "altitude", "accuracy", "batt", "token",
}
OWNTRACKS_KNOWN = {"_type", "lat", "lon", "tst", "vel", "cog", "acc", "alt", "batt"}


def parse_json(payload: bytes | str) -> Any:
    """Parse JSON or raise ``Rejected(bad_json)``."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise Rejected(BAD_JSON, str(exc)[:120]) from None


def parse_time(value: Any) -> datetime:
    """A fix time from ISO-8601 text, ``yyyy-MM-dd HH:mm:ss``, epoch seconds or milliseconds."""
    if isinstance(value, bool):
        raise Rejected(BAD_TYPE, "time is a boolean")
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return parse_time(float(text))
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise Rejected(BAD_VALUE, f"unreadable time {text[:40]!r}") from None
        return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    if isinstance(value, int | float):
        number = float(value)
        if not math.isfinite(number):
            raise Rejected(NOT_FINITE, "time is not finite")
        if abs(number) >= EPOCH_MS_THRESHOLD:
            number /= 1000.0
        try:
            return datetime.fromtimestamp(number, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise Rejected(BAD_VALUE, f"time {value!r} out of range") from None
    raise Rejected(BAD_TYPE, f"time has type {type(value).__name__}")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or value is None:
        raise Rejected(BAD_TYPE, f"{name} is {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise Rejected(BAD_TYPE, f"{name} is not a number") from None
    raise Rejected(BAD_TYPE, f"{name} has type {type(value).__name__}")


def _optional(value: Any, name: str, *, negative_unknown: bool = False) -> float | None:
    if value is None or value == "":
        return None
    number = _number(value, name)
    if not math.isfinite(number) or (negative_unknown and number < 0):
        return None
    return number


def make_point(lat: Any, lng: Any) -> LatLng:
    """A checked :class:`LatLng`: finite, inside WGS 84 ranges, not the (0, 0) null fix."""
    la, lo = _number(lat, "lat"), _number(lng, "lon")
    if not (math.isfinite(la) and math.isfinite(lo)):
        raise Rejected(NOT_FINITE, "coordinates are not finite")
    if not valid_latlng(la, lo):
        if la == 0.0 and lo == 0.0:
            raise Rejected(NULL_ISLAND, "coordinates are (0, 0)")
        raise Rejected(OUT_OF_RANGE, f"coordinates ({la}, {lo}) outside WGS 84")
    return LatLng(la, lo)


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Rejected(BAD_TYPE, f"{what} is a {type(value).__name__}, not an object")
    return value



R = TypeVar("R", bound=Report)


def _members(items: Sequence[Any], decode: Callable[[Any], Sequence[R]]) -> list[R | Rejected]:
    """Decode each member of a batch; a bad member comes back as ``Rejected`` in its place.

    Every report and rejection carries the member's index as ``msg``. A batch of more than
    :data:`MAX_BATCH_ITEMS` members is refused whole.
    """
    if len(items) > MAX_BATCH_ITEMS:
        raise Rejected(BAD_VALUE, f"batch of {len(items)} items (max {MAX_BATCH_ITEMS})")
    out: list[R | Rejected] = []
    for i, item in enumerate(items):
        try:
            reports = decode(item)
        except Rejected as exc:
            exc.msg = i
            out.append(exc)
            continue
        for r in reports:
            r.msg = i
            out.append(r)
    return out


def strict(items: Sequence[R | Rejected]) -> list[R]:
    """The members of a decoded batch, raising the first ``Rejected`` among them (for callers
    that take one message whole or not at all)."""
    out: list[R] = []
    for item in items:
        if isinstance(item, Rejected):
            raise item
        out.append(item)
    return out
