"""OwnTracks JSON, MQTT ``owntracks/{user}/{device}`` and its HTTP mode: ``_type=location``
(``vel`` km/h), ``lwt`` = the device went offline, every other ``_type`` ignored."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geodispatch.tracking.decoders.common import (
    KMH_TO_MPS,
    OWNTRACKS_KNOWN,
    _members,
    _object,
    _optional,
    make_point,
    parse_json,
    parse_time,
    strict,
)
from geodispatch.tracking.reports import (
    MISSING_FIELD,
    OfflineReport,
    PositionReport,
    Rejected,
    Report,
)


def decode_owntracks(payload: bytes | str, *, device: str, received_at: datetime) -> list[Report]:
    """An OwnTracks JSON message. ``device`` is ``"user/device"`` from the topic or HTTP headers.

    ``location`` gives one report; ``lwt`` an :class:`OfflineReport`; other ``_type`` values
    (``transition``, ``waypoint``, ``card``, ``status``...) are ignored: an empty list. Raises on
    the first bad member of an array (see :func:`decode_owntracks_items` to keep the others).
    """
    return strict(decode_owntracks_items(payload, device=device, received_at=received_at))


def decode_owntracks_items(
    payload: bytes | str, *, device: str, received_at: datetime
) -> list[Report | Rejected]:
    """An OwnTracks message or an array of them (HTTP mode may post one), member by member: a
    bad member comes back as ``Rejected`` in place, with ``msg`` set to its index."""
    return owntracks_items(parse_json(payload), device=device, received_at=received_at)


def owntracks_items(data: Any, *, device: str, received_at: datetime) -> list[Report | Rejected]:
    """:func:`decode_owntracks_items` of already parsed JSON."""
    if not isinstance(data, list):
        return list(_owntracks_message(data, device=device, received_at=received_at))
    return _members(data, lambda item: _owntracks_message(item, device=device,
                                                          received_at=received_at))


def _owntracks_message(data: Any, *, device: str, received_at: datetime) -> list[Report]:
    obj = _object(data, "OwnTracks message")
    kind = obj.get("_type")
    if kind == "lwt":
        at = parse_time(obj["tst"]) if obj.get("tst") is not None else received_at
        return [OfflineReport(device=device, at=at, source="owntracks")]
    if kind != "location":
        if not isinstance(kind, str):
            raise Rejected(MISSING_FIELD, "_type is missing")
        return []
    if "lat" not in obj or "lon" not in obj:
        raise Rejected(MISSING_FIELD, "lat and lon are required")
    if obj.get("tst") is None:
        raise Rejected(MISSING_FIELD, "tst is required")
    vel = _optional(obj.get("vel"), "vel", negative_unknown=True)
    extra = {k: v for k, v in obj.items() if k not in OWNTRACKS_KNOWN}
    return [
        PositionReport(
            device=device,
            fix_time=parse_time(obj["tst"]),
            position=make_point(obj["lat"], obj["lon"]),
            source="owntracks",
            received_at=received_at,
            # OwnTracks omits acc/alt/cog/vel when they are zero.
            speed_mps=vel * KMH_TO_MPS if vel is not None else 0.0,
            heading=_optional(obj.get("cog"), "cog", negative_unknown=True),
            accuracy_m=_optional(obj.get("acc"), "acc") or 0.0,
            altitude_m=_optional(obj.get("alt"), "alt") or 0.0,
            battery=_optional(obj.get("batt"), "batt"),
            attributes=extra or None,
        )
    ]
