"""The project's own JSON over MQTT: ``geodispatch/units/{device_id}/position`` (one object or
an array: a tracker's buffer after a coverage gap) and ``.../status`` (a crew status)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from geodispatch.geo import LatLng
from geodispatch.tracking.decoders.common import (
    EPOCH_MS_THRESHOLD,
    NATIVE_KEYS,
    _members,
    _object,
    _optional,
    make_point,
    parse_json,
    parse_time,
    strict,
)
from geodispatch.tracking.reports import (
    BAD_VALUE,
    MISSING_FIELD,
    PositionReport,
    Rejected,
    Report,
    StatusReport,
)

_FAST_KEYS = frozenset(("lat", "lon", "t", "speed", "heading", "acc", "alt", "batt"))
_MIN_EPOCH, _MAX_EPOCH = 0.0, 32503680000.0  # 1970 .. 3000


def _fast_opt(obj: dict[str, Any], key: str, negative_unknown: bool = False) -> float | None:
    v = obj.get(key)
    if v is None:
        return None
    if type(v) is float or type(v) is int:
        return None if negative_unknown and v < 0 else float(v)
    raise TypeError  # not the fast path's business: the general decoder reports it


def _decode_fast(obj: dict[str, Any], device: str, received_at: datetime) -> PositionReport | None:
    """The common, well-formed message without the general decoder's checks' overhead; None
    when anything is unusual (the general path then decodes it and explains what is wrong)."""
    lat, lon, t = obj.get("lat"), obj.get("lon"), obj.get("t")
    if type(lat) is not float or type(lon) is not float or type(t) is not int:
        return None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0) or (lat == 0.0 and lon == 0.0):
        return None
    if not obj.keys() <= _FAST_KEYS:
        return None
    seconds = t / 1000.0 if t >= EPOCH_MS_THRESHOLD else float(t)
    if not _MIN_EPOCH < seconds < _MAX_EPOCH:
        return None
    try:
        return PositionReport(
            device=device,
            fix_time=datetime.fromtimestamp(seconds, tz=UTC),
            position=LatLng(lat, lon),
            source="native",
            received_at=received_at,
            speed_mps=_fast_opt(obj, "speed", True),
            heading=_fast_opt(obj, "heading", True),
            accuracy_m=_fast_opt(obj, "acc"),
            altitude_m=_fast_opt(obj, "alt"),
            battery=_fast_opt(obj, "batt"),
        )
    except TypeError:
        return None


def decode_native_item(item: Any, *, device: str, received_at: datetime) -> PositionReport:
    """One native position object (see the module docstring)."""
    if type(item) is dict:
        fast = _decode_fast(item, device, received_at)
        if fast is not None:
            return fast
    obj = _object(item, "position")
    if "lat" not in obj or ("lon" not in obj and "lng" not in obj):
        raise Rejected(MISSING_FIELD, "lat and lon are required")
    if "t" not in obj:
        raise Rejected(MISSING_FIELD, "t (fix time) is required")
    point = make_point(obj["lat"], obj["lon"] if "lon" in obj else obj["lng"])
    extra = {k: v for k, v in obj.items() if k not in NATIVE_KEYS}
    return PositionReport(
        device=device,
        fix_time=parse_time(obj["t"]),
        position=point,
        source="native",
        received_at=received_at,
        speed_mps=_optional(obj.get("speed"), "speed", negative_unknown=True),
        heading=_optional(obj.get("heading"), "heading", negative_unknown=True),
        accuracy_m=_optional(obj.get("acc"), "acc"),
        altitude_m=_optional(obj.get("alt"), "alt"),
        battery=_optional(obj.get("batt"), "batt"),
        attributes=extra or None,
    )


def decode_native(payload: bytes | str, *, device: str, received_at: datetime) -> list[Report]:
    """A native position message: one object or a JSON array of objects.

    In an array each item is decoded on its own: a bad item is returned as a :class:`Rejected`
    in place (so the rest of the buffer is kept) by :func:`decode_native_items`; this function
    raises on the first bad item and is meant for single-object callers.
    """
    return list(strict(decode_native_items(payload, device=device, received_at=received_at)))


def decode_native_items(
    payload: bytes | str, *, device: str, received_at: datetime
) -> list[PositionReport | Rejected]:
    """Decode a native message item by item; bad items come back as ``Rejected`` in place
    (``msg`` is the item's index in the array, 0 for a single object)."""
    data = parse_json(payload)
    if isinstance(data, list):
        if not data:
            raise Rejected(MISSING_FIELD, "empty batch")
        raw: list[Any] = data
    else:
        raw = [data]
    return _members(raw, lambda item: [
        decode_native_item(item, device=device, received_at=received_at)])


def decode_status(payload: bytes | str, *, device: str, received_at: datetime) -> StatusReport:
    """A crew status message: ``{"status": ..., "t": ...}`` or the bare status word."""
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    stripped = text.strip()
    status: Any
    if stripped and stripped[0] in "{[\"":
        data = parse_json(stripped)
        if isinstance(data, str):
            status, at = data, received_at
        else:
            obj = _object(data, "status message")
            status = obj.get("status")
            at = parse_time(obj["t"]) if obj.get("t") is not None else received_at
    else:
        status, at = stripped, received_at
    if not isinstance(status, str) or not re.fullmatch(r"[a-z_]{2,32}", status):
        raise Rejected(BAD_VALUE, f"status {str(status)[:40]!r} is not a status word")
    return StatusReport(device=device, status=status, at=at, source="native")


def decode_ack(payload: bytes | str, *, device: str, received_at: datetime) -> StatusReport:
    """A crew terminal's acknowledgement of its assignment, MQTT
    ``geodispatch/units/{device}/assignment/ack``: ``{"id": <assignment id>, "t": ...,
    "state": "acknowledged" | "delivered", "key": ...}`` (``state`` default ``acknowledged``,
    ``t`` default: received)."""
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    obj = _object(parse_json(text.strip() or "null"), "acknowledgement")
    ident = obj.get("id", obj.get("assignment_id"))
    try:
        assignment_id = int(ident) if ident is not None and not isinstance(ident, bool) else None
    except (TypeError, ValueError):
        assignment_id = None
    if assignment_id is None or not 0 < assignment_id < 2**31:
        raise Rejected(BAD_VALUE, f"acknowledgement without an assignment id ({str(ident)[:40]!r})")
    state = obj.get("state", "acknowledged")
    if state not in ("acknowledged", "delivered"):
        raise Rejected(BAD_VALUE, f"acknowledgement state {str(state)[:40]!r}")
    key = obj.get("key")
    if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 128):
        raise Rejected(BAD_VALUE, "acknowledgement key must be a string of 1 to 128 characters")
    at = parse_time(obj["t"]) if obj.get("t") is not None else received_at
    return StatusReport(device=device, status=state, at=at, source="native",
                        assignment_id=assignment_id, key=key)
