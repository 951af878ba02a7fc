"""The live feed behind ``/api/live``: coalescing fan-out of unit and incident changes to browsers.

Design (why a slow browser never slows ingest):

* The fleet calls :meth:`LiveHub.on_fleet` from whatever thread applied a position or status. The
  hub only stores the newest state per unit in a dict under a lock: O(1), never blocks on I/O.
* One asyncio task (:meth:`LiveHub.run`) wakes every ``tick_s``, swaps that dict out, serialises
  each changed unit once, and merges the JSON fragments into every interested client's own
  ``pending`` dict (keyed by unit id, so a newer state *replaces* an unsent older one).
* A unit whose status, call sign etc. did not change is sent as a compact ``{id, lat, lng,
  fix_time, speed_mps, heading}``; clients merge updates into what they have by ``id``.
* Each client has its own sender task that sends whatever is pending as one message, at most
  ``max_rate_hz`` times a second. A client that reads slowly simply sees fewer, fresher batches;
  its memory is bounded by the number of units, never by time.

Incident changes come from the append-only ``incident_events`` table, polled by id (one query per
``live_incident_poll_s`` for the whole process, not per client), and are coalesced per incident the
same way. Caller phone numbers are never part of the incidents in the feed; calls (with the
caller's number and location, :mod:`geodispatch.calls.feed`) go only to clients whose role sees
the call list (``sees_calls``), as ``{"type": "calls", "calls": [...]}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from geodispatch.eventfeed import follow_events, last_event_id

log = logging.getLogger(__name__)



class FleetSnapshot(Protocol):
    """The live fleet as the feed reads it (:class:`geodispatch.tracking.fleet.LiveFleet`)."""

    def snapshot(self) -> Sequence[object]: ...

SEND_TIMEOUT_S = 30.0

# Fields that change with every fix; an update where nothing else changed carries only these.
MOVING_FIELDS = ("lat", "lng", "fix_time", "speed_mps", "heading")

OPEN_INCIDENT_STATUSES = ("registered", "queued", "assigned", "en_route", "on_scene", "cleared")


class Sender(Protocol):
    async def send_text(self, data: str) -> None: ...


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return round(value.timestamp(), 3)
    if isinstance(value, int | float):
        return float(value)
    return None


def unit_to_dict(state: Any) -> dict[str, Any]:
    """A ``UnitState`` (tracking.fleet) as a small JSON-able dict; lat/lng, epoch-second times."""
    pos = getattr(state, "position", None)
    try:
        stale = bool(getattr(state, "stale", False))
    except Exception:  # noqa: BLE001 - a property needing settings must not break the feed
        stale = False
    return {
        "id": int(state.unit_id),
        "call_sign": getattr(state, "call_sign", None),
        "kind": getattr(state, "kind", None),
        "status": getattr(state, "status", None),
        "region": getattr(state, "region", None),
        "capabilities": list(getattr(state, "capabilities", None) or ()),
        "lat": None if pos is None else round(float(pos.lat), 7),
        "lng": None if pos is None else round(float(pos.lng), 7),
        "fix_time": _epoch(getattr(state, "fix_time", None)),
        "speed_mps": getattr(state, "speed_mps", None),
        "heading": getattr(state, "heading", None),
        "stale": stale,
        "online": bool(getattr(state, "online", True)),
    }


@dataclass(eq=False)
class LiveClient:
    """One connected browser: what it may see and what is waiting to be sent to it."""

    ws: Sender
    region: str | None
    max_rate_hz: float
    pending_units: dict[int, str] = field(default_factory=dict)
    pending_incidents: dict[int, str] = field(default_factory=dict)
    sees_calls: bool = False
    pending_calls: dict[int, str] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    sent_batches: int = 0
    closed: bool = False

    async def _send(self, text_: str) -> None:
        # A browser that stopped reading entirely is dropped rather than kept forever.
        await asyncio.wait_for(self.ws.send_text(text_), SEND_TIMEOUT_S)

    def sees(self, region: str | None) -> bool:
        return self.region is None or region == self.region

    async def run(self) -> None:
        """Send pending changes, coalesced, at most ``max_rate_hz`` batches a second."""
        interval = 1.0 / self.max_rate_hz if self.max_rate_hz > 0 else 0.0
        while not self.closed:
            await self.wake.wait()
            self.wake.clear()
            units, self.pending_units = self.pending_units, {}
            incidents, self.pending_incidents = self.pending_incidents, {}
            calls, self.pending_calls = self.pending_calls, {}
            started = time.monotonic()
            if calls:
                await self._send('{"type":"calls","calls":[' + ",".join(calls.values()) + "]}")
            if incidents:
                await self._send(
                    '{"type":"incidents","incidents":[' + ",".join(incidents.values()) + "]}")
            if units:
                await self._send(
                    f'{{"type":"units","sent_at":{time.time():.3f},"units":['
                    + ",".join(units.values()) + "]}")
            self.sent_batches += 1
            rest = interval - (time.monotonic() - started)
            if rest > 0:
                await asyncio.sleep(rest)


class LiveHub:
    """Collects changes from any thread and fans them out to the connected clients."""

    def __init__(self, *, max_rate_hz: float = 4.0, tick_s: float = 0.05) -> None:
        self.max_rate_hz = max_rate_hz
        self.tick_s = tick_s
        self.clients: set[LiveClient] = set()
        self._lock = threading.Lock()
        self._incoming: dict[int, Any] = {}
        # id -> (the slow-changing field values, the moving field values) as last sent
        self._last_units: dict[int, tuple[tuple[Any, ...], tuple[Any, ...]]] = {}
        self._wake_loop: asyncio.Event | None = None
        self.updates_in = 0
        self.fragments_out = 0

    # --- producers ----------------------------------------------------------------------------
    def on_fleet(self, *states: Any) -> None:
        """Fleet subscriber: accepts one ``UnitState``, several, or an iterable of them."""
        flat: list[Any] = []
        for s in states:
            if hasattr(s, "unit_id"):
                flat.append(s)
            elif isinstance(s, Iterable):
                flat.extend(x for x in s if hasattr(x, "unit_id"))
        if not flat:
            return
        with self._lock:
            for s in flat:
                self._incoming[int(s.unit_id)] = s
            self.updates_in += len(flat)

    def publish_incidents(self, rows: Iterable[dict[str, Any]]) -> None:
        """Queue incident changes (called in the event loop by the poller)."""
        for row in rows:
            fragment = json.dumps(row, default=str, separators=(",", ":"))
            for c in self.clients:
                if c.sees(row.get("region")):
                    c.pending_incidents[int(row["id"])] = fragment
                    c.wake.set()

    def wants_calls(self) -> bool:
        """Whether any client watches calls (the calls' poller idles otherwise)."""
        return any(c.sees_calls for c in self.clients)

    def publish_calls(self, rows: Iterable[dict[str, Any]]) -> None:
        """Queue call changes for the clients that see calls (in the event loop)."""
        watchers = [c for c in self.clients if c.sees_calls]
        for row in rows:
            fragment = json.dumps(row, default=str, separators=(",", ":"))
            for c in watchers:
                c.pending_calls[int(row["id"])] = fragment
                c.wake.set()

    # --- clients ------------------------------------------------------------------------------
    def add(self, ws: Sender, region: str | None, *, sees_calls: bool = False) -> LiveClient:
        client = LiveClient(ws=ws, region=region, max_rate_hz=self.max_rate_hz,
                            sees_calls=sees_calls)
        self.clients.add(client)
        return client

    def remove(self, client: LiveClient) -> None:
        client.closed = True
        client.wake.set()
        self.clients.discard(client)

    def unit_snapshot(self, fleet: FleetSnapshot | None, region: str | None
                      ) -> list[dict[str, Any]]:
        if fleet is None:
            return []
        out = [unit_to_dict(s) for s in fleet.snapshot()]
        return [u for u in out if region is None or u["region"] == region]

    # --- fan-out ------------------------------------------------------------------------------
    def fan_out_once(self) -> int:
        """Move collected unit changes into the clients' pending dicts; return units changed."""
        with self._lock:
            incoming, self._incoming = self._incoming, {}
        if not incoming:
            return 0
        by_region: dict[str | None, dict[int, str]] = {}
        n = 0
        for uid, state in incoming.items():
            d = unit_to_dict(state)
            moving = tuple(d[k] for k in MOVING_FIELDS)
            fixed = tuple(v if not isinstance(v, list) else tuple(v)
                          for k, v in d.items() if k not in MOVING_FIELDS)
            prev = self._last_units.get(uid)
            if prev is not None and prev[0] == fixed:
                if prev[1] == moving:
                    continue  # a periodic refresh that changed nothing
                # Only the position moved: a compact update (the client merges it by id).
                fragment = json.dumps({"id": uid, **dict(zip(MOVING_FIELDS, moving, strict=True))},
                                      separators=(",", ":"))
            else:
                fragment = json.dumps(d, separators=(",", ":"))
            self._last_units[uid] = (fixed, moving)
            by_region.setdefault(d["region"], {})[uid] = fragment
            n += 1
        if not n:
            return 0
        everything: dict[int, str] = {}
        for fragments in by_region.values():
            everything.update(fragments)
        for c in self.clients:
            # dict.update in C: cheap even for thousands of units times dozens of clients.
            news = everything if c.region is None else by_region.get(c.region)
            if news:
                c.pending_units.update(news)
                c.wake.set()
        self.fragments_out += n
        return n

    async def run(self) -> None:
        while True:
            try:
                self.fan_out_once()
            except Exception:  # noqa: BLE001 - the feed must survive one bad state
                log.exception("live fan-out failed")
            await asyncio.sleep(self.tick_s)


# --- incidents from the event log -------------------------------------------------------------
_INCIDENT_COLUMNS = """
    i.id, i.reference, i.region, i.status, i.priority, i.category, i.address, i.description,
    i.address_resolved, i.location_precision,
    ST_Y(i.location) AS lat, ST_X(i.location) AS lng, i.received_at, i.sector_id, i.district_id
"""


def _incident_row(m: Any) -> dict[str, Any]:
    d = {
        "id": m["id"], "reference": m["reference"], "region": m["region"], "status": m["status"],
        "priority": m["priority"], "category": m["category"], "address": m["address"],
        "address_resolved": m["address_resolved"], "location_precision": m["location_precision"],
        "description": m["description"], "lat": m["lat"], "lng": m["lng"],
        "received_at": _epoch(m["received_at"]), "sector_id": m["sector_id"],
        "district_id": m["district_id"],
    }
    if "event_id" in m and m["event_id"] is not None:
        d["last_event"] = {"id": m["event_id"], "kind": m["kind"], "actor": m["actor"],
                           "at": _epoch(m["at"])}
    return d


def open_incidents(
    *, session: Session, region: str | None, limit: int = 2000
) -> list[dict[str, Any]]:
    """Incidents not yet closed (newest first), without caller details, for the initial snapshot."""
    sql = f"SELECT {_INCIDENT_COLUMNS} FROM incidents i WHERE i.status = ANY(:open)"
    params: dict[str, Any] = {"open": list(OPEN_INCIDENT_STATUSES), "limit": limit}
    if region is not None:
        sql += " AND i.region = :region"
        params["region"] = region
    sql += " ORDER BY i.priority, i.received_at DESC LIMIT :limit"
    return [_incident_row(m) for m in session.execute(text(sql), params).mappings()]


def incident_changes_since(
    *, session: Session, after_id: int, exclude: Collection[int] = (), limit: int = 5000
) -> tuple[list[dict[str, Any]], list[int]]:
    """Incidents touched by events with id > ``after_id`` and not in ``exclude``.

    Returns one row per incident (its current state and newest event) and the ids of the events
    read, so the caller can look back over a window without reporting an event twice.
    """
    events = session.execute(text("""
        SELECT id, incident_id FROM incident_events
        WHERE id > :after AND NOT (id = ANY(:exclude)) ORDER BY id LIMIT :limit
    """), {"after": after_id, "exclude": list(exclude), "limit": limit}).all()
    if not events:
        return [], []
    rows = session.execute(text(f"""
        SELECT DISTINCT ON (e.incident_id)
               e.id AS event_id, e.kind, e.actor, e.at, {_INCIDENT_COLUMNS}
        FROM incident_events e JOIN incidents i ON i.id = e.incident_id
        WHERE e.id = ANY(:ids)
        ORDER BY e.incident_id, e.id DESC
    """), {"ids": [e.id for e in events]}).mappings().all()
    return [_incident_row(m) for m in rows], [int(e.id) for e in events]


async def poll_incidents(hub: LiveHub, factory: sessionmaker[Session], interval_s: float) -> None:
    """Forever: publish incidents changed since the last poll (one query for all clients; the
    loop and its look-back are :func:`geodispatch.eventfeed.follow_events`)."""

    def _head() -> int:
        with factory() as s:
            return last_event_id(session=s)

    def _poll(after: int, seen: set[int]) -> tuple[list[dict[str, Any]], list[int]]:
        with factory() as s:
            return incident_changes_since(session=s, after_id=after, exclude=seen)

    await follow_events(head=_head, changes=_poll, publish=hub.publish_incidents,
                        watched=lambda: bool(hub.clients), interval_s=interval_s,
                        what="incident")


async def cancel(task: asyncio.Task[Any] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
