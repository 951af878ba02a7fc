"""Fuzzing every decoder, every pipeline stage, the MQTT path and the HTTP path (hypothesis).

Inputs mix what a hostile or broken tracker sends: NUL in keys and values, numbers far beyond
float or 64-bit range, NaN and infinities, nesting up to past the JSON parser's limit, bytes that
are not UTF-8, and batches where valid members sit next to invalid ones. The properties:

* decoders return reports or ``Rejected`` and raise nothing else; every later stage (storability,
  plausibility, validation, H3, the COPY row) is total on whatever they return;
* through the real broker and worker: the worker never stops, and exactly the valid fixes sent
  are stored;
* through the real HTTP server: never a 5xx, and every valid member of a batch is stored.

A "valid" fix here is built to be valid (plausible values, distinct times, small moves); an
"invalid" member is a valid one with exactly one defect that must keep it out of the database.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from geodispatch.tracking import decoders
from geodispatch.tracking.pipeline import (
    Validator,
    _has_nul,
    h3_index,
    implausible_field,
    storage_problem,
    to_row,
)
from geodispatch.tracking.reports import OfflineReport, PositionReport, Rejected, StatusReport
from tests.helpers import running_server
from tests.tracking.conftest import ensure_unit, mqtt_settings, publisher, running_worker, wait_for

NOW = datetime.now(UTC)
_BASE = hsettings(database=None, deadline=None, derandomize=False,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                         HealthCheck.function_scoped_fixture])


def fuzz(examples: int) -> hsettings:
    """The fuzz tests' hypothesis settings with ``examples`` examples."""
    return hsettings(_BASE, max_examples=examples)

# --- strategies --------------------------------------------------------------------------------

_nasty_text = st.sampled_from(["\x00", "a\x00b", "\u202e\u0000", "\U0001f600", "", " ",
                               "\\u0000", "%00", "\ufeff", "x" * 300])
_text = st.one_of(st.text(alphabet=st.characters(codec="utf-8"), max_size=12), _nasty_text)
_safe_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
                     max_size=12)
_number = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 0, -0.0]),
)
_scalar = st.one_of(st.none(), st.booleans(), _number, _text)
_json_value = st.recursive(_scalar, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(_text, kids, max_size=4)), max_leaves=12)
_field_names = st.sampled_from([
    "lat", "lon", "lng", "t", "speed", "heading", "acc", "alt", "batt", "_type", "tst", "vel",
    "cog", "id", "deviceid", "timestamp", "location", "coords", "latitude", "longitude",
    "battery", "level", "device_id", "status", "bearing", "altitude", "accuracy", "extras"])
_tracker_like = st.dictionaries(st.one_of(_field_names, _text), _json_value, max_size=10)


def _deep(depth: int, opener: str) -> str:
    closer = "]" if opener == "[" else "}"
    inner = "[" if opener == "[" else '{"n":'
    return inner * depth + "0" + closer * depth


def _dumps(value: Any) -> bytes:
    """JSON text as a careless client writes it (NaN, Infinity and huge integers included)."""
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


# Near-valid members: a good native fix with a few fields replaced by anything (or removed),
# so the fuzzing reaches the decoders' deep paths, not only "bad JSON" and "missing field".
_NATIVE_KEYS = ["lat", "lon", "t", "speed", "heading", "acc", "alt", "batt"]
_near_valid = st.tuples(
    st.dictionaries(st.sampled_from(_NATIVE_KEYS + ["note", "extras"]),
                    st.one_of(_json_value, st.just("__drop__")), min_size=1, max_size=3),
    st.dictionaries(_text, _json_value, max_size=2),
).map(lambda r: {k: v for k, v in {
    "lat": 50.45, "lon": 30.52, "t": 1796000000, "speed": 3.0, "heading": 90.0, "acc": 5.0,
    "alt": 100.0, "batt": 80, **r[1], **r[0]}.items() if v != "__drop__"})


def _as_owntracks(m: dict[str, Any]) -> dict[str, Any]:
    names = {"t": "tst", "speed": "vel", "heading": "cog"}
    return {"_type": "location", **{names.get(k, k): v for k, v in m.items()}}


def _as_osmand(m: dict[str, Any]) -> dict[str, Any]:
    coords = {"latitude": m.get("lat"), "longitude": m.get("lon"), "speed": m.get("speed"),
              "heading": m.get("heading"), "accuracy": m.get("acc"), "altitude": m.get("alt")}
    rest = {k: v for k, v in m.items() if k not in _NATIVE_KEYS}
    return {"timestamp": m.get("t"), "coords": coords, "battery": {"level": m.get("batt")},
            "extras": rest, **({"activity": rest} if rest else {})}


