"""Simulated terminals speak each payload format in its own units."""

from __future__ import annotations

from datetime import UTC, datetime

from geodispatch.geo import LatLng
from geodispatch.sim.payloads import (
    Fix,
    native_batch,
    native_position,
    owntracks_location,
    status_message,
)
from geodispatch.tracking.decoders import decode_native, decode_owntracks, decode_status

T = datetime(2026, 11, 29, 6, 0, 0, 500000, tzinfo=UTC)


def _fix(speed: float = 12.5, heading: float | None = 270.0) -> Fix:
    return Fix(time=T, position=LatLng(39.2904, -76.6122), speed_mps=speed, heading=heading,
               accuracy_m=7.6, battery=81.4)


def test_owntracks_speed_in_kmh_and_time_in_epoch_seconds() -> None:
    """OwnTracks vel is km/h (integer) and tst epoch seconds, as the app sends them."""
    msg = owntracks_location(_fix(), tid="P-017")
    assert msg["_type"] == "location"
    assert msg["vel"] == 45  # 12.5 m/s
    assert msg["tst"] == int(T.timestamp()) and isinstance(msg["tst"], int)
    assert msg["tid"] == "17" and msg["acc"] == 8 and msg["cog"] == 270 and msg["batt"] == 81


def test_owntracks_omits_zero_fields() -> None:
    """A parked car's message has no vel and no cog (the app omits zeros)."""
    msg = owntracks_location(_fix(speed=0.0, heading=None), tid="ab")
    assert "vel" not in msg and "cog" not in msg


def test_owntracks_roundtrips_through_the_tracking_decoder() -> None:
    """The ingest decoder reads our OwnTracks message back to the same fix in SI units."""
    (rep,) = decode_owntracks(
        __import__("json").dumps(owntracks_location(_fix(), tid="ab")), device="u/d",
        received_at=T)
    assert abs(rep.speed_mps - 12.5) < 0.2  # type: ignore[union-attr]
    assert rep.fix_time == T.replace(microsecond=0)  # type: ignore[union-attr]


def test_native_speed_in_mps_and_iso_time() -> None:
    """Native payloads carry m/s and an ISO-8601 fix time; the decoder agrees."""
    import json

    msg = native_position(_fix())
    assert msg["speed"] == 12.5 and msg["t"].startswith("2026-11-29T06:00:00.500")
    (rep,) = decode_native(json.dumps(msg), device="d", received_at=T)
    assert rep.speed_mps == 12.5 and rep.fix_time == T  # type: ignore[union-attr]
    assert rep.position == LatLng(39.2904, -76.6122)  # type: ignore[union-attr]


def test_native_batch_is_an_array_oldest_first() -> None:
    """A buffered batch is one JSON array, sorted by fix time."""
    from datetime import timedelta

    a, b = _fix(), Fix(time=T - timedelta(seconds=5), position=LatLng(39.29, -76.61),
                       speed_mps=1.0, heading=None, accuracy_m=5.0, battery=80.0)
    batch = native_batch([a, b])
    assert [m["t"] for m in batch] == sorted(m["t"] for m in batch)
    assert len(batch) == 2


def test_status_message_decodes() -> None:
    """Crew status messages are what the status decoder expects."""
    import json

    rep = decode_status(json.dumps(status_message("en_route", T, 42)), device="d", received_at=T)
    assert rep.status == "en_route" and rep.at == T
