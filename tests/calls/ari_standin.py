"""A local stand-in for Asterisk's REST Interface (Asterisk is not packaged for Debian 12).

It speaks the parts of ARI the adapter uses, as Asterisk 18-22 document them
(``rest-api/api-docs/events.json``, ``channels.json``, ``bridges.json``): the event WebSocket at
``/ari/events?app=NAME`` and ``GET /ari/channels`` / ``GET /ari/bridges``, behind HTTP Basic auth
(``ari.conf`` users). :func:`answered_call`, :func:`abandoned_call` and :func:`transferred_call`
build the event sequences Asterisk emits for a caller handed to a Stasis application that holds
it in a holding bridge (the PBX answers the line for hold music), originates a call-taker's
phone and mixes the two; the stand-in keeps its channel and bridge lists in step with what it
sends, so a reconnecting client sees what a real Asterisk would show.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from tests.helpers import free_port

ASTERISK_ID = "02:42:ac:11:00:02"


def ari_time(t: datetime) -> str:
    """Asterisk's format: ``2026-12-05T10:00:00.123+0000``."""
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}+0000"


def channel(cid: str, name: str, number: str, state: str, created: datetime,
            exten: str = "102", app_data: str = "geodispatch") -> dict[str, Any]:
    return {"id": cid, "name": name, "state": state, "protocol_id": uuid.uuid4().hex + "@pbx",
            "caller": {"name": "", "number": number}, "connected": {"name": "", "number": ""},
            "accountcode": "", "dialplan": {"context": "from-pstn", "exten": exten,
                                            "priority": 3, "app_name": "Stasis",
                                            "app_data": app_data},
            "creationtime": ari_time(created), "language": "uk", "channelvars": {}}


def bridge(bid: str, kind: str, members: list[str]) -> dict[str, Any]:
    return {"id": bid, "technology": "holding_bridge" if kind == "holding" else "simple_bridge",
            "bridge_type": kind, "bridge_class": "stasis", "creator": "Stasis",
            "name": "queue" if kind == "holding" else "", "channels": list(members),
            "creationtime": ari_time(datetime.now(UTC)), "video_mode": "none"}


class Script:
    """Builds one call's events, each stamped ``t0 + offset``."""

    def __init__(self, app: str, t0: datetime) -> None:
        self.app, self.t0 = app, t0
        self.events: list[dict[str, Any]] = []

    def at(self, offset: float) -> str:
        return ari_time(self.t0 + timedelta(seconds=offset))

    def ev(self, kind: str, offset: float, **body: Any) -> None:
        self.events.append({"type": kind, "timestamp": self.at(offset),
                            "application": self.app, "asterisk_id": ASTERISK_ID, **body})


def _with_state(ch: dict[str, Any], state: str) -> dict[str, Any]:
    return {**ch, "state": state}


def ringing(s: Script, number: str, cid: str | None = None) -> tuple[dict[str, Any], str]:
    """The caller enters Stasis ringing; the application answers the line for hold music and
    puts it in the queue's holding bridge."""
    cid = cid or f"1733{uuid.uuid4().int % 10**6:06d}.{uuid.uuid4().int % 1000}"
    caller = channel(cid, f"PJSIP/trunk-{uuid.uuid4().hex[:8]}", number, "Ring", s.t0)
    s.ev("StasisStart", 0.05, args=[], channel=caller)
    s.ev("ChannelStateChange", 0.2, channel=_with_state(caller, "Up"))
    hold = f"hold-{uuid.uuid4().hex[:8]}"
    s.ev("ChannelEnteredBridge", 0.3, bridge=bridge(hold, "holding", [cid]),
         channel=_with_state(caller, "Up"))
    return caller, hold


