"""Asterisk ARI adapter: a call's life read from Asterisk's REST Interface.

Asterisk hands each emergency call to a Stasis application (dialplan ``Stasis(geodispatch)``);
the adapter subscribes to the application's events over ARI's WebSocket
(``/ari/events?app=...``) and turns them into the calls service's steps:

=============================================  =============================================
ARI event                                      call
=============================================  =============================================
``StasisStart`` (a caller's channel)           rings (at the channel's ``creationtime``)
``ChannelEnteredBridge`` (a mixing bridge now  answered, by the other channel's endpoint
holding the caller and another channel)        (``PJSIP/ct7-0000001a`` -> ``ct7``)
``Dial`` with ``dialstatus`` ``ANSWER``        answered, by the dialled peer's endpoint
``ChannelHangupRequest``/``ChannelDestroyed``  hung up; while still ringing: abandoned
``BridgeBlindTransfer``/``BridgeAttended...``  transferred (``exten@context`` / the target)
=============================================  =============================================

The PBX answering the caller's line itself (``ChannelStateChange`` to ``Up``, to play a message
or hold music in a holding bridge) is not a call-taker answering: the call keeps ringing in the
centre's queue until a person is bridged to it. Channels that the application dials out to
call-takers enter Stasis with the argument ``dialed`` (or ``operator``) and are never calls.

After every (re)connection the adapter asks ARI's REST interface for the channels and bridges
that exist now (``GET /ari/channels``, ``GET /ari/bridges``): a call that started ringing while
the adapter was away is recorded, one that was answered meanwhile is answered, and an ARI call
the centre still has as ringing or answered whose channel is gone is hung up then. The
:class:`Translator` is pure (events in, :class:`Signal` out) and tested on its own; :func:`apply`
is the one place signals become service calls.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import websockets
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from geodispatch.calls import service
from geodispatch.calls.models import Call
from geodispatch.errors import Conflict
from geodispatch.settings import Settings

log = logging.getLogger(__name__)

SOURCE = "ari"
#: Stasis arguments that mark a channel the application dialled out to a call-taker.
OPERATOR_ARGS = frozenset({"dialed", "operator"})
#: A few Q.850 causes by name (ChannelHangupRequest carries only the number).
Q850 = {16: "Normal Clearing", 17: "User busy", 18: "No user responding", 19: "No answer",
        21: "Call rejected", 31: "Normal, unspecified", 34: "Circuit/channel congestion",
        38: "Network out of order", 127: "Interworking, unspecified"}


class AriEventError(ValueError):
    """An ARI message that is not the shape ARI documents (logged and counted, never fatal)."""


@dataclass(frozen=True)
class Signal:
    """One step of a call, as the calls service takes it."""

    kind: Literal["ring", "answer", "hangup", "transfer"]
    channel: str
    caller: str | None
    line: str | None
    at: datetime | None
    operator: str | None = None
    to: str | None = None
    reason: str = ""


def parse_time(raw: Any) -> datetime | None:
    """ARI's times (``2026-12-05T10:00:00.123+0000``) as aware datetimes; None when absent."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise AriEventError(f"a time must be a string, not {type(raw).__name__}")
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise AriEventError(f"not an ARI time: {raw[:40]!r}") from None
    if t.tzinfo is None:
        raise AriEventError(f"an ARI time without a zone: {raw[:40]!r}")
    return t.astimezone(UTC)


def endpoint_of(channel_name: str) -> str:
    """``PJSIP/ct7-0000001a`` -> ``ct7``; ``Local/ct7@agents-00000001;1`` -> ``ct7``."""
    tail = channel_name.split("/", 1)[-1]
    head = tail.rsplit("-", 1)[0] if "-" in tail else tail
    return head.split("@", 1)[0][:64] or channel_name[:64]


