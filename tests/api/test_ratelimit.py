"""Login rate limiting: the sliding window itself, and 429 + Retry-After over real HTTP."""

from __future__ import annotations

import httpx

from geodispatch.api.app import create_app
from geodispatch.api.ratelimit import LoginLimiter
from geodispatch.settings import Settings
from tests.api.conftest import Account
from tests.helpers import running_server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_window_blocks_after_limit_and_frees_up() -> None:
    """After `limit` failures the key waits until the oldest failure leaves the minute."""
    clock = Clock()
    lim = LoginLimiter(3, clock=clock)
    for _ in range(3):
        assert lim.retry_after("ann", "10.0.0.1") == 0
        lim.failed("ann", "10.0.0.1")
        clock.now += 10
    assert lim.retry_after("ann", "10.0.0.1") == 30
    assert lim.retry_after("ann", "10.0.0.2") == 0, "another address is not blocked"
    assert lim.retry_after("bob", "10.0.0.1") == 0, "another user is not blocked"
    clock.now += 30
    assert lim.retry_after("ann", "10.0.0.1") == 0


def test_success_clears_the_key() -> None:
    """A successful login forgets earlier failures."""
    lim = LoginLimiter(2, clock=Clock())
    lim.failed("ann", "a")
    lim.succeeded("ann", "a")
    lim.failed("ann", "a")
    assert lim.retry_after("ann", "a") == 0


def test_http_429_with_retry_after(settings: Settings, accounts: dict[str, Account]) -> None:
    """Over HTTP the limit is a 429 problem with Retry-After, even for the right password."""
    user = accounts["analyst"]
    app = create_app(
        settings.model_copy(update={"serve_ingest": False, "login_rate_per_minute": 3}))
    with running_server(app) as base:
        for _ in range(3):
            r = httpx.post(f"{base}/api/auth/token",
                           data={"username": user.username, "password": "x"})
            assert r.status_code == 401
        r = httpx.post(f"{base}/api/auth/token",
                       data={"username": user.username, "password": user.password})
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) > 0
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["status"] == 429