def operator_picks_up(s: Script, caller: dict[str, Any], hold: str, operator: str, at: float
                      ) -> tuple[dict[str, Any], str]:
    """The application originates the call-taker's phone, it rings and is answered, and the
    two are mixed; returns the operator's channel and the mixing bridge's id."""
    oid = f"1733{uuid.uuid4().int % 10**6:06d}.{uuid.uuid4().int % 1000}"
    op = channel(oid, f"PJSIP/{operator}-{uuid.uuid4().hex[:8]}", "102", "Down",
                 s.t0 + timedelta(seconds=at - 2.5), app_data="geodispatch,dialed")
    s.ev("ChannelCreated", at - 2.5, channel=op)
    s.ev("Dial", at - 2.5, peer=op, dialstring=operator, dialstatus="")
    s.ev("ChannelStateChange", at - 2.4, channel=_with_state(op, "Ringing"))
    s.ev("Dial", at - 2.4, peer=_with_state(op, "Ringing"), dialstring=operator,
         dialstatus="RINGING")
    s.ev("ChannelStateChange", at - 0.2, channel=_with_state(op, "Up"))
    s.ev("Dial", at - 0.2, peer=_with_state(op, "Up"), dialstring=operator, dialstatus="ANSWER")
    s.ev("StasisStart", at - 0.15, args=["dialed"], channel=_with_state(op, "Up"))
    up = _with_state(caller, "Up")
    s.ev("ChannelLeftBridge", at - 0.1, bridge=bridge(hold, "holding", []), channel=up)
    mix = f"mix-{uuid.uuid4().hex[:8]}"
    s.ev("ChannelEnteredBridge", at - 0.05, bridge=bridge(mix, "mixing", [caller["id"]]),
         channel=up)
    s.ev("ChannelEnteredBridge", at, bridge=bridge(mix, "mixing", [caller["id"], oid]),
         channel=_with_state(op, "Up"))
    return _with_state(op, "Up"), mix


def hangs_up(s: Script, ch: dict[str, Any], at: float, bridge_id: str | None = None,
             kind: str = "mixing") -> None:
    """The caller hangs up (Q.850 16, normal clearing): request, leaving the bridge and Stasis,
    destruction."""
    s.ev("ChannelHangupRequest", at, cause=16, channel=ch)
    if bridge_id:
        s.ev("ChannelLeftBridge", at + 0.01, bridge=bridge(bridge_id, kind, []), channel=ch)
    s.ev("StasisEnd", at + 0.02, channel=ch)
    s.ev("ChannelDestroyed", at + 0.03, cause=16, cause_txt="Normal Clearing",
         channel=_with_state(ch, "Up"))


def answered_call(app: str, number: str, t0: datetime, operator: str = "ct7"
                  ) -> tuple[str, list[dict[str, Any]]]:
    s = Script(app, t0)
    caller, hold = ringing(s, number)
    op, mix = operator_picks_up(s, caller, hold, operator, 6.7)
    hangs_up(s, _with_state(caller, "Up"), 20.0, mix)
    hangs_up(s, op, 20.2)
    return caller["id"], s.events


def abandoned_call(app: str, number: str, t0: datetime) -> tuple[str, list[dict[str, Any]]]:
    s = Script(app, t0)
    caller, hold = ringing(s, number)
    hangs_up(s, _with_state(caller, "Up"), 9.0, hold, "holding")
    return caller["id"], s.events


def transferred_call(app: str, number: str, t0: datetime, operator: str = "ct8"
                     ) -> tuple[str, list[dict[str, Any]]]:
    """Answered, then the call-taker blind-transfers the caller to extension 103 (ambulance)."""
    s = Script(app, t0)
    caller, hold = ringing(s, number)
    op, mix = operator_picks_up(s, caller, hold, operator, 4.2)
    s.ev("BridgeBlindTransfer", 15.0, channel=op, transferee=_with_state(caller, "Up"),
         exten="103", context="agencies", result="Success", is_external=False,
         bridge=bridge(mix, "mixing", [caller["id"], op["id"]]))
    hangs_up(s, op, 15.1, mix)
    s.ev("StasisEnd", 15.2, channel=_with_state(caller, "Up"))
    s.ev("ChannelDestroyed", 70.0, cause=16, cause_txt="Normal Clearing",
         channel=_with_state(caller, "Up"))
    return caller["id"], s.events


