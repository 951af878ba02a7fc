"""The geocoding API over real HTTP (uvicorn): answers, and hostile input that never gives a
500 (SQL-like text, 10 kB, emoji, empty, NUL, LIKE wildcards, impossible coordinates)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from tests.api.conftest import Account, accounts  # noqa: F401  (the per-role console users)
from tests.helpers import login, running_server


@pytest.fixture(scope="module")
def api(settings: Settings, accounts: dict[str, Account],  # noqa: F811
        address_index: object) -> Iterator[tuple[str, dict[str, str]]]:
    app = create_app(settings.model_copy(update={"serve_ingest": False}))
    with running_server(app) as base:
        a = accounts["call_taker"]
        yield base, login(base, a.username, a.password)


def test_search_answers_with_precision(api: tuple[str, dict[str, str]]) -> None:
    """The console's search: the house first, with precision and method."""
    base, h = api
    r = httpx.get(f"{base}/api/geocode/search", headers=h,
                  params={"q": "750 E Pratt St", "lat": 39.29, "lng": -76.60})
    assert r.status_code == 200, r.text
    best = r.json()[0]
    assert (best["label"], best["precision"], best["method"]) == (
        "750 East Pratt Street", "house", "house")
    assert best["street_only"] is False


def test_reverse_names_a_point(api: tuple[str, dict[str, str]]) -> None:
    """A map click next to 750 E Pratt St is named after it; mid-ocean is a clear 404."""
    base, h = api
    r = httpx.get(f"{base}/api/geocode/reverse", headers=h,
                  params={"lat": 39.28712, "lng": -76.60522})
    assert r.status_code == 200 and r.json()["label"] == "750 East Pratt Street"
    r = httpx.get(f"{base}/api/geocode/reverse", headers=h, params={"lat": 30, "lng": -40})
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem")


HOSTILE = ["' OR 1=1 --", "'; DROP TABLE incidents; --", "Pratt St') UNION SELECT * FROM users--",
           "x" * 300, "🚓🚨💥" * 20, "%", "%%%", "_", "\\", "a\x00b", "\x00", "   ", "/", "&",
           "/ / /", "22/1/3/4", "кв. 5", "буд.", "1" * 300, "50.45, 930.52", "-91, 0",
           "Хрещатик\u202e22", "\u0301\u0301"]


@pytest.mark.parametrize("q", HOSTILE)
def test_hostile_search_text_is_answered_not_crashed(api: tuple[str, dict[str, str]],
                                                     q: str) -> None:
    """Anything typed gets 200 with a (possibly empty) list."""
    base, h = api
    r = httpx.get(f"{base}/api/geocode/search", headers=h, params={"q": q})
    assert r.status_code == 200, r.text
    assert isinstance(r.json(), list)


@pytest.mark.parametrize("params", [
    {"q": ""}, {"q": "x" * 10_240}, {"q": "Pratt", "lat": 91, "lng": 0},
    {"q": "Pratt", "lat": 39.0}, {"q": "Pratt", "limit": 0}, {"q": "Pratt", "lat": "nan", "lng": 0},
    {"q": "Pratt", "lat": "abc", "lng": "def"},
])
def test_bad_search_parameters_are_a_clear_4xx(api: tuple[str, dict[str, str]],
                                               params: dict[str, object]) -> None:
    """Empty, 10 kB, impossible hints: a 4xx problem document naming the parameter."""
    base, h = api
    r = httpx.get(f"{base}/api/geocode/search", headers=h, params=params)
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("params", [{"lat": 999, "lng": 0}, {"lat": "x", "lng": "y"}, {},
                                    {"lat": "inf", "lng": "inf"}])
def test_bad_reverse_parameters_are_a_clear_4xx(api: tuple[str, dict[str, str]],
                                                params: dict[str, object]) -> None:
    """Impossible or missing coordinates: 4xx."""
    base, h = api
    r = httpx.get(f"{base}/api/geocode/reverse", headers=h, params=params)
    assert 400 <= r.status_code < 500, r.text


@pytest.mark.parametrize("address", ["'; DROP TABLE incidents; --", "🚓" * 100, "a\x00b",
                                     "x" * 500, "Хрещатик / / 22"])
def test_hostile_addresses_still_register_the_call(api: tuple[str, dict[str, str]],
                                                   address: str) -> None:
    """Registration with a hostile address is a 201 (place unknown), never a 500."""
    base, h = api
    r = httpx.post(f"{base}/api/incidents", headers=h,
                   json={"address": address, "description": "hostile address test"})
    assert r.status_code == 201, r.text
    assert r.json()["location_unknown"] is True


def test_search_needs_a_login(api: tuple[str, dict[str, str]]) -> None:
    """No token, no addresses."""
    base, _h = api
    assert httpx.get(f"{base}/api/geocode/search", params={"q": "Pratt"}).status_code == 401
