"""Pure decoders: bytes or query strings of each tracker protocol -> normalised reports.

No database, no clock except the ``received_at`` passed in, no I/O: each decoder is a function of
its input, tested with the real payloads in ``../shared/data/protocols/``. They raise
:class:`~geodispatch.tracking.reports.Rejected` with a drop reason for anything unusable.

Formats (units are converted here, see ``DOMAIN.md`` "the units trap"):

native JSON, MQTT ``geodispatch/units/{device_id}/position``
    One object or a JSON array of objects (a tracker's buffer after a coverage gap)::

        {"lat": 50.4501, "lon": 30.5234, "t": "2026-11-29T06:00:00Z",
         "speed": 12.5, "heading": 270, "acc": 8, "alt": 160, "batt": 87}

    ``lat``/``lon`` degrees (``lng`` accepted for ``lon``); ``t`` the fix time as ISO-8601 (UTC if
    no offset), epoch seconds or epoch milliseconds; optional ``speed`` m/s, ``heading`` degrees,
    ``acc`` metres, ``alt`` metres, ``batt`` percent. Any other key is kept as an attribute.

native status, MQTT ``geodispatch/units/{device_id}/status``
    ``{"status": "en_route", "t": ...}`` (``t`` optional, default: received) or a bare status word.

OwnTracks, MQTT ``owntracks/{user}/{device}`` and HTTP mode
    ``_type=location``: ``lat``, ``lon``, ``tst`` epoch seconds, ``vel`` km/h, ``cog``, ``acc``,
    ``alt``, ``batt`` percent; ``_type=lwt`` = device offline; every other ``_type`` is ignored.

OsmAnd (Traccar Client), HTTP GET query string or form
    ``id``/``deviceid``, ``lat``+``lon`` or ``location=lat,lon``, ``timestamp`` (epoch s, epoch ms,
    ISO-8601 or ``yyyy-MM-dd HH:mm:ss``; default: received), ``speed`` **knots**, ``bearing``/
    ``heading``, ``altitude``, ``accuracy``, ``hdop``, ``batt``; other keys become attributes.
    Without a fix the message is accepted as a heartbeat (a report with ``position`` None).

OsmAnd JSON (Traccar Client 9, transistorsoft background geolocation), HTTP POST
    ``{"device_id", "location": {"timestamp", "coords": {"latitude", "longitude", "speed" m/s,
    "heading", "accuracy", "altitude"}, "battery": {"level": 0..1}, ...}}``; negative speed or
    heading means unknown; ``location`` may also be a list.

GPX 1.0/1.1 files (recorded tracks): every ``trkpt`` with a ``time``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from xml.etree import ElementTree

import orjson

from geodispatch.geo import LatLng, valid_latlng
from geodispatch.tracking.reports import (
    BAD_JSON,
    BAD_TOPIC,
    BAD_TYPE,
    BAD_VALUE,
    MISSING_FIELD,
    NOT_FINITE,
    NULL_ISLAND,
    OUT_OF_RANGE,
    OfflineReport,
    PositionReport,
    Rejected,
    Report,
    StatusReport,
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


# --- small typed helpers ---------------------------------------------------------------------


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


# --- native ----------------------------------------------------------------------------------


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
    items = decode_native_items(payload, device=device, received_at=received_at)
    out: list[Report] = []
    for item in items:
        if isinstance(item, Rejected):
            raise item
        out.append(item)
    return out


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


# --- OwnTracks -------------------------------------------------------------------------------


def decode_owntracks(payload: bytes | str, *, device: str, received_at: datetime) -> list[Report]:
    """An OwnTracks JSON message. ``device`` is ``"user/device"`` from the topic or HTTP headers.

    ``location`` gives one report; ``lwt`` an :class:`OfflineReport`; other ``_type`` values
    (``transition``, ``waypoint``, ``card``, ``status``...) are ignored: an empty list. Raises on
    the first bad member of an array (see :func:`decode_owntracks_items` to keep the others).
    """
    out: list[Report] = []
    for item in decode_owntracks_items(payload, device=device, received_at=received_at):
        if isinstance(item, Rejected):
            raise item
        out.append(item)
    return out


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


# --- OsmAnd ----------------------------------------------------------------------------------


def _first(params: Mapping[str, Any], *names: str) -> Any:
    for n in names:
        v = params.get(n)
        if v is not None and v != "":
            return v
    return None


def osmand_device(params: Mapping[str, Any]) -> str:
    """The device id of an OsmAnd query (``id`` or ``deviceid``); ``Rejected`` if absent."""
    device = _first(params, "id", "deviceid")
    if device is None:
        raise Rejected(MISSING_FIELD, "id (device id) is required")
    return str(device)


def decode_osmand_query(
    params: Mapping[str, Any] | Iterable[tuple[str, str]], *, received_at: datetime
) -> PositionReport:
    """An OsmAnd GET query (or form) as ``(key, value)`` pairs or a mapping.

    Repeated keys (``cell``, ``wifi``) are kept as lists in the attributes. A query without
    coordinates is a heartbeat: a report whose ``position`` is None.
    """
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    merged: dict[str, Any] = {}
    for k, v in pairs:
        if k in merged and k not in OSMAND_KNOWN:
            prev = merged[k]
            merged[k] = [*prev, v] if isinstance(prev, list) else [prev, v]
        else:
            merged[k] = v
    device = osmand_device(merged)
    point: LatLng | None = None
    if _first(merged, "lat") is not None and _first(merged, "lon") is not None:
        point = make_point(merged["lat"], merged["lon"])
    elif _first(merged, "location") is not None:
        lat, sep, lon = str(merged["location"]).partition(",")
        if not sep:
            raise Rejected(BAD_VALUE, "location must be lat,lon")
        point = make_point(lat, lon)
    stamp = _first(merged, "timestamp")
    speed = _optional(merged.get("speed"), "speed", negative_unknown=True)
    extra = {k: v for k, v in merged.items() if k not in OSMAND_KNOWN}
    return PositionReport(
        device=device,
        fix_time=parse_time(stamp) if stamp is not None else received_at,
        position=point,
        source="osmand",
        received_at=received_at,
        speed_mps=speed * KNOTS_TO_MPS if speed is not None else None,
        heading=_optional(_first(merged, "bearing", "heading"), "bearing", negative_unknown=True),
        accuracy_m=_optional(merged.get("accuracy"), "accuracy"),
        altitude_m=_optional(merged.get("altitude"), "altitude"),
        battery=_optional(merged.get("batt"), "batt"),
        attributes=extra or None,
    )


def _osmand_location(loc: Any, *, device: str, received_at: datetime) -> PositionReport:
    obj = _object(loc, "location")
    coords = _object(obj.get("coords"), "location.coords")
    if coords.get("latitude") is None or coords.get("longitude") is None:
        raise Rejected(MISSING_FIELD, "coords.latitude and coords.longitude are required")
    battery = obj.get("battery")
    level = None
    if isinstance(battery, dict) and battery.get("level") is not None:
        lv = _optional(battery.get("level"), "battery.level", negative_unknown=True)
        level = lv * 100.0 if lv is not None else None
    extra: dict[str, Any] = {}
    for k in ("is_moving", "odometer", "event", "uuid"):
        if k in obj:
            extra[k] = obj[k]
    if isinstance(obj.get("activity"), dict) and "type" in obj["activity"]:
        extra["activity"] = obj["activity"]["type"]
    if isinstance(battery, dict) and "is_charging" in battery:
        extra["charge"] = battery["is_charging"]
    if isinstance(obj.get("extras"), dict):
        extra.update(obj["extras"])
    stamp = obj.get("timestamp")
    return PositionReport(
        device=device,
        fix_time=parse_time(stamp) if stamp is not None else received_at,
        position=make_point(coords["latitude"], coords["longitude"]),
        source="osmand",
        received_at=received_at,
        speed_mps=_optional(coords.get("speed"), "speed", negative_unknown=True),
        heading=_optional(coords.get("heading"), "heading", negative_unknown=True),
        accuracy_m=_optional(coords.get("accuracy"), "accuracy", negative_unknown=True),
        altitude_m=_optional(coords.get("altitude"), "altitude"),
        battery=level,
        attributes=extra or None,
    )


def osmand_json_device(data: Any) -> str:
    """The ``device_id`` of an OsmAnd JSON body; ``Rejected`` if absent."""
    obj = _object(data, "body")
    device = obj.get("device_id")
    if device is None or device == "":
        raise Rejected(MISSING_FIELD, "device_id is required")
    if not isinstance(device, str | int):
        raise Rejected(BAD_TYPE, "device_id must be a string")
    return str(device)


def decode_osmand_json(data: Any, *, received_at: datetime) -> list[PositionReport]:
    """An already parsed OsmAnd JSON body (one location or a list of them); raises on the first
    bad location (see :func:`decode_osmand_json_items` to keep the others)."""
    out: list[PositionReport] = []
    for item in decode_osmand_json_items(data, received_at=received_at):
        if isinstance(item, Rejected):
            raise item
        out.append(item)
    return out


def decode_osmand_json_items(
    data: Any, *, received_at: datetime
) -> list[PositionReport | Rejected]:
    """An OsmAnd JSON body location by location: a bad one comes back as ``Rejected`` in place,
    with ``msg`` set to its index in ``location`` (0 for a single location)."""
    device = osmand_json_device(data)
    loc = data.get("location")
    if loc is None:
        raise Rejected(MISSING_FIELD, "location is required")
    locations = loc if isinstance(loc, list) else [loc]
    if not locations:
        raise Rejected(MISSING_FIELD, "location is an empty list")
    return _members(locations, lambda x: [
        _osmand_location(x, device=device, received_at=received_at)])


# --- GPX -------------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def decode_gpx(data: bytes | str, *, device: str, received_at: datetime) -> list[PositionReport]:
    """Every timed track point of a GPX 1.0/1.1 file, in file order."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise Rejected(BAD_VALUE, f"not GPX: {exc}") from None
    if _local(root.tag) != "gpx":
        raise Rejected(BAD_VALUE, "the root element is not <gpx>")
    out: list[PositionReport] = []
    for el in root.iter():
        if _local(el.tag) != "trkpt":
            continue
        fields = {_local(c.tag): (c.text or "").strip() for c in el}
        if not fields.get("time"):
            continue
        speed = _optional(fields.get("speed"), "speed", negative_unknown=True)
        course = _optional(fields.get("course"), "course", negative_unknown=True)
        out.append(
            PositionReport(
                device=device,
                fix_time=parse_time(fields["time"]),
                position=make_point(el.get("lat"), el.get("lon")),
                source="gpx",
                received_at=received_at,
                speed_mps=speed,
                heading=course,
                altitude_m=_optional(fields.get("ele"), "ele"),
            )
        )
    return out


# --- topics ----------------------------------------------------------------------------------


def parse_topic(topic: str) -> tuple[str, str]:
    """``(kind, device)`` of an MQTT topic: kind is ``position``, ``status`` or ``owntracks``."""
    parts = topic.split("/")
    if (len(parts) == 4 and parts[0] == "geodispatch" and parts[1] == "units" and parts[2]
            and parts[3] in ("position", "status")):
        return parts[3], parts[2]
    if len(parts) == 3 and parts[0] == "owntracks" and parts[1] and parts[2]:
        return "owntracks", f"{parts[1]}/{parts[2]}"
    raise Rejected(BAD_TOPIC, f"unexpected topic {topic[:80]!r}")


def decode_mqtt(
    topic: str, payload: bytes, *, received_at: datetime
) -> list[PositionReport | StatusReport | OfflineReport | Rejected]:
    """Any message the ingest worker subscribes to -> reports (bad array items as ``Rejected``)."""
    kind, device = parse_topic(topic)
    if kind == "position":
        return list(decode_native_items(payload, device=device, received_at=received_at))
    if kind == "status":
        return [decode_status(payload, device=device, received_at=received_at)]
    return decode_owntracks_items(payload, device=device, received_at=received_at)