_near_valid_payloads = st.one_of(
    _near_valid.map(_dumps),
    st.lists(_near_valid, min_size=1, max_size=4).map(_dumps),
    _near_valid.map(_as_owntracks).map(_dumps),
    st.lists(_near_valid.map(_as_owntracks), min_size=1, max_size=4).map(_dumps),
    st.tuples(st.one_of(_text, _number), st.lists(_near_valid.map(_as_osmand), max_size=3)).map(
        lambda d: _dumps({"device_id": d[0] if d[1] else "D1", "location": d[1]})),
    _near_valid.map(lambda m: _dumps({"device_id": "D1", "location": _as_osmand(m)})),
)

_payloads = st.one_of(
    _near_valid_payloads,
    _near_valid_payloads,  # weighted: most examples reach the decoders' deep paths
    st.binary(max_size=300),  # not JSON, often not UTF-8
    _json_value.map(_dumps),
    _tracker_like.map(_dumps),
    st.lists(_tracker_like, max_size=6).map(_dumps),
    st.tuples(st.integers(1, 1300), st.sampled_from(["[", "{"])).map(
        lambda d: b'{"lat": 50.4, "lon": 30.5, "t": 1796000000, "x": %s}'
        % _deep(*d).encode()),
    st.integers(1, 1300).map(lambda d: _deep(d, "[").encode()),
)

# Defects that must keep a member out of the database (one is applied to an otherwise valid
# member): (name, change to a native/OwnTracks-style dict).
DEFECTS: list[tuple[str, Any]] = [
    ("no lat", lambda m: m.pop("lat")),
    ("lat 91", lambda m: m.update(lat=91.0)),
    ("lat huge", lambda m: m.update(lat=1e308)),
    ("lat text", lambda m: m.update(lat="north")),
    ("lat null", lambda m: m.update(lat=None)),
    ("lat list", lambda m: m.update(lat=[50.4])),
    ("null island", lambda m: m.update(lat=0.0, lon=0.0)),
    ("nul value", lambda m: m.update(note="a\x00b")),
    ("nul key", lambda m: m.update({"k\x00": 1})),
    ("deep attribute", lambda m: m.update(x=json.loads(_deep(300, "{")))),
    ("battery", lambda m: m.update(batt=1e308)),
    ("battery negative", lambda m: m.update(batt=-5)),
    ("altitude", lambda m: m.update(alt=-1e9)),
    ("accuracy negative", lambda m: m.update(acc=-1)),
    ("accuracy poor", lambda m: m.update(acc=5000)),
]


class Clock:
    """Distinct, recent fix times for the valid fixes of one unit."""

    def __init__(self) -> None:
        self._next = itertools.count(int(time.time()) - 3000)

    def __call__(self) -> int:
        return next(self._next)


def _valid(t: int, extra: dict[str, Any]) -> dict[str, Any]:
    return {"lat": 50.45 + (t % 1000) * 1e-6, "lon": 30.52, "t": t, **extra}


_valid_extras = st.fixed_dictionaries({}, optional={
    "speed": st.floats(0, 50), "heading": st.floats(0, 359), "acc": st.floats(0, 50),
    "alt": st.floats(-10, 300), "batt": st.integers(0, 100),
    "note": _safe_text, "odometer": st.integers(0, 10**30),
})
_member_plan = st.lists(st.one_of(
    st.tuples(st.just("valid"), _valid_extras),
    st.tuples(st.sampled_from(range(len(DEFECTS))), _valid_extras),
), min_size=1, max_size=8)


# In the OsmAnd JSON form (transistorsoft background geolocation) a negative battery level or
# accuracy is the documented "unknown": not a defect there.
NOT_DEFECTS = {"osmand_json": {"battery negative", "accuracy negative"}}
# Defects that make a valid fix the app must not resend (filtered: still a 200), not a wrong one.
FILTERED = {"accuracy poor"}


def _build(plan: list[tuple[Any, dict[str, Any]]], clock: Clock, form: str = "native",
           ) -> tuple[list[dict[str, Any]], list[int]]:
    """Members from a plan, and the fix times of the valid ones."""
    members, valid = [], []
    for kind, extra in plan:
        t = clock()
        m = _valid(t, extra)
        if kind == "valid":
            valid.append(t)
        else:
            name, defect = DEFECTS[kind]
            defect(m)
            if name in NOT_DEFECTS.get(form, set()):
                valid.append(t)
        members.append(m)
    return members, valid


