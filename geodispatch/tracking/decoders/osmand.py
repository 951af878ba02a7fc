"""OsmAnd as Traccar Client speaks it: the HTTP GET query (``speed`` in knots) and the JSON
POST of Traccar Client 9 / transistorsoft background geolocation (``speed`` m/s)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from geodispatch.geo import LatLng
from geodispatch.tracking.decoders.common import (
    KNOTS_TO_MPS,
    OSMAND_KNOWN,
    _members,
    _object,
    _optional,
    make_point,
    parse_time,
    strict,
)
from geodispatch.tracking.reports import (
    BAD_TYPE,
    BAD_VALUE,
    MISSING_FIELD,
    PositionReport,
    Rejected,
)


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
    return strict(decode_osmand_json_items(data, received_at=received_at))


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