def _obj(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _channel(ev: Mapping[str, Any], key: str = "channel", required: bool = True
             ) -> dict[str, Any] | None:
    ch = ev.get(key)
    if ch is None and not required:
        return None
    if not isinstance(ch, dict) or not isinstance(ch.get("id"), str) or not ch["id"]:
        raise AriEventError(f"{ev.get('type')}: '{key}' is not a channel with an id")
    return ch


@dataclass
class _Caller:
    number: str | None
    line: str | None
    answered: bool = False
    ended: bool = False


class Translator:
    """ARI events -> :class:`Signal` s, remembering which channels are callers.

    Pure: no I/O, no clock (every time comes from the event or the channel).
    """

    def __init__(self, app: str) -> None:
        self.app = app
        self.callers: dict[str, _Caller] = {}
        self.operators: set[str] = set()
        self.names: dict[str, str] = {}

    def feed(self, ev: Mapping[str, Any]) -> list[Signal]:
        kind = ev.get("type")
        if not isinstance(kind, str):
            raise AriEventError("an ARI message without a 'type'")
        at = parse_time(ev.get("timestamp"))
        handler = getattr(self, "_on_" + kind, None)
        if handler is None:
            return []  # playbacks, DTMF, variables...: nothing a call record needs
        out: list[Signal] = handler(ev, at)
        return out

    # --- helpers -------------------------------------------------------------------------------
    def _remember(self, ch: Mapping[str, Any]) -> None:
        name = ch.get("name")
        if isinstance(name, str):
            self.names[ch["id"]] = name

    def _signal(self, kind: Literal["ring", "answer", "hangup", "transfer"], cid: str,
                at: datetime | None, **kw: Any) -> Signal:
        c = self.callers[cid]
        return Signal(kind=kind, channel=cid, caller=c.number, line=c.line, at=at, **kw)

    def _answer(self, cid: str, operator_channel: str | None, at: datetime | None
                ) -> list[Signal]:
        c = self.callers.get(cid)
        if c is None or c.answered or c.ended:
            return []
        c.answered = True
        name = self.names.get(operator_channel or "", "")
        return [self._signal("answer", cid, at, operator=endpoint_of(name) if name else "ari")]

    # --- events --------------------------------------------------------------------------------
    def _on_StasisStart(self, ev: Mapping[str, Any], at: datetime | None) -> list[Signal]:
        ch = _channel(ev)
        assert ch is not None
        self._remember(ch)
        args = ev.get("args") or []
        if not isinstance(args, list):
            raise AriEventError("StasisStart: 'args' is not a list")
        if (args and str(args[0]).lower() in OPERATOR_ARGS) or ch["id"] in self.operators:
            self.operators.add(ch["id"])
            return []
        if ch["id"] in self.callers:
            return []  # re-entered the application (after a dialplan detour): the same call
        caller = _obj(ch.get("caller"))
        number = caller.get("number") or None
        dialplan = _obj(ch.get("dialplan"))
        line = dialplan.get("exten") or None
        self.callers[ch["id"]] = _Caller(number=str(number) if number else None,
                                         line=str(line) if line else None)
        return [self._signal("ring", ch["id"], parse_time(ch.get("creationtime")) or at)]

    def _on_ChannelStateChange(self, ev: Mapping[str, Any], at: datetime | None
                               ) -> list[Signal]:
        ch = _channel(ev)
        assert ch is not None
        self._remember(ch)
        return []  # the PBX answering the line is not a call-taker answering (see above)

    def _on_ChannelEnteredBridge(self, ev: Mapping[str, Any], at: datetime | None
                                 ) -> list[Signal]:
        bridge = ev.get("bridge")
        if not isinstance(bridge, dict):
            raise AriEventError("ChannelEnteredBridge: no 'bridge'")
        ch = _channel(ev, required=False)
        if ch is not None:
            self._remember(ch)
        if bridge.get("bridge_type") == "holding":
            return []  # the queue's waiting room
        members = bridge.get("channels") or []
        if not isinstance(members, list):
            raise AriEventError("ChannelEnteredBridge: bridge 'channels' is not a list")
        callers = [m for m in members if m in self.callers]
        others = [m for m in members if m not in self.callers]
        if not callers or not others:
            return []
        op = ch["id"] if ch is not None and ch["id"] in others else others[0]
        out: list[Signal] = []
        for cid in callers:
            out += self._answer(cid, op, at)
        return out

    def _on_Dial(self, ev: Mapping[str, Any], at: datetime | None) -> list[Signal]:
        peer = _channel(ev, "peer")
        assert peer is not None
        self._remember(peer)
        self.operators.add(peer["id"])
        caller = _channel(ev, "caller", required=False)
        if caller is None or ev.get("dialstatus") != "ANSWER":
            return []
        return self._answer(caller["id"], peer["id"], at)

    def _hangup(self, ev: Mapping[str, Any], at: datetime | None, reason: str) -> list[Signal]:
        ch = _channel(ev)
        assert ch is not None
        c = self.callers.get(ch["id"])
        if c is None or c.ended:
            return []
        c.ended = True
        return [self._signal("hangup", ch["id"], at, reason=reason[:200])]

    def _on_ChannelHangupRequest(self, ev: Mapping[str, Any], at: datetime | None
                                 ) -> list[Signal]:
        cause = ev.get("cause")
        text_ = Q850.get(cause, f"Q.850 cause {cause}") if isinstance(cause, int) else "hangup"
        return self._hangup(ev, at, text_)

    def _on_ChannelDestroyed(self, ev: Mapping[str, Any], at: datetime | None) -> list[Signal]:
        return self._hangup(ev, at, str(ev.get("cause_txt") or "channel destroyed"))

    def _transferred(self, candidates: Iterable[Any], to: str, at: datetime | None
                     ) -> list[Signal]:
        out = []
        for cid in candidates:
            c = self.callers.get(cid) if isinstance(cid, str) else None
            if c is not None and not c.ended:
                c.ended = True
                out.append(self._signal("transfer", cid, at, to=to[:128]))
        return out

    def _on_BridgeBlindTransfer(self, ev: Mapping[str, Any], at: datetime | None
                                ) -> list[Signal]:
        if ev.get("result") != "Success":
            return []
        to = f"{ev.get('exten') or '?'}@{ev.get('context') or '?'}"
        transferee = _channel(ev, "transferee", required=False)
        if transferee is not None:
            return self._transferred([transferee["id"]], to, at)
        bridge = _obj(ev.get("bridge"))
        return self._transferred(bridge.get("channels") or [], to, at)

    def _on_BridgeAttendedTransfer(self, ev: Mapping[str, Any], at: datetime | None
                                   ) -> list[Signal]:
        if ev.get("result") != "Success":
            return []
        target = _channel(ev, "transfer_target", required=False)
        to = (endpoint_of(str(target.get("name") or target["id"])) if target is not None
              else str(ev.get("destination_application") or "attended transfer"))
        transferee = _channel(ev, "transferee", required=False)
        if transferee is not None:
            return self._transferred([transferee["id"]], to, at)
        bridge = ev.get("transferer_first_leg_bridge")
        members = (bridge.get("channels") or []) if isinstance(bridge, dict) else []
        return self._transferred(members, to, at)


def apply(*, session: Session, signal: Signal, settings: Settings) -> Call:
    """One signal -> the calls service, in the caller's transaction. Every signal rings first
    (idempotent), so a call whose ring was lost is still recorded."""
    call, _created = service.ring(session=session, source=SOURCE, external_id=signal.channel,
                                  caller=signal.caller, line=signal.line, at=signal.at,
                                  actor=SOURCE, settings=settings)
    if signal.kind == "ring":
        return call
    call = service.get_call(session=session, call_id=call.id, lock=True)
    try:
        if signal.kind == "answer":
            service.answer(session=session, call=call, operator=signal.operator or SOURCE,
                           at=signal.at, actor=SOURCE)
        elif signal.kind == "hangup":
            service.hang_up(session=session, call=call, at=signal.at, actor=SOURCE,
                            reason=signal.reason)
        elif signal.kind == "transfer":
            service.transfer(session=session, call=call, to=signal.to or "?", at=signal.at,
                             actor=SOURCE)
    except Conflict as exc:  # e.g. answered on the console first: the record keeps that
        log.info("ARI %s for call %s not applied: %s", signal.kind, call.id, exc)
    return call


def reconcile_signals(translator: Translator, channels: list[Any], bridges: list[Any],
                      at: datetime) -> list[Signal]:
    """What the channels and bridges ARI has now say, as signals (after a (re)connection)."""
    out: list[Signal] = []
    for ch in channels:
        if not isinstance(ch, dict) or not isinstance(ch.get("id"), str):
            raise AriEventError("GET /ari/channels: an entry is not a channel")
        dialplan = _obj(ch.get("dialplan"))
        if str(dialplan.get("app_name") or "").lower() != "stasis":
            continue
        app, _, rest = str(dialplan.get("app_data") or "").partition(",")
        if app != translator.app:
            continue
        args = [a for a in rest.split(",") if a] if rest else []
        out += translator.feed({"type": "StasisStart", "channel": ch, "args": args})
    for br in bridges:
        if not isinstance(br, dict):
            raise AriEventError("GET /ari/bridges: an entry is not a bridge")
        out += translator.feed({"type": "ChannelEnteredBridge", "bridge": br,
                                "timestamp": at.isoformat()})
    return out


class AriAdapter:
    """Keeps one WebSocket to ARI open (reconnecting with back-off) and records what it says."""

    def __init__(self, *, settings: Settings, factory: sessionmaker[Session]) -> None:
        if not settings.calls_ari_url:
            raise ValueError("GEODISPATCH_CALLS_ARI_URL is not set")
        self.settings = settings
        self.factory = factory
        self.base = settings.calls_ari_url.rstrip("/")
        self.app = settings.calls_ari_app
        token = f"{settings.calls_ari_user}:{settings.calls_ari_password}".encode()
        self.headers = {"Authorization": "Basic " + base64.b64encode(token).decode()}
        self.translator = Translator(self.app)
        self.connected = asyncio.Event()
        self.connections = 0
        self.events = 0
        self.bad_events = 0
        self.last_error: str | None = None

    @property
    def ws_url(self) -> str:
        parts = urlsplit(self.base)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        return urlunsplit((scheme, parts.netloc, parts.path + "/ari/events",
                           urlencode({"app": self.app, "subscribeAll": "false"}), ""))

    async def run(self, stop: asyncio.Event) -> None:
        delay = 0.2
        while not stop.is_set():
            try:
                await self._once(stop)
                delay = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: log, wait, reconnect
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("ARI connection to %s failed: %s; retrying in %.1f s", self.base,
                            self.last_error, delay)
            self.connected.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            delay = min(delay * 2, 10.0)

    async def _once(self, stop: asyncio.Event) -> None:
        async with websockets.connect(self.ws_url, additional_headers=self.headers,
                                      open_timeout=10, ping_interval=20) as ws:
            self.connections += 1
            # Subscribed first, then read what exists: nothing falls between the two.
            await self._reconcile()
            self.connected.set()
            self.last_error = None
            log.info("ARI connected to %s (application %s)", self.base, self.app)
            async for raw in ws:
                if stop.is_set():
                    return
                await self._handle(raw)

    async def _handle(self, raw: str | bytes) -> None:
        self.events += 1
        try:
            ev = json.loads(raw)
            if not isinstance(ev, dict):
                raise AriEventError("an ARI message that is not a JSON object")
            signals = self.translator.feed(ev)
        except (ValueError, AriEventError) as exc:
            self.bad_events += 1
            log.warning("ARI message refused: %s: %.200r", exc, raw)
            return
        if signals:
            await asyncio.to_thread(self._apply, signals)

    def _apply(self, signals: list[Signal]) -> None:
        for sig in signals:
            try:
                with self.factory() as session, session.begin():
                    apply(session=session, signal=sig, settings=self.settings)
            except Exception:  # noqa: BLE001 - one bad call must not stop the others
                log.exception("ARI %s of channel %s not recorded", sig.kind, sig.channel)

    async def _reconcile(self) -> None:
        async with httpx.AsyncClient(base_url=self.base, headers=self.headers,
                                     timeout=10) as http:
            channels = (await http.get("/ari/channels")).raise_for_status().json()
            bridges = (await http.get("/ari/bridges")).raise_for_status().json()
        if not isinstance(channels, list) or not isinstance(bridges, list):
            raise AriEventError("GET /ari/channels and /ari/bridges must answer JSON lists")
        now = datetime.now(UTC)
        signals = reconcile_signals(self.translator, channels, bridges, now)
        present = {c["id"] for c in channels}
        await asyncio.to_thread(self._apply, signals)
        await asyncio.to_thread(self._end_vanished, present, now)

    def _end_vanished(self, present: set[str], now: datetime) -> None:
        """ARI calls still open here whose channel Asterisk no longer has ended while we were
        away; they are hung up now (a ringing one becomes a callback)."""
        with self.factory() as session, session.begin():
            gone = session.execute(select(Call).where(
                Call.source == SOURCE, Call.state.in_(("ringing", "answered")),
                Call.external_id.not_in(present) if present else Call.id.is_not(None))
                .with_for_update()).scalars().all()
            for call in gone:
                service.hang_up(session=session, call=call, at=now, actor=SOURCE,
                                reason="channel gone while the ARI adapter was disconnected")
                c = self.translator.callers.get(call.external_id)
                if c is not None:
                    c.ended = True


__all__ = ["AriAdapter", "AriEventError", "Signal", "Translator", "apply", "endpoint_of",
           "parse_time", "reconcile_signals"]
