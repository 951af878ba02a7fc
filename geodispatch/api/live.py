"""``/api/live``: the WebSocket stream of unit positions and statuses and incident changes.

Authentication: the JWT as ``?token=...`` or as the first message (``{"token": "..."}`` or the
bare token). Messages to the client are JSON objects:

* ``{"type": "snapshot", "user": {...}, "units": [...], "incidents": [...]}`` once, first;
* ``{"type": "units", "sent_at": epoch_s, "units": [...]}`` — newest state of changed units;
* ``{"type": "incidents", "incidents": [...]}`` — current state of changed incidents;
* ``{"type": "calls", "calls": [...]}`` — current state of changed calls (as ``GET /api/calls``
  gives them; only to the roles that see calls: call-taker, dispatcher, supervisor, admin);
* ``{"type": "auth", "expires_at": epoch_s}`` — a renewed token was accepted.

A stream lives as long as its token: the console sends each renewed token
(``POST /api/auth/refresh``) on the open socket as ``{"token": "..."}``, and the stream goes on
without a reconnect, so no event is lost. A stream whose token expires unrenewed is closed 4401,
and so is one offered a token of another user, role or region.

Close codes: 4401 bad, missing or expired token, 4403 role not allowed, 1013 feed not running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from geodispatch.api.livefeed import LiveHub, open_incidents
from geodispatch.api.security import (
    ACCOUNT_TTL_S,
    ADMIN,
    CALL_TAKER,
    DISPATCHER,
    NATIONAL,
    SUPERVISOR,
    AccountCheck,
    Principal,
    decode_token_expiry,
)
from geodispatch.errors import Unauthenticated
from geodispatch.eventfeed import in_thread

log = logging.getLogger(__name__)

router = APIRouter(tags=["live"])

LIVE_ROLES = frozenset({CALL_TAKER, DISPATCHER, SUPERVISOR, ADMIN, NATIONAL})
CALL_ROLES = frozenset({CALL_TAKER, DISPATCHER, SUPERVISOR, ADMIN})
FIRST_MESSAGE_TIMEOUT_S = 10.0


@dataclass
class _Grant:
    """Who the stream is for and until when (epoch seconds): renewed tokens move ``expires``."""

    principal: Principal
    expires: float


def _token_of(message: str) -> str:
    token = message.strip()
    if token.startswith("{"):
        with contextlib.suppress(ValueError, AttributeError):
            token = str(json.loads(token).get("token") or "")
    return token


async def _check(ws: WebSocket, token: str) -> _Grant:
    """The grant of a token: valid, unexpired, and its account unchanged (else Unauthenticated)."""
    principal, expires = decode_token_expiry(token, ws.app.state.settings)
    accounts: AccountCheck = ws.app.state.accounts
    return _Grant(await in_thread(accounts.ensure, principal), expires.timestamp())


async def _authenticate(ws: WebSocket) -> _Grant | None:
    token = ws.query_params.get("token")
    if not token:
        try:
            first = await asyncio.wait_for(ws.receive_text(), FIRST_MESSAGE_TIMEOUT_S)
        except (TimeoutError, WebSocketDisconnect):
            return None
        token = _token_of(first)
    try:
        return await _check(ws, token)
    except Unauthenticated:
        return None


@router.websocket("/api/live")
async def live(ws: WebSocket) -> None:
    await ws.accept()
    grant = await _authenticate(ws)
    if grant is None:
        await ws.close(code=4401, reason="missing or invalid token")
        return
    principal = grant.principal
    if principal.role not in LIVE_ROLES:
        await ws.close(code=4403, reason=f"role {principal.role} may not watch the live map")
        return
    hub: LiveHub | None = getattr(ws.app.state, "live_hub", None)
    if hub is None:
        await ws.close(code=1013, reason="live feed not running")
        return
    region = principal.region
    factory = ws.app.state.session_factory

    fleet = getattr(ws.app.state, "fleet", None)
    user = {"username": principal.username, "role": principal.role, "region": region}

    def _snapshot() -> str:
        # In a worker thread: thousands of units and a query must not stall other clients.
        with factory() as s:
            incidents = open_incidents(session=s, region=region)
        units = hub.unit_snapshot(fleet, region)
        return json.dumps({"type": "snapshot", "user": user, "units": units,
                           "incidents": incidents}, default=str, separators=(",", ":"))

    # Register first so nothing that happens while the snapshot is built is lost.
    client = hub.add(ws, region, sees_calls=principal.role in CALL_ROLES)
    try:
        await ws.send_text(await in_thread(_snapshot))
        sender = asyncio.create_task(client.run())
        receiver = asyncio.create_task(_receive(ws, grant))
        watcher = asyncio.create_task(_watch_grant(ws, grant))
        tasks = {sender, receiver, watcher}
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        # Collect both outcomes (a cancelled send may still end in WebSocketDisconnect).
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, Exception) and not isinstance(outcome, WebSocketDisconnect):
                log.debug("live client ended: %r", outcome)
    except WebSocketDisconnect:
        pass
    finally:
        hub.remove(client)


live.ws_roles = LIVE_ROLES  # type: ignore[attr-defined]


async def _watch_grant(ws: WebSocket, grant: _Grant) -> None:
    """End the stream (close 4401) once the account is deactivated or its role changes, or the
    token expires without a renewal."""
    accounts: AccountCheck = ws.app.state.accounts
    while True:
        await asyncio.sleep(min(ACCOUNT_TTL_S, max(0.05, grant.expires - time.time())))
        try:
            if time.time() >= grant.expires:
                raise Unauthenticated("the token expired: log in again")
            await in_thread(accounts.ensure, grant.principal)
        except Unauthenticated as exc:
            with contextlib.suppress(Exception):
                await ws.close(code=4401, reason=str(exc)[:120])
            return


async def _receive(ws: WebSocket, grant: _Grant) -> None:
    """Read client messages until it disconnects (so closes are noticed): each is a renewed
    token for the same account, which extends the stream, or the stream ends 4401."""
    while True:
        msg = await ws.receive()
        if msg["type"] == "websocket.disconnect":
            return
        text = msg.get("text")
        if not text or not text.strip() or text.strip() == "{}":
            continue  # keep-alives
        try:
            renewed = await _check(ws, _token_of(text))
            if renewed.principal != grant.principal:
                raise Unauthenticated("a token of another account")
        except Unauthenticated as exc:
            with contextlib.suppress(Exception):
                await ws.close(code=4401, reason=f"renewal refused: {exc}"[:120])
            return
        grant.expires = max(grant.expires, renewed.expires)
        await ws.send_text(json.dumps({"type": "auth", "expires_at": grant.expires}))
