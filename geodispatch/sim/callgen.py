"""``geodispatch callgen``: replay real calls through the HTTP API; ``--auto`` also dispatches.

The call generator logs in as a call-taker and registers each planned call
(:func:`geodispatch.sim.calls.replay`) with ``POST /api/incidents``, with an idempotency key so a
retried request never makes a duplicate. With ``--auto`` a dispatcher bot logs in as a
dispatcher, asks for a recommendation for every new incident (``POST
/api/incidents/{id}/recommend``), accepts the top-ranked crew (``POST
/api/incidents/{id}/assignments``) and, once the crews have cleared, closes the incident with an
APCO disposition code. Without ``--auto`` the human on the map does the dispatching.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from geodispatch.settings import Settings, get_settings
from geodispatch.sim.calls import PlannedCall

log = logging.getLogger(__name__)

# APCO ANS 1.111.2 common disposition codes a patrol call usually closes with.
CLOSING_DISPOSITIONS = ("01", "02", "03", "04", "14")
UNASSIGNED = ("registered", "queued")


class ApiError(RuntimeError):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


class ApiClient:
    """A logged-in console user talking to the geodispatch HTTP API."""

    def __init__(self, base_url: str, username: str, password: str, *, timeout: float = 30.0
                 ) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=timeout)
        self.username = username
        self.password = password
        self.token: str | None = None

    def close(self) -> None:
        self.http.close()

    def login(self) -> None:
        r = self.http.post("/api/auth/token",
                           data={"username": self.username, "password": self.password})
        if r.status_code != 200:
            raise ApiError(r.status_code, r.text[:200])
        self.token = r.json()["access_token"]

    def request(self, method: str, path: str, **kw: Any) -> Any:
        for attempt in range(3):
            if self.token is None:
                self.login()
            try:
                r = self.http.request(method, path,
                                      headers={"Authorization": f"Bearer {self.token}"}, **kw)
            except httpx.TransportError as exc:
                if attempt == 2:
                    raise ApiError(0, str(exc)) from None
                time.sleep(0.5 * (attempt + 1))
                continue
            if r.status_code == 401:
                self.token = None
                continue
            if r.status_code >= 500 and attempt < 2:
                time.sleep(0.5 * (attempt + 1))
                continue
            if r.status_code >= 400:
                raise ApiError(r.status_code, r.text[:300])
            return r.json() if r.content else None
        raise ApiError(401, "could not authenticate")

    # --- endpoints -----------------------------------------------------------------------------
    def categories(self) -> list[str] | None:
        try:
            data = self.request("GET", "/api/incidents/categories")
        except ApiError:
            return None
        items = data if isinstance(data, list) else (data or {}).get("categories") or []
        out = [c if isinstance(c, str) else (c.get("code") or c.get("name")) for c in items]
        return [c for c in out if c] or None

    def register(self, call: PlannedCall, *, key: str, lang: str) -> dict[str, Any]:
        body = {
            "lat": call.location.lat, "lng": call.location.lng,
            "category": call.category, "priority": call.priority,
            "caller_phone": call.phone, "caller_lang": lang,
            "description": f"{call.source.call_type} (replayed SF call {call.source.number})",
            "idempotency_key": key,
        }
        out: dict[str, Any] = self.request("POST", "/api/incidents", json=body)
        return out

    def recommend(self, incident_id: int) -> dict[str, Any]:
        out: dict[str, Any] = self.request("POST", f"/api/incidents/{incident_id}/recommend",
                                           json={})
        return out

    def assign(self, incident_id: int, unit_id: int) -> dict[str, Any]:
        out: dict[str, Any] = self.request("POST", f"/api/incidents/{incident_id}/assignments",
                                           json={"unit_id": unit_id})
        return out

    def incidents(self, status: str) -> list[dict[str, Any]]:
        data = self.request("GET", "/api/incidents", params={"status": status, "limit": 200})
        items = data if isinstance(data, list) else (data or {}).get("items") or []
        return [i for i in items if isinstance(i, dict)]

    def close_incident(self, incident_id: int, disposition: str) -> None:
        self.request("POST", f"/api/incidents/{incident_id}/close",
                     json={"disposition": disposition})


def ranked_units(reco: dict[str, Any]) -> list[int]:
    """Unit ids of a recommendation, best first."""
    rows = reco.get("ranked") or reco.get("candidates") or []
    out: list[int] = []
    for r in rows:
        uid = r.get("unit_id") if isinstance(r, dict) else None
        if isinstance(uid, int):
            out.append(uid)
    return out


@dataclass
class CallgenStats:
    registered: int = 0
    register_errors: int = 0
    recommended: int = 0
    assigned: int = 0
    no_crew: int = 0
    closed: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"registered": self.registered, "register_errors": self.register_errors,
                "recommended": self.recommended, "assigned": self.assigned,
                "no_crew": self.no_crew, "closed": self.closed, "errors": self.errors[-10:]}


class DispatcherBot:
    """Accepts the top recommendation for each new incident; closes cleared incidents."""

    def __init__(self, api: ApiClient, stats: CallgenStats, *, delay_s: float = 2.0,
                 close_every_s: float = 5.0, rng: random.Random | None = None) -> None:
        self.api = api
        self.stats = stats
        self.delay_s = delay_s
        self.close_every_s = close_every_s
        self.rng = rng or random.Random()
        self.queue: deque[tuple[float, int, int]] = deque()  # (due, incident_id, attempts)
        self.lock = threading.Lock()
        self.known: set[int] = set()

    def add(self, incident_id: int) -> None:
        with self.lock:
            if incident_id in self.known:
                return
            self.known.add(incident_id)
            self.queue.append((time.monotonic() + self.delay_s, incident_id, 0))

    def _dispatch(self, incident_id: int, attempts: int) -> bool:
        """True when done with this incident (assigned, or given up)."""
        try:
            reco = self.api.recommend(incident_id)
        except ApiError as exc:
            if exc.status in (404, 409):
                return True  # closed, cancelled or assigned by someone else meanwhile
            self.stats.errors.append(f"recommend {incident_id}: {exc}")
            return attempts >= 5
        self.stats.recommended += 1
        for unit_id in ranked_units(reco)[:3]:
            try:
                self.api.assign(incident_id, unit_id)
            except ApiError as exc:
                if exc.status == 409:
                    continue  # the crew was taken a moment ago: the next one
                self.stats.errors.append(f"assign {incident_id}: {exc}")
                return attempts >= 5
            self.stats.assigned += 1
            log.info("bot: incident %d -> unit %d", incident_id, unit_id)
            return True
        self.stats.no_crew += 1
        return attempts >= 20

    def _close_cleared(self) -> None:
        try:
            cleared = self.api.incidents("cleared")
        except ApiError as exc:
            self.stats.errors.append(f"list cleared: {exc}")
            return
        for inc in cleared:
            try:
                self.api.close_incident(int(inc["id"]), self.rng.choice(CLOSING_DISPOSITIONS))
                self.stats.closed += 1
            except ApiError as exc:
                if exc.status != 409:
                    self.stats.errors.append(f"close {inc.get('id')}: {exc}")

    def _poll_unassigned(self) -> None:
        """Incidents registered by people on the map are dispatched too."""
        for status in UNASSIGNED:
            try:
                for inc in self.api.incidents(status):
                    if isinstance(inc.get("id"), int):
                        self.add(inc["id"])
            except ApiError:
                return

    def run(self, stop: threading.Event) -> None:
        next_close = time.monotonic() + self.close_every_s
        while not stop.is_set():
            now = time.monotonic()
            item = None
            with self.lock:
                if self.queue and self.queue[0][0] <= now:
                    item = self.queue.popleft()
            if item is not None:
                due, inc, attempts = item
                if not self._dispatch(inc, attempts):
                    with self.lock:
                        self.queue.append((now + 3.0, inc, attempts + 1))
                continue
            if now >= next_close:
                next_close = now + self.close_every_s
                self._close_cleared()
                self._poll_unassigned()
            stop.wait(0.2)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-url", default=None, help="API base URL (default from settings)")
    p.add_argument("--user", default="calltaker", help="call-taker account")
    p.add_argument("--password", default=None,
                   help="its password (default: $GEODISPATCH_CALLGEN_PASSWORD)")
    p.add_argument("--auto", action="store_true",
                   help="also run the dispatcher bot (recommend, assign, close)")
    p.add_argument("--dispatcher", default="dispatcher", help="dispatcher account for --auto")
    p.add_argument("--dispatcher-password", default=None,
                   help="its password (default: $GEODISPATCH_DISPATCHER_PASSWORD)")
    p.add_argument("--calls-file", type=Path, default=None,
                   help="SF calls-for-service CSV (default: the shared data file)")
    p.add_argument("--speedup", type=float, default=20.0,
                   help="replay the real gaps between calls this many times faster")
    p.add_argument("--max-gap-s", type=float, default=600.0, help="cap on one real gap")
    p.add_argument("--max-calls", type=int, default=None, help="stop after this many calls")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--lang", default="en", help="callers' SMS language")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--grid", action="store_true", help="map calls onto the synthetic grid")
    p.add_argument("--stats-file", type=Path, default=None, help="write counters here as JSON")


def run_callgen(args: argparse.Namespace) -> int:
    import os
    import signal

    from geodispatch.errors import ConfigurationError
    from geodispatch.sim.calls import SF_CALLS_FILE, BoxMapper, load_calls, replay
    from geodispatch.sim.runner import load_roads

    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings: Settings = get_settings()
    base = args.base_url or f"http://{settings.api_host}:{settings.api_port}"
    password = args.password or os.environ.get("GEODISPATCH_CALLGEN_PASSWORD")
    if not password:
        raise ConfigurationError("callgen needs --password or GEODISPATCH_CALLGEN_PASSWORD")
    calls_file = args.calls_file or settings.data_dir / SF_CALLS_FILE
    calls = load_calls(calls_file)
    roads = load_roads(settings, grid=args.grid)
    rng = random.Random(args.seed)
    mapper = BoxMapper([c.location for c in calls], roads.bbox())
    snap_rng = random.Random(rng.getrandbits(32))

    def place(p: Any) -> Any:
        # Snap onto the network: a road point within 150 m (the caller stands on a street).
        return roads.random_point(snap_rng, mapper(p), 150.0)

    api = ApiClient(base, args.user, password)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda s, f: stop.set())
    signal.signal(signal.SIGTERM, lambda s, f: stop.set())
    stats = CallgenStats()
    bot_thread = None
    bot = None
    if args.auto:
        dpw = args.dispatcher_password or os.environ.get("GEODISPATCH_DISPATCHER_PASSWORD")
        if not dpw:
            raise ConfigurationError("--auto needs --dispatcher-password or "
                                     "GEODISPATCH_DISPATCHER_PASSWORD")
        bot = DispatcherBot(ApiClient(base, args.dispatcher, dpw), stats, rng=rng)
        bot_thread = threading.Thread(target=bot.run, args=(stop,), name="dispatcher-bot",
                                      daemon=True)
        bot_thread.start()
    known = api.categories()
    run_id = uuid.uuid4().hex[:8]
    t0 = time.monotonic()
    log.info("callgen: %d real calls, speed-up x%g, categories %s", len(calls), args.speedup,
             known or "(server list unavailable)")
    stream = replay(calls, speedup=args.speedup, mapper=place, known_categories=known, rng=rng,
                    max_gap_s=args.max_gap_s)
    try:
        for n, call in enumerate(stream, start=1):
            if args.duration is not None and time.monotonic() - t0 + call.delay_s > args.duration:
                break
            if stop.wait(call.delay_s):
                break
            try:
                inc = api.register(call, key=f"callgen-{run_id}-{n}", lang=args.lang)
            except ApiError as exc:
                stats.register_errors += 1
                stats.errors.append(f"register: {exc}")
                log.warning("callgen: registration failed: %s", exc)
            else:
                stats.registered += 1
                log.info("callgen: %s %s p%s at %.5f,%.5f", inc.get("reference", inc.get("id")),
                         call.category, call.priority, call.location.lat, call.location.lng)
                if bot is not None and isinstance(inc.get("id"), int):
                    bot.add(inc["id"])
            if args.stats_file is not None:
                args.stats_file.write_text(json.dumps(stats.as_dict()))
            if args.max_calls is not None and n >= args.max_calls:
                break
        # Let the bot keep dispatching and closing until told to stop.
        if bot_thread is not None:
            remaining = None if args.duration is None else args.duration - (time.monotonic() - t0)
            stop.wait(remaining)
    finally:
        stop.set()
        if bot_thread is not None:
            bot_thread.join(timeout=5)
        if args.stats_file is not None:
            args.stats_file.write_text(json.dumps(stats.as_dict()))
        api.close()
    log.info("callgen: %s", stats.as_dict())
    return 0
