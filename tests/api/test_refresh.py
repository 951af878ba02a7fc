"""Shift-long sessions: POST /api/auth/refresh, and a live stream kept open by renewed tokens."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
import websockets
from sqlalchemy import Engine, delete, update
from sqlalchemy.orm import Session

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from geodispatch.users.models import User
from geodispatch.users.service import upsert_user
from tests.helpers import running_server

PASSWORD = "shift-long s3cret"


@pytest.fixture()
def user(engine: Engine) -> Iterator[str]:
    """A dispatcher of KV (English), deleted after."""
    name = f"refresh_{uuid.uuid4().hex[:8]}"
    with Session(engine) as s, s.begin():
        upsert_user(session=s, username=name, password=PASSWORD, role="dispatcher",
                    region="KV", language="en")
    yield name
    with Session(engine) as s, s.begin():
        s.execute(delete(User).where(User.username == name))


def _app(settings: Settings, ttl_minutes: float = 720) -> Any:
    return create_app(settings.model_copy(update={
        "serve_ingest": False, "jwt_ttl_minutes": ttl_minutes, "live_incident_poll_s": 0.2}))


def _login(base: str, name: str) -> dict[str, Any]:
    r = httpx.post(f"{base}/api/auth/token", data={"username": name, "password": PASSWORD})
    r.raise_for_status()
    return dict(r.json())


def _claims(settings: Settings, token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, settings.resolved_jwt_secret, algorithms=["HS256"]))


def _refresh(base: str, token: str) -> httpx.Response:
    return httpx.post(f"{base}/api/auth/refresh", headers={"Authorization": f"Bearer {token}"})


def test_refresh_gives_a_later_token_for_the_same_user_and_role(
    settings: Settings, user: str
) -> None:
    """A valid token buys a new one expiring later, with the same user, role and region; both
    work; the answer says when it expires."""
    with running_server(_app(settings)) as base:
        first = _login(base, user)
        assert first["expires_in"] == 720 * 60
        time.sleep(1.1)  # JWT times are whole seconds
        r = _refresh(base, first["access_token"])
        assert r.status_code == 200, r.text
        fresh = r.json()
        assert fresh["access_token"] != first["access_token"]
        assert (fresh["username"], fresh["role"], fresh["region"], fresh["language"]) == (
            user, "dispatcher", "KV", "en")
        assert fresh["expires_in"] == 720 * 60
        old = _claims(settings, first["access_token"])
        new = _claims(settings, fresh["access_token"])
        assert new["exp"] > old["exp"]
        assert (new["sub"], new["role"], new["region"]) == (old["sub"], old["role"], old["region"])
        me = httpx.get(f"{base}/api/auth/me",
                       headers={"Authorization": f"Bearer {fresh['access_token']}"})
        assert me.json() == {"username": user, "role": "dispatcher", "region": "KV"}


def test_refresh_refuses_expired_forged_and_revoked_tokens(
    settings: Settings, user: str, engine: Engine
) -> None:
    """An expired token, a token signed with another key, no token, and the token of an account
    since deactivated or given another role are all refused with a 401 problem."""
    with running_server(_app(settings)) as base:
        token = _login(base, user)["access_token"]
        claims = _claims(settings, token)
        past = datetime.now(UTC) - timedelta(seconds=5)
        expired = jwt.encode({**claims, "exp": past}, settings.resolved_jwt_secret,
                             algorithm="HS256")
        forged = jwt.encode(claims, "not the centre's secret, 32 bytes or more", algorithm="HS256")
        for bad in (expired, forged):
            r = _refresh(base, bad)
            assert r.status_code == 401, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
        assert httpx.post(f"{base}/api/auth/refresh").status_code == 401
        assert _refresh(base, token).status_code == 200  # the real one still works

        with Session(engine) as s, s.begin():
            s.execute(update(User).where(User.username == user).values(role="supervisor"))
        time.sleep(1.1)  # the account check trusts a lookup for a second
        assert _refresh(base, token).status_code == 401  # the role changed: log in again
        with Session(engine) as s, s.begin():
            s.execute(update(User).where(User.username == user).values(
                role="dispatcher", active=False))
        time.sleep(1.1)
        assert _refresh(base, token).status_code == 401


async def _recv(ws: Any, timeout: float) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), timeout)))


def test_live_stream_ends_when_its_token_expires_unrenewed(
    settings: Settings, user: str
) -> None:
    """With a 3 s token lifetime and no renewal, the stream is closed 4401 soon after expiry."""
    with running_server(_app(settings, ttl_minutes=0.05)) as base:
        token = _login(base, user)["access_token"]
        exp = _claims(settings, token)["exp"]

        async def scenario() -> tuple[int | None, float]:
            async with websockets.connect(base.replace("http", "ws", 1) + "/api/live") as ws:
                await ws.send(json.dumps({"token": token}))
                assert (await _recv(ws, 10))["type"] == "snapshot"
                try:
                    while True:
                        await _recv(ws, 10)
                except websockets.ConnectionClosed as exc:
                    return (exc.rcvd.code if exc.rcvd else None), time.time()

        code, closed_at = asyncio.run(scenario())
    assert code == 4401
    assert exp <= closed_at < exp + 3.0


def test_live_stream_renewed_on_the_socket_outlives_its_first_token(
    settings: Settings, user: str, engine: Engine
) -> None:
    """Renewing a 3 s token on the open socket every second keeps one stream open for three
    lifetimes, and an incident registered after the first token expired still arrives on it;
    a token of another account offered as a renewal ends the stream 4401."""
    other = f"refresh_other_{uuid.uuid4().hex[:6]}"
    with Session(engine) as s, s.begin():
        upsert_user(session=s, username=other, password=PASSWORD, role="dispatcher", region="KV")
    try:
        with running_server(_app(settings, ttl_minutes=0.05)) as base:
            token = _login(base, user)["access_token"]
            first_exp = _claims(settings, token)["exp"]

            async def scenario() -> tuple[list[float], int, int | None]:
                nonlocal token
                acks: list[float] = []
                url = base.replace("http", "ws", 1) + "/api/live"
                async with websockets.connect(url) as ws, httpx.AsyncClient(base_url=base) as http:
                    await ws.send(json.dumps({"token": token}))
                    assert (await _recv(ws, 10))["type"] == "snapshot"
                    incident_id = 0
                    seen = False
                    deadline = time.time() + 9.0  # three lifetimes
                    next_renewal = time.time() + 1.0
                    while time.time() < deadline or not seen:
                        assert time.time() < deadline + 10, "the incident never arrived"
                        if time.time() >= next_renewal:
                            r = await http.post("/api/auth/refresh",
                                                headers={"Authorization": f"Bearer {token}"})
                            assert r.status_code == 200, r.text
                            token = r.json()["access_token"]
                            await ws.send(json.dumps({"token": token}))
                            next_renewal = time.time() + 1.0
                        if not incident_id and time.time() > first_exp + 1:
                            r = await http.post("/api/incidents", headers={
                                "Authorization": f"Bearer {token}"}, json={
                                "lat": 50.45, "lng": 30.52, "category": "theft",
                                "description": "after the first token expired"})
                            assert r.status_code in (200, 201), r.text
                            incident_id = int(r.json()["id"])
                        try:
                            msg = await _recv(ws, 0.3)
                        except TimeoutError:
                            continue
                        if msg["type"] == "auth":
                            acks.append(float(msg["expires_at"]))
                        elif msg["type"] == "incidents" and any(
                                i["id"] == incident_id for i in msg["incidents"]):
                            seen = True
                    r = await http.post("/api/auth/token",
                                        data={"username": other, "password": PASSWORD})
                    await ws.send(json.dumps({"token": r.json()["access_token"]}))
                    try:
                        while True:
                            await _recv(ws, 5)
                    except websockets.ConnectionClosed as exc:
                        code = exc.rcvd.code if exc.rcvd else None
                    await http.post(f"/api/incidents/{incident_id}/cancel", headers={
                        "Authorization": f"Bearer {token}"}, json={"reason": "test done"})
                    return acks, incident_id, code

            acks, incident_id, code = asyncio.run(scenario())
    finally:
        with Session(engine) as s, s.begin():
            s.execute(delete(User).where(User.username == other))
    assert incident_id
    assert len(acks) >= 6 and acks == sorted(acks) and acks[-1] > first_exp + 6
    assert code == 4401