# --- decoders and every later stage ------------------------------------------------------------


def _all_stages(items: list[Any], settings: Settings) -> None:
    """Run every post-decoding stage on decoder output: none may raise."""
    validator = Validator(settings)
    token = validator.begin()
    for item in items:
        assert isinstance(item, PositionReport | StatusReport | OfflineReport | Rejected), item
        if not isinstance(item, PositionReport) or item.position is None:
            continue
        item.unit_id = 1
        if storage_problem(item) is not None or implausible_field(item, settings) is not None:
            continue
        validator.check(item, now=NOW, token=token)
        item.h3 = h3_index(item, settings.h3_position_res)
        row = to_row(item)
        assert all(not isinstance(v, float) or math.isfinite(v) for v in row)
        if item.attrs_json is not None:
            # What reaches the COPY is JSON PostgreSQL can store: no U+0000 anywhere.
            assert not _has_nul(orjson.loads(item.attrs_json), 0)


def _decode_or_rejected(fn: Any, *args: Any, **kw: Any) -> list[Any]:
    try:
        out = fn(*args, **kw)
    except Rejected:
        return []
    return out if isinstance(out, list) else [out]


@fuzz(300)
@given(payload=_payloads, topic_kind=st.sampled_from(["position", "status", "owntracks", "bad"]))
def test_mqtt_decoders_are_total(payload: bytes, topic_kind: str, settings: Settings) -> None:
    """decode_mqtt on any payload and topic: reports or Rejected, and every stage after it."""
    topic = {"position": "geodispatch/units/D1/position", "status": "geodispatch/units/D1/status",
             "owntracks": "owntracks/D1/phone", "bad": "geodispatch/units//x/y"}[topic_kind]
    items = _decode_or_rejected(decoders.decode_mqtt, topic, payload, received_at=NOW)
    _all_stages(items, settings)


@fuzz(300)
@given(body=_payloads)
def test_http_decoders_are_total(body: bytes, settings: Settings) -> None:
    """OsmAnd JSON, OwnTracks HTTP, status, GPX and native decoders on any body."""
    try:
        data = decoders.parse_json(body)
    except Rejected:
        data = None
    items: list[Any] = []
    if data is not None:
        items += _decode_or_rejected(decoders.decode_osmand_json_items, data, received_at=NOW)
        items += _decode_or_rejected(decoders.owntracks_items, data, device="u/d",
                                     received_at=NOW)
    items += _decode_or_rejected(decoders.decode_status, body, device="D1", received_at=NOW)
    items += _decode_or_rejected(decoders.decode_gpx, body, device="D1", received_at=NOW)
    items += _decode_or_rejected(decoders.decode_native_items, body, device="D1",
                                 received_at=NOW)
    _all_stages(items, settings)


@fuzz(300)
@given(pairs=st.one_of(
    st.lists(st.tuples(st.one_of(_field_names, _text), st.one_of(_text, _number.map(str))),
             max_size=12),
    st.lists(st.tuples(st.sampled_from(["lat", "lon", "timestamp", "speed", "bearing",
                                        "altitude", "accuracy", "batt", "location", "hdop"]),
                       st.one_of(_text, _number.map(str))), max_size=4).map(
        lambda extra: [("id", "D1"), ("lat", "50.45"), ("lon", "30.52"),
                       ("timestamp", "1796000000"), *extra])))
def test_osmand_query_decoder_is_total(pairs: list[tuple[str, str]], settings: Settings) -> None:
    """The OsmAnd query decoder on any key/value pairs."""
    _all_stages(_decode_or_rejected(decoders.decode_osmand_query, pairs, received_at=NOW),
                settings)


@fuzz(300)
@given(gpx=st.one_of(
    st.binary(max_size=200),
    st.lists(st.tuples(st.one_of(_number.map(str), _text), st.one_of(_number.map(str), _text),
                       st.one_of(_text, st.just("2026-12-01T10:00:00Z"))), max_size=5).map(
        lambda pts: ('<gpx><trk><trkseg>' + "".join(
            f'<trkpt lat="{json.dumps(a)[1:-1]}" lon="{json.dumps(b)[1:-1]}"><time>'
            f'{json.dumps(t)[1:-1]}</time></trkpt>' for a, b, t in pts)
            + '</trkseg></trk></gpx>').encode("utf-8", "surrogatepass"))))
