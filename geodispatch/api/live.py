"""``/api/live``: the WebSocket stream of unit positions and statuses and incident changes.

Authentication: the JWT as ``?token=...`` or as the first message (``{"token": "..."}`` or the
bare token). Messages to the client are JSON objects:

* ``{"type": "snapshot", "user": {...}, "units": [...], "incidents": [...]}`` once, first;
* ``{"type": "units", "sent_at": epoch_s, "units": [...]}`` — newest state of changed units;
* ``{"type": "incidents", "incidents": [...]}`` — current state of changed incidents.

Close codes: 4401 bad or missing token, 4403 role not allowed, 1013 feed not running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from geodispatch.api.livefeed import LiveHub, in_thread, open_incidents
from geodispatch.api.security import (
    ACCOUNT_TTL_S,
    ADMIN,
    CALL_TAKER,
    DISPATCHER,
    NATIONAL,
    SUPERVISOR,
    AccountCheck,
    Principal,
    decode_token,
)
from geodispatch.errors import Unauthenticated

log = logging.getLogger(__name__)

router = APIRouter(tags=["live"])

LIVE_ROLES = frozenset({CALL_TAKER, DISPATCHER, SUPERVISOR, ADMIN, NATIONAL})
FIRST_MESSAGE_TIMEOUT_S = 10.0


async def _authenticate(ws: WebSocket) -> Principal | None:
    settings = ws.app.state.settings
    token = ws.query_params.get("token")
    if not token:
        try:
            first = await asyncio.wait_for(ws.receive_text(), FIRST_MESSAGE_TIMEOUT_S)
        except (TimeoutError, WebSocketDisconnect):
            return None
        token = first.strip()
        if token.startswith("{"):
            with contextlib.suppress(ValueError, AttributeError):
                token = str(json.loads(token).get("token") or "")
    try:
        principal = decode_token(token, settings)
        accounts: AccountCheck = ws.app.state.accounts
        return await in_thread(accounts.ensure, principal)
    except Unauthenticated:
        return None


@router.websocket("/api/live")
async def live(ws: WebSocket) -> None:
    await ws.accept()
    principal = await _authenticate(ws)
    if principal is None:
        await ws.close(code=4401, reason="missing or invalid token")
        return
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
    client = hub.add(ws, region)
    try:
        await ws.send_text(await in_thread(_snapshot))
        sender = asyncio.create_task(client.run())
        receiver = asyncio.create_task(_drain(ws))
        watcher = asyncio.create_task(_watch_account(ws, principal))
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


async def _watch_account(ws: WebSocket, principal: Principal) -> None:
    """End the stream (close 4401) once the account is deactivated or its role changes."""
    accounts: AccountCheck = ws.app.state.accounts
    while True:
        await asyncio.sleep(ACCOUNT_TTL_S)
        try:
            await in_thread(accounts.ensure, principal)
        except Unauthenticated as exc:
            with contextlib.suppress(Exception):
                await ws.close(code=4401, reason=str(exc)[:120])
            return


async def _drain(ws: WebSocket) -> None:
    """Read (and ignore) client messages until it disconnects, so closes are noticed."""
    while True:
        msg = await ws.receive()
        if msg["type"] == "websocket.disconnect":
            return