class AriStandIn:
    """The stand-in server, on its own thread and event loop."""

    def __init__(self, *, user: str = "geodispatch", password: str = "secret",
                 app: str = "geodispatch") -> None:
        self.user, self.password, self.app = user, password, app
        self.port = free_port()
        self.channels: dict[str, dict[str, Any]] = {}
        self.bridges: dict[str, dict[str, Any]] = {}
        self.clients: set[ServerConnection] = set()
        self.rejected: list[str] = []
        self.rest_calls: list[str] = []
        self.subscriptions = 0
        #: While set, subscriptions are refused with 503 (Asterisk down or unreachable).
        self.refusing = False
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="ari-standin")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> AriStandIn:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        self._server = await serve(self._ws, "127.0.0.1", self.port,
                                   process_request=self._http)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # --- HTTP: auth, REST ----------------------------------------------------------------------
    def _authorised(self, headers: Headers) -> bool:
        want = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return headers.get("Authorization", "") == f"Basic {want}"

    def _json(self, conn: ServerConnection, status: HTTPStatus, body: Any) -> Response:
        resp = conn.respond(status, json.dumps(body))
        del resp.headers["Content-Type"]
        resp.headers["Content-Type"] = "application/json"
        return resp

    def _http(self, conn: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if not self._authorised(request.headers):
            self.rejected.append(parts.path)
            return self._json(conn, HTTPStatus.UNAUTHORIZED, {"message": "Authentication required"})
        if self.refusing:
            return self._json(conn, HTTPStatus.SERVICE_UNAVAILABLE, {"message": "restarting"})
        if parts.path == "/ari/events":
            apps = parse_qs(parts.query).get("app", [])
            if not apps or self.app not in apps[0].split(","):
                return self._json(conn, HTTPStatus.BAD_REQUEST, {"message": "unknown app"})
            return None  # the WebSocket upgrade goes on
        self.rest_calls.append(parts.path)
        if parts.path == "/ari/channels":
            return self._json(conn, HTTPStatus.OK, list(self.channels.values()))
        if parts.path == "/ari/bridges":
            return self._json(conn, HTTPStatus.OK, list(self.bridges.values()))
        return self._json(conn, HTTPStatus.NOT_FOUND, {"message": "Resource not found"})

    async def _ws(self, conn: ServerConnection) -> None:
        self.clients.add(conn)
        self.subscriptions += 1
        try:
            await conn.wait_closed()
        finally:
            self.clients.discard(conn)

    # --- replaying -----------------------------------------------------------------------------
    def _track(self, ev: dict[str, Any]) -> None:
        """Keep the REST view in step with the events (what Asterisk itself would list)."""
        kind = ev["type"]
        ch = ev.get("channel")
        if kind in ("StasisStart", "ChannelCreated", "ChannelStateChange") and ch:
            self.channels[ch["id"]] = ch
        elif kind == "ChannelDestroyed" and ch:
            self.channels.pop(ch["id"], None)
        elif kind in ("ChannelEnteredBridge", "ChannelLeftBridge"):
            br = ev["bridge"]
            if br["channels"]:
                self.bridges[br["id"]] = br
            else:
                self.bridges.pop(br["id"], None)

    def send(self, events: list[dict[str, Any]], *, broadcast: bool = True) -> None:
        """Emit ``events`` in order to every subscriber (``broadcast=False``: only change the
        state, as if they happened while nobody was connected)."""
        async def go() -> None:
            for ev in events:
                self._track(ev)
                if broadcast:
                    for c in list(self.clients):
                        await c.send(json.dumps(ev))
        asyncio.run_coroutine_threadsafe(go(), self._loop).result(10)

    def send_raw(self, text: str) -> None:
        async def go() -> None:
            for c in list(self.clients):
                await c.send(text)
        asyncio.run_coroutine_threadsafe(go(), self._loop).result(10)

    def drop_clients(self) -> None:
        """Close every subscriber's WebSocket (Asterisk restarting, a network cut)."""
        async def go() -> None:
            for c in list(self.clients):
                await c.close(1001, "going away")
        asyncio.run_coroutine_threadsafe(go(), self._loop).result(10)


def events_of(*scripts: tuple[str, list[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    for _cid, evs in scripts:
        yield from evs
