"""Wire payloads a simulated crew terminal publishes, in the units each format prescribes.

* OwnTracks ``_type: location`` (topic ``owntracks/{user}/{device}``): ``tst`` and ``created_at``
  in **epoch seconds** (integers), ``vel`` in **km/h**, ``cog`` degrees, ``acc`` metres, ``batt``
  percent, ``tid`` two characters; ``acc``, ``alt``, ``cog`` and ``vel`` are omitted when zero,
  exactly as the app does.
* Native (topic ``geodispatch/units/{device}/position``, see ``geodispatch.tracking.decoders``):
  one JSON object with ``lat``, ``lon``, ``t`` (fix time, ISO-8601 UTC), ``speed`` in **m/s**,
  ``heading`` degrees, ``acc`` metres, ``batt`` percent; a JSON array of such objects is the batch
  a tracker sends after buffering out of coverage.
* Status (topic ``geodispatch/units/{device}/status``): ``{"status", "t", "incident_id"}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from geodispatch.geo import LatLng


@dataclass(slots=True, frozen=True)
class Fix:
    """One simulated GPS fix, in SI units (speed m/s), time timezone-aware UTC."""

    time: datetime
    position: LatLng
    speed_mps: float
    heading: float | None
    accuracy_m: float
    battery: float


def owntracks_topic(user: str, device: str) -> str:
    return f"owntracks/{user}/{device}"


def native_topic(device: str, leaf: str) -> str:
    return f"geodispatch/units/{device}/{leaf}"


def owntracks_location(fix: Fix, *, tid: str, sent_at: datetime | None = None) -> dict[str, Any]:
    """An OwnTracks location message as the app builds it (vel km/h, tst epoch seconds)."""
    msg: dict[str, Any] = {
        "_type": "location",
        "lat": round(fix.position.lat, 7),
        "lon": round(fix.position.lng, 7),
        "tst": int(fix.time.timestamp()),
        "batt": int(round(fix.battery)),
        "tid": tid[-2:].rjust(2, "0"),
        "t": "t",
        "created_at": int((sent_at or fix.time).timestamp()),
    }
    acc = int(round(fix.accuracy_m))
    vel = int(round(fix.speed_mps * 3.6))
    cog = int(round(fix.heading)) % 360 if fix.heading is not None else 0
    if acc:
        msg["acc"] = acc
    if vel:
        msg["vel"] = vel
    if cog and vel:
        msg["cog"] = cog
    return msg


def native_position(fix: Fix) -> dict[str, Any]:
    """The native position object (speed m/s, ISO-8601 time)."""
    msg: dict[str, Any] = {
        "lat": round(fix.position.lat, 7),
        "lon": round(fix.position.lng, 7),
        "t": fix.time.isoformat(timespec="milliseconds"),
        "speed": round(fix.speed_mps, 2),
        "acc": round(fix.accuracy_m, 1),
        "batt": round(fix.battery, 1),
    }
    if fix.heading is not None:
        msg["heading"] = round(fix.heading, 1)
    return msg


def native_batch(fixes: list[Fix]) -> list[dict[str, Any]]:
    """The batch form: a JSON array of native position objects, oldest first."""
    return [native_position(f) for f in sorted(fixes, key=lambda f: f.time)]


def status_message(status: str, at: datetime, incident_id: int | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"status": status, "t": at.isoformat(timespec="milliseconds")}
    if incident_id is not None:
        msg["incident_id"] = incident_id
    return msg


def dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()
