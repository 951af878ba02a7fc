"""Property-based intake over real HTTP: whatever a client sends to ``POST /api/incidents``, the
answer is never a 5xx, and every call the server accepted is in the database exactly once."""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from tests.api.conftest import Account, accounts  # noqa: F401  (the fixture)
from tests.helpers import login, running_server

_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=60)
_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), _text)
_json = st.recursive(_scalar, lambda kids: st.one_of(
    st.lists(kids, max_size=3), st.dictionaries(_text, kids, max_size=3)), max_leaves=8)
_field_values: dict[str, st.SearchStrategy[Any]] = {
    "lat": st.one_of(st.floats(-100, 100), _json),
    "lng": st.one_of(st.floats(-200, 200), _json),
    "address": st.one_of(_text, st.sampled_from(["East Pratt Street", "a & b", "%_%", ""]),
                         _json),
    "category": st.one_of(st.sampled_from(["theft", "robbery", "other", "", "THEFT"]), _json),
    "priority": st.one_of(st.integers(-5, 10), _json),
    "description": st.one_of(_text, st.text(min_size=3990, max_size=4010), _json),
    "caller_phone": st.one_of(st.sampled_from(["+380671112233", "0671112233", "12", "+"]),
                              _text, _json),
    "caller_lang": st.one_of(st.sampled_from(["uk", "en", "xx-YY-ZZ"]), _json),
    "sms_opt_out": _json,
    "received_at": st.one_of(st.sampled_from(["2026-12-02T10:00:00+02:00",
                                              "2026-12-02T10:00:00", "yesterday"]), _json),
    "idempotency_key": st.one_of(st.none(), st.uuids().map(str), _text),
}
_bodies = st.one_of(
    st.fixed_dictionaries({}, optional=_field_values).map(json.dumps),
    _json.map(lambda v: json.dumps(v)),
    st.binary(max_size=200).map(lambda b: b),  # not JSON, not even UTF-8
)


def test_no_body_yields_a_5xx_and_accepted_calls_are_stored_once(
        settings: Settings, accounts: dict[str, Account], engine: Engine  # noqa: F811
) -> None:
    app = create_app(settings.model_copy(update={"serve_ingest": False}))
    accepted: dict[int, str] = {}
    created: list[int] = []
    with running_server(app) as base, httpx.Client(base_url=base, timeout=30) as client:
        ct = accounts["call_taker"]
        headers = {**login(base, ct.username, ct.password), "Content-Type": "application/json"}
        with engine.connect() as conn:
            before = conn.execute(text("SELECT count(*) FROM incidents")).scalar_one()

        @hsettings(max_examples=300, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                          HealthCheck.function_scoped_fixture])
        @given(body=_bodies)
        def post(body: str | bytes) -> None:
            r = client.post("/api/incidents", content=body, headers=headers)
            assert r.status_code < 500, (body[:300], r.status_code, r.text[:300])
            assert r.headers["content-type"].startswith(("application/json",
                                                         "application/problem+json"))
            if r.status_code in (200, 201):
                out = r.json()
                assert out["reference"].startswith("KV-")
                if out["id"] in accepted:
                    assert not out["created"], "the same incident reported created twice"
                accepted[out["id"]] = out["reference"]
                if r.status_code == 201:
                    assert out["created"]
                    created.append(out["id"])

        post()
    assert created, "no body at all was accepted: the strategy is broken"
    with engine.connect() as conn:
        after = conn.execute(text("SELECT count(*) FROM incidents")).scalar_one()
        rows = conn.execute(text("SELECT id, reference FROM incidents WHERE id = ANY(:i)"),
                            {"i": list(accepted)}).all()
    assert dict(rows) == accepted, "an accepted call is missing or changed"
    assert len(set(created)) == len(created) == after - before, "a hidden or duplicated call"