def test_gpx_decoder_is_total(gpx: bytes, settings: Settings) -> None:
    """GPX with junk coordinates and times."""
    _all_stages(_decode_or_rejected(decoders.decode_gpx, gpx, device="D1", received_at=NOW),
                settings)


def test_defects_are_really_defects(settings: Settings) -> None:
    """Each defect keeps an otherwise valid member out (the fuzz tests below rely on it)."""
    validator = Validator(settings)
    for name, defect in DEFECTS:
        member = _valid(int(time.time()) - 10, {})
        defect(member)
        items = _decode_or_rejected(decoders.decode_native_items, _dumps(member), device="D",
                                    received_at=datetime.now(UTC))
        kept = []
        for r in items:
            if isinstance(r, PositionReport) and r.position is not None:
                r.unit_id = 1
                if storage_problem(r) is None and implausible_field(r, settings) is None \
                        and validator.check(r, now=datetime.now(UTC)) is None:
                    kept.append(r)
        assert kept == [], name


# --- the whole MQTT path -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def mqtt_path(settings: Settings, engine: Engine) -> Iterator[tuple[Settings, Any, Any, Any]]:
    s = mqtt_settings(settings)
    good, good_token = ensure_unit(engine, s, f"fz-{uuid.uuid4().hex[:8]}")
    other, _ = ensure_unit(engine, s, f"fz-{uuid.uuid4().hex[:8]}")
    with engine.connect() as c:
        names = dict(c.execute(text("SELECT id, device_id FROM units WHERE id IN (:a, :b)"),
                               {"a": good, "b": other}).all())
    with running_worker(s) as worker:
        pub = publisher(s)
        yield s, worker, pub, (good, names[good], names[other])
        pub.loop_stop()


def _fix_times(engine: Engine, unit_id: int) -> set[int]:
    with engine.connect() as c:
        return {int(r[0]) for r in c.execute(text(
            "SELECT extract(epoch FROM fix_time)::bigint FROM positions WHERE unit_id = :u"),
            {"u": unit_id})}


_MQTT_CLOCK = Clock()
_MQTT_SENT: set[int] = set()


@fuzz(6)
@given(junk=st.lists(st.tuples(st.sampled_from(["good", "other", "ot", "status"]), _payloads),
                     max_size=25),
       batches=st.lists(_member_plan, min_size=1, max_size=6))
def test_mqtt_path_never_stops_and_stores_every_valid_fix(
        mqtt_path: tuple[Settings, Any, Any, Any], engine: Engine,
        junk: list[tuple[str, bytes]], batches: list[list[tuple[Any, dict[str, Any]]]]) -> None:
    """Junk on every topic and mixed arrays on the unit's own: the worker keeps running and the
    stored fixes of the unit are exactly the valid ones sent."""
    _s, worker, pub, (good_id, good_dev, other_dev) = mqtt_path
    topics = {"good": f"geodispatch/units/{good_dev}/position",
              "other": f"geodispatch/units/{other_dev}/position",
              "ot": f"owntracks/{other_dev}/phone",
              "status": f"geodispatch/units/{other_dev}/status"}
    for plan in batches:
        members, valid = _build(plan, _MQTT_CLOCK)
        _MQTT_SENT.update(valid)
        body = _dumps(members if len(members) > 1 else members[0])
        pub.publish(topics["good"], body, qos=1)
    for where, payload in junk:
        if where == "good":
            # Junk on the unit's own topic must not be a valid fix by chance: make sure.
            payload = b"\xff" + payload
        pub.publish(topics[where], payload, qos=1)
    sentinel = _MQTT_CLOCK()
    _MQTT_SENT.add(sentinel)
    pub.publish(topics["good"], _dumps(_valid(sentinel, {})), qos=1).wait_for_publish(10)
    assert wait_for(lambda: sentinel in _fix_times(engine, good_id), timeout=60)
    assert _fix_times(engine, good_id) == _MQTT_SENT
    assert worker.connected.is_set()


# --- the whole HTTP path -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def http_path(settings: Settings, engine: Engine) -> Iterator[tuple[str, int, str, str]]:
    app = create_app(settings.model_copy(update={"serve_ingest": False}))
    device = f"fh-{uuid.uuid4().hex[:8]}"
    uid, token = ensure_unit(engine, settings, device)
    with running_server(app) as base:
        yield base, uid, device, token


