"""Pure decoders, fed with the real tracker payloads in ../shared/data/protocols/."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from geodispatch.tracking import decoders
from geodispatch.tracking.reports import OfflineReport, PositionReport, Rejected, StatusReport

NOW = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)


def _decode_vector(v: dict[str, Any]) -> list[PositionReport]:
    if v["protocol"] == "OwnTracks":
        return [r for r in decoders.decode_owntracks(v["body"], device="u/d", received_at=NOW)
                if isinstance(r, PositionReport)]
    if v["method"] == "GET":
        pairs = parse_qsl(urlsplit(v["path_and_query"]).query, keep_blank_values=True)
        return [decoders.decode_osmand_query(pairs, received_at=NOW)]
    return decoders.decode_osmand_json(decoders.parse_json(v["body"]), received_at=NOW)


def test_every_vector_decodes_as_traccar_says(vectors: list[dict[str, Any]]) -> None:
    """verifyPosition/verifyAttribute give one fix, verifyNotNull a report without a fix."""
    for v in vectors:
        reports = _decode_vector(v)
        assert len(reports) == 1, v
        if v["traccar_assertion"] == "verifyNotNull":
            assert reports[0].position is None
        else:
            assert reports[0].position is not None, v
        if v["traccar_assertion"] == "verifyAttribute":
            attrs = reports[0].attributes or {}
            assert attrs[v["expect_attribute"]] == int(v["expect_value"].rstrip("L"))


def test_osmand_units_and_time_formats() -> None:
    """OsmAnd speed is knots; timestamps in epoch s, epoch ms and ISO all decode to UTC."""
    base = [("id", "902064"), ("lat", "42.06288"), ("lon", "-88.23412"), ("speed", "10")]
    r = decoders.decode_osmand_query(base + [("timestamp", "1442068686579")], received_at=NOW)
    assert r.fix_time == datetime(2015, 9, 12, 14, 38, 6, 579000, tzinfo=UTC)
    assert r.speed_mps == pytest.approx(5.1444, rel=1e-3)
    r2 = decoders.decode_osmand_query(base + [("timestamp", "1442068686")], received_at=NOW)
    r3 = decoders.decode_osmand_query(base + [("timestamp", "2015-09-12 14:38:06")],
                                      received_at=NOW)
    assert r2.fix_time == r3.fix_time == datetime(2015, 9, 12, 14, 38, 6, tzinfo=UTC)
    no_time = decoders.decode_osmand_query(base, received_at=NOW)
    assert no_time.fix_time == NOW


def test_osmand_json_units() -> None:
    """Transistorsoft JSON: speed m/s, negative heading = unknown, battery level 0..1 -> %."""
    body = ('{"device_id":"x","location":{"timestamp":"2021-07-21T08:06:34.444Z","coords":'
            '{"latitude":-6.11,"longitude":106.68,"speed":18.67,"heading":-1,"accuracy":3.8},'
            '"battery":{"level":0.79}}}')
    (r,) = decoders.decode_osmand_json(decoders.parse_json(body), received_at=NOW)
    assert r.speed_mps == 18.67 and r.heading is None and r.battery == pytest.approx(79.0)
    assert r.position is not None and r.position.lat == -6.11


def test_osmand_without_id_is_rejected() -> None:
    """A request without id is refused with a reason."""
    with pytest.raises(Rejected) as exc:
        decoders.decode_osmand_query([("lat", "1"), ("lon", "2")], received_at=NOW)
    assert exc.value.reason == "missing_field"


def test_owntracks_units() -> None:
    """OwnTracks vel is km/h, tst epoch seconds; omitted zero fields come back as 0."""
    body = ('{"cog":271,"lon":2.29513,"acc":5,"vel":61,"vac":21,"lat":48.85833,"tst":1497349316,'
            '"alt":167,"_type":"location","tid":"JJ","t":"u","batt":67}')
    (r,) = decoders.decode_owntracks(body, device="jj/phone", received_at=NOW)
    assert isinstance(r, PositionReport)
    assert r.speed_mps == pytest.approx(61 / 3.6)
    assert r.fix_time == datetime.fromtimestamp(1497349316, tz=UTC)
    assert (r.heading, r.accuracy_m, r.altitude_m, r.battery) == (271, 5, 167, 67)
    assert r.attributes == {"vac": 21, "tid": "JJ", "t": "u"}
    (bare,) = decoders.decode_owntracks(
        '{"lon":2.29513,"lat":48.85833,"tst":1497349316,"_type":"location","tid":"JJ"}',
        device="jj/phone", received_at=NOW)
    assert isinstance(bare, PositionReport) and bare.speed_mps == 0.0


def test_owntracks_other_types() -> None:
    """lwt marks the device offline; other _types are ignored politely."""
    (off,) = decoders.decode_owntracks('{"_type":"lwt","tst":1497349316}', device="a/b",
                                       received_at=NOW)
    assert isinstance(off, OfflineReport)
    assert decoders.decode_owntracks('{"_type":"transition","event":"enter"}', device="a/b",
                                     received_at=NOW) == []


def test_native_single_and_batch() -> None:
    """Native JSON: one object or an array; bad items of an array are rejected alone."""
    one = decoders.decode_native(b'{"lat":50.45,"lon":30.52,"t":1764396000123,"speed":3}',
                                 device="K1", received_at=NOW)
    assert len(one) == 1 and isinstance(one[0], PositionReport)
    assert one[0].fix_time.microsecond == 123000
    items = decoders.decode_native_items(
        b'[{"lat":50.45,"lon":30.52,"t":"2026-11-29T06:59:00Z"},{"lat":"x","lon":1,"t":1},'
        b'{"lat":91,"lon":1,"t":1}]', device="K1", received_at=NOW)
    assert isinstance(items[0], PositionReport)
    assert [i.reason for i in items[1:] if isinstance(i, Rejected)] == ["bad_type", "out_of_range"]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "bad_json"),
        (b'"a string"', "bad_type"),
        (b'{"lat":50}', "missing_field"),
        (b'{"lat":0,"lon":0,"t":1}', "null_island"),
        (b'{"lat":NaN,"lon":1,"t":1}', "bad_json"),
        (b'{"lat":"nan","lon":1,"t":1}', "not_finite"),
        (b'{"lat":50,"lon":200,"t":1}', "out_of_range"),
        (b'{"lat":50,"lon":30,"t":true}', "bad_type"),
        (b'{"lat":50,"lon":30,"t":"yesterday"}', "bad_value"),
    ],
)
def test_native_junk_reasons(payload: bytes, reason: str) -> None:
    """Junk is refused with a precise reason, never an exception of another kind."""
    with pytest.raises(Rejected) as exc:
        decoders.decode_native(payload, device="K1", received_at=NOW)
    assert exc.value.reason == reason


def test_status_and_topics() -> None:
    """Status messages (JSON or a bare word) and the topic parser."""
    st = decoders.decode_status(b'{"status":"en_route","t":1764396000}', device="K1",
                                received_at=NOW)
    assert isinstance(st, StatusReport) and st.status == "en_route"
    assert decoders.decode_status(b"on_scene", device="K1", received_at=NOW).at == NOW
    assert decoders.parse_topic("geodispatch/units/K1/position") == ("position", "K1")
    assert decoders.parse_topic("owntracks/alice/phone") == ("owntracks", "alice/phone")
    with pytest.raises(Rejected):
        decoders.parse_topic("geodispatch/units/K1/other")


def test_gpx(data_dir: Path) -> None:
    """The Višnjan car track: 104 timed fixes in order, with elevation."""
    reports = decoders.decode_gpx((data_dir / "traces" / "visnjan_car.gpx").read_bytes(),
                                  device="K1", received_at=NOW)
    assert len(reports) == 104
    assert reports[0].position is not None and math.isclose(reports[0].position.lat, 45.273518851)
    assert reports[0].altitude_m == 211.15
    assert all(a.fix_time < b.fix_time for a, b in zip(reports, reports[1:], strict=False))


def test_fast_path_agrees_with_general_decoder() -> None:
    """The fast path for well-formed native fixes gives exactly what the general path gives."""
    body = {"lat": 50.45, "lon": 30.52, "t": 1764396000123, "speed": -1.0, "heading": 90,
            "acc": 6, "alt": -3.5, "batt": 80}
    fast = decoders._decode_fast(body, "K1", NOW)
    slow = decoders.decode_native_item({**body, "extra": 1}, device="K1", received_at=NOW)
    assert fast is not None
    slow.attributes = None
    assert fast == slow
    assert decoders._decode_fast({**body, "lat": 0.0, "lon": 0.0}, "K1", NOW) is None
    assert decoders._decode_fast({**body, "acc": "6"}, "K1", NOW) is None