_HTTP_CLOCK = Clock()
_HTTP_SENT: set[int] = set()
_HTTP_LOCK = threading.Lock()


def _osmand_location(m: dict[str, Any]) -> dict[str, Any]:
    """A native-style member as an OsmAnd JSON location (defects carried over)."""
    coords = {k2: m[k1] for k1, k2 in (("lat", "latitude"), ("lon", "longitude"),
                                       ("speed", "speed"), ("heading", "heading"),
                                       ("acc", "accuracy"), ("alt", "altitude")) if k1 in m}
    loc: dict[str, Any] = {"coords": coords}
    if "t" in m:
        loc["timestamp"] = datetime.fromtimestamp(m["t"], tz=UTC).isoformat()
    if "batt" in m:
        b = m["batt"]
        loc["battery"] = {"level": b / 100 if isinstance(b, int | float) else b}
    extras = {k: v for k, v in m.items() if k not in {"lat", "lon", "t", "speed", "heading",
                                                      "acc", "alt", "batt"}}
    if extras:
        loc["extras"] = extras
    return loc


def _owntracks(m: dict[str, Any]) -> dict[str, Any]:
    out = {"_type": "location", **{k: v for k, v in m.items() if k not in {"t", "speed",
                                                                           "heading"}}}
    if "t" in m:
        out["tst"] = m["t"]
    if "heading" in m:
        out["cog"] = m["heading"]
    return out


@fuzz(60)
@given(plan=_member_plan, form=st.sampled_from(["osmand_json", "owntracks"]))
def test_http_batches_store_every_valid_member(http_path: tuple[str, int, str, str],
                                               engine: Engine, plan: list[Any], form: str) -> None:
    """Mixed batched bodies over real HTTP: no 5xx, every valid member stored."""
    base, uid, device, token = http_path
    with _HTTP_LOCK:
        members, valid = _build(plan, _HTTP_CLOCK, form)
        _HTTP_SENT.update(valid)
    if form == "osmand_json":
        body = {"device_id": device, "location": [_osmand_location(m) for m in members]}
        r = httpx.post(base + "/api/ingest/osmand", content=_dumps(body),
                       headers={"Content-Type": "application/json", "X-Device-Token": token})
    else:
        r = httpx.post(base + "/api/ingest/owntracks",
                       content=_dumps([_owntracks(m) for m in members]), auth=(device, token),
                       headers={"Content-Type": "application/json", "X-Limit-D": "phone"})
    assert r.status_code < 500, r.text
    acceptable = bool(valid) or any(kind != "valid" and DEFECTS[kind][0] in FILTERED
                                    for kind, _extra in plan)
    assert r.status_code == (200 if acceptable else 400), (r.status_code, r.text, members)
    assert _fix_times(engine, uid) == _HTTP_SENT


@fuzz(80)
@given(body=_payloads, params=st.lists(st.tuples(st.one_of(_field_names, _text), _text),
                                       max_size=6),
       path=st.sampled_from(["/api/ingest/osmand", "/api/ingest/owntracks",
                             "/api/ingest/status"]),
       ctype=st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                              "text/plain", ""]))
def test_http_never_answers_5xx(http_path: tuple[str, int, str, str], body: bytes,
                                params: list[tuple[str, str]], path: str, ctype: str) -> None:
    """Any body, query and content type, with the unit's real credentials: never a 5xx."""
    base, _uid, device, token = http_path
    query = [("id", device), *params]
    r = httpx.post(base + path, params=query, content=body, auth=(device, token),
                   headers={"Content-Type": ctype} if ctype else {})
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code >= 400:
        assert len(r.content) < 4000  # short, never the input echoed back


def test_fuzzed_rows_are_whole(engine: Engine, settings: Settings) -> None:
    """After the fuzzing every stored position has its geometry and H3 cell, and the partition
    job gives every fuzzed fix that landed in the default partition (a late fix for a past
    month) its month."""
    from geodispatch.tracking.scheduled import ensure_partitions

    with engine.begin() as c:
        broken = c.execute(text("SELECT count(*) FROM positions WHERE geom IS NULL OR h3 IS NULL"
                                )).scalar()
        total = c.execute(text("SELECT count(*) FROM positions")).scalar()
        with Session(bind=c) as session:
            ensure_partitions(session=session, months_ahead=settings.partition_months_ahead)
        stray = c.execute(text("SELECT count(*) FROM positions_default")).scalar()
        after = c.execute(text("SELECT count(*) FROM positions")).scalar()
    assert broken == 0 and stray == 0 and after == total
