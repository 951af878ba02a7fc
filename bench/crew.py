"""Crew terminal benchmark (not a test): 500 open crew terminals, 50 assignments a second.

    .venv/bin/python bench/crew.py [--terminals 500] [--rate 50] [--seconds 20]
                                   [--channel stream|poll] [--poll 0.5] [--connect-s 5]

Everything is real: a ``geodispatch serve --no-ingest`` uvicorn process (one process) on a
database of its own (``<db>_bench_crew``, emptied and migrated first), units with real device
tokens, incidents registered through the real workflow beforehand (registration is measured by
``bench/intake.py``), and a dispatcher assigning over HTTP at ``--rate`` per second, each crew in
turn. Each terminal does what the crew app (``/crew``) does: it keeps ``GET /api/crew/stream``
(Server-Sent Events, httpx async, all terminals in this one process) open with its device
credentials, resuming with ``Last-Event-ID`` if it drops; when a screen with a new,
unacknowledged assignment arrives it presses *acknowledge* (``POST /api/crew/status`` with an
idempotency key), and, when the run makes more assignments than there are crews, *cleared* and
*available* right after so that it can be assigned again. With
``--channel poll`` it polls ``GET /api/crew/assignment`` every ``--poll`` seconds instead (the
app's fallback, and how the app worked before the stream). A dispatcher watcher polls the
incident's assignments every ``--watch-s`` (50 ms) from the acknowledgement until it sees it.

- ``assignment_to_terminal_ms``: from the moment the assign request is *sent* (so the server's
  own work on it is included; the push often arrives before the answer) to the terminal
  receiving the screen that shows it.
- ``ack_to_dispatcher_ms``: from the terminal sending the acknowledgement to the dispatcher's view
  (``GET /api/incidents/{id}/assignments``) showing ``acknowledged``.
- ``lost``: assignments made that no terminal saw, or whose acknowledgement the dispatcher never
  saw, by 10 s after the run.

The clients share one Python process with the assigner, so at high rates the client's own CPU is
part of the tail; ``client_cpu`` and ``server_cpu`` (cores used) are reported, and the load
average (``os.getloadavg()``) at start and end. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from intake import (  # type: ignore[import-not-found]  # noqa: E402
    _cpu_s,
    _free_port,
    _pct,
    _r,
    bench_env,
    bench_settings,
    ensure_database,
    log,
    log_keys,
    start_process,
    stop_process,
    wait_http,
)
from sqlalchemy.orm import Session  # noqa: E402

from geodispatch.db import app_engine  # noqa: E402
from geodispatch.settings import Settings  # noqa: E402

PASSWORD = "bench-crew-password"
CENTRE = (50.4501, 30.5234)


def prepare(s: Settings, terminals: int, incidents: int) -> tuple[list[dict[str, Any]], list[int]]:
    """Crews with device tokens, a dispatcher, and ``incidents`` registered incidents."""
    from geodispatch.incidents.schemas import IncidentCreate
    from geodispatch.incidents.service import register_incident
    from geodispatch.tracking.service import create_unit
    from geodispatch.users.service import upsert_user

    engine = app_engine(s)
    crews = []
    with Session(engine) as session, session.begin():
        for k in range(terminals):
            unit, token = create_unit(session=session, call_sign=f"CB-{k}", kind="patrol_car",
                                      capabilities=["patrol"], region=s.default_region,
                                      status="available", settings=s)
            crews.append({"id": unit.id, "device": unit.device_id, "token": token})
        upsert_user(session=session, username="bench_dispatcher", password=PASSWORD,
                    role="dispatcher", region=None)
    ids = []
    for start in range(0, incidents, 200):
        with Session(engine) as session, session.begin():
            for k in range(start, min(incidents, start + 200)):
                inc = register_incident(session=session, data=IncidentCreate(
                    lat=CENTRE[0] + (k % 97) * 1e-4, lng=CENTRE[1] + (k % 89) * 1e-4,
                    category="theft", idempotency_key=uuid.uuid4().hex), actor="bench")
                ids.append(inc.id)
    engine.dispose()
    return crews, ids


class Sse:
    """Parse a Server-Sent Events body line by line into (event, id, data) triples."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}

    def line(self, line: str) -> tuple[str, str | None, str] | None:
        if line == "":
            f, self.fields = self.fields, {}
            return (f["event"], f.get("id"), f.get("data", "")) if "event" in f else None
        if not line.startswith(":"):
            name, _, value = line.partition(":")
            self.fields[name] = value[1:] if value.startswith(" ") else value
        return None


async def drive(base: str, crews: list[dict[str, Any]], incidents: list[int],
                args: argparse.Namespace) -> dict[str, Any]:
    requested_at: dict[int, float] = {}  # assignment id -> when its assign request was sent
    answered_at: dict[int, float] = {}  # ... and when it answered
    incident_of: dict[int, int] = {}
    seen: dict[int, float] = {}
    acked_sent: dict[int, float] = {}
    ack_seen: dict[int, float] = {}
    errors: dict[str, int] = {}
    streams = {"open": 0, "opened": 0, "reconnects": 0, "events": 0}
    stop = asyncio.Event()
    n = len(crews)
    reuse = int(args.rate * args.seconds) > n  # crews get a second call: clear them first
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    stream_limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client, \
            httpx.AsyncClient(base_url=base, limits=stream_limits,
                              timeout=httpx.Timeout(30, read=None)) as sclient:
        r = await client.post("/api/auth/token", data={"username": "bench_dispatcher",
                                                        "password": PASSWORD})
        r.raise_for_status()
        h = {"Authorization": f"Bearer {r.json()['access_token']}"}

        def err(what: str) -> None:
            errors[what] = errors.get(what, 0) + 1

        steps: tuple[tuple[str, dict[str, Any]], ...] = (("cleared", {}), ("available", {}))
        if not reuse:
            steps = ()

        async def press(hd: dict[str, str], aid: int) -> None:
            acked_sent[aid] = time.monotonic()
            for st, body in (("acknowledged", {"assignment_id": aid}), *steps):
                try:
                    r = await client.post("/api/crew/status", headers=hd, json={
                        "status": st, "key": uuid.uuid4().hex, **body})
                    if r.status_code != 200:
                        err(f"{st}_{r.status_code}")
                except httpx.HTTPError:
                    err(st)

        def on_screen(hd: dict[str, str], view: dict[str, Any], handled: set[int],
                      presses: list[Any]) -> None:
            a = view.get("assignment")
            if a is None or a["id"] in handled or a.get("acknowledged_at"):
                return
            handled.add(a["id"])
            seen.setdefault(a["id"], time.monotonic())
            presses.append(asyncio.create_task(press(hd, a["id"])))

        async def terminal_stream(crew: dict[str, Any], offset: float, presses: list[Any],
                                  ready: asyncio.Event) -> None:
            hd = {"X-Device-Id": crew["device"], "X-Device-Token": crew["token"]}
            await asyncio.sleep(offset)
            last_id: str | None = None
            handled: set[int] = set()
            first = True
            while not stop.is_set():
                headers = {**hd, "Last-Event-ID": last_id} if last_id else hd
                try:
                    async with sclient.stream("GET", "/api/crew/stream", headers=headers) as r:
                        if r.status_code != 200:
                            err(f"stream_{r.status_code}")
                        else:
                            streams["open"] += 1
                            streams["opened"] += 1
                            if first:
                                first = False
                                ready.set()
                            parser = Sse()
                            try:
                                async for line in r.aiter_lines():
                                    ev = parser.line(line)
                                    if ev is None:
                                        continue
                                    kind, eid, data = ev
                                    last_id = eid or last_id
                                    streams["events"] += 1
                                    if kind == "assignment":
                                        on_screen(hd, json.loads(data), handled, presses)
                            finally:
                                streams["open"] -= 1
                except httpx.HTTPError:
                    err("stream")
                if not stop.is_set():
                    streams["reconnects"] += 1
                    await asyncio.sleep(1.0)

        async def terminal_poll(crew: dict[str, Any], offset: float, presses: list[Any],
                                ready: asyncio.Event) -> None:
            hd = {"X-Device-Id": crew["device"], "X-Device-Token": crew["token"]}
            await asyncio.sleep(offset)
            handled: set[int] = set()
            ready.set()
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    r = await client.get("/api/crew/assignment", headers=hd)
                    if r.status_code == 200:
                        on_screen(hd, r.json(), handled, presses)
                    else:
                        err(f"poll_{r.status_code}")
                except (httpx.HTTPError, ValueError):
                    err("poll")
                await asyncio.sleep(max(0.0, args.poll - (time.monotonic() - t0)))

        async def watch(aid: int) -> None:
            deadline = time.monotonic() + args.seconds + 15
            while time.monotonic() < deadline:
                if aid in acked_sent:
                    try:
                        r = await client.get(f"/api/incidents/{incident_of[aid]}/assignments",
                                             headers=h)
                        row = next((x for x in r.json()["items"] if x["id"] == aid), None)
                        if row and row.get("acknowledged_at"):
                            ack_seen[aid] = time.monotonic()
                            return
                    except (httpx.HTTPError, ValueError, KeyError):
                        err("watch")
                await asyncio.sleep(args.watch_s)

        async def assign(incident_id: int, crew: dict[str, Any], watchers: list[Any]) -> None:
            t0 = time.monotonic()
            try:
                r = await client.post(f"/api/incidents/{incident_id}/assignments", headers=h,
                                      json={"unit_id": crew["id"], "override_reason": "bench"})
            except httpx.HTTPError:
                err("assign")
                return
            if r.status_code != 201:
                err(f"assign_{r.status_code}")
                return
            aid = int(r.json()["id"])
            requested_at[aid] = t0
            answered_at[aid] = time.monotonic()
            incident_of[aid] = incident_id
            watchers.append(asyncio.create_task(watch(aid)))

        presses: list[Any] = []
        readies = [asyncio.Event() for _ in crews]
        term = terminal_stream if args.channel == "stream" else terminal_poll
        spread = args.connect_s if args.channel == "stream" else args.poll
        tasks = [asyncio.create_task(term(c, spread * i / n, presses, readies[i]))
                 for i, c in enumerate(crews)]
        t_connect = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in readies)),
                               timeout=spread + 60)
        connect_s = time.monotonic() - t_connect
        log(f"{n} terminals connected ({args.channel}) in {connect_s:.1f} s")
        await asyncio.sleep(1.0)
        watchers: list[Any] = []
        pending = []
        t_start = time.monotonic()
        total = int(args.rate * args.seconds)
        for k in range(total):
            at = t_start + k / args.rate
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(assign(incidents[k], crews[k % n], watchers)))
        await asyncio.gather(*pending)
        made_s = time.monotonic() - t_start
        await asyncio.sleep(1.0)
        if watchers:
            await asyncio.wait(watchers, timeout=10)
        for w in watchers:
            w.cancel()
        stop.set()
        open_at_end = streams["open"]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, *presses, return_exceptions=True)
    to_terminal = [(seen[a] - requested_at[a]) * 1000 for a in requested_at if a in seen]
    to_dispatcher = [(ack_seen[a] - acked_sent[a]) * 1000 for a in requested_at if a in ack_seen]
    assign_ms = [(answered_at[a] - requested_at[a]) * 1000 for a in requested_at]
    lost = sum(1 for a in requested_at if a not in seen or a not in ack_seen)
    return {"assignments": len(requested_at), "assign_failures": total - len(requested_at),
            "assign_rate_achieved": round(len(requested_at) / made_s, 1), "lost": lost,
            "not_at_terminal": sum(1 for a in requested_at if a not in seen),
            "ack_not_at_dispatcher": sum(1 for a in requested_at if a not in ack_seen),
            "assign_request_p50_ms": _r(_pct(assign_ms, 0.5)),
            "assign_request_p99_ms": _r(_pct(assign_ms, 0.99)),
            "assignment_to_terminal_p50_ms": _r(_pct(to_terminal, 0.5)),
            "assignment_to_terminal_p99_ms": _r(_pct(to_terminal, 0.99)),
            "ack_to_dispatcher_p50_ms": _r(_pct(to_dispatcher, 0.5)),
            "ack_to_dispatcher_p99_ms": _r(_pct(to_dispatcher, 0.99)),
            "connect_s": round(connect_s, 1), "streams_open_at_end": open_at_end,
            "stream_reconnects": streams["reconnects"] if args.channel == "stream" else None,
            "errors": errors}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--terminals", type=int, default=500)
    p.add_argument("--rate", type=float, default=50.0)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--channel", choices=("stream", "poll"), default="stream",
                   help="how terminals get their assignment: the SSE stream (the app's), or "
                        "polling GET /api/crew/assignment (the app's fallback; the old figures)")
    p.add_argument("--poll", type=float, default=0.5, help="poll interval with --channel poll")
    p.add_argument("--watch-s", type=float, default=0.05,
                   help="the dispatcher re-reads an acknowledged assignment this often")
    p.add_argument("--connect-s", type=float, default=5.0,
                   help="spread the terminals' stream connects over this many seconds")
    args = p.parse_args()
    s = bench_settings("_bench_crew")
    log("emptying and migrating the bench database")
    ensure_database(s, empty=True)
    log_keys(s)
    total = int(args.rate * args.seconds)
    t = time.perf_counter()
    crews, incidents = prepare(s, args.terminals, total)
    log(f"{len(crews)} crews, {len(incidents)} incidents in {time.perf_counter() - t:.1f} s")
    env = {**bench_env(s), "GEODISPATCH_ASSIGNMENT_ACK_TIMEOUT_S": "600"}
    port = _free_port()
    srv = start_process([sys.executable, "-m", "geodispatch.cli", "serve", "--port", str(port),
                         "--no-ingest"], env, "crew_server.log")
    load_before = round(os.getloadavg()[0], 2)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(srv, base, "crew_server.log")
        time.sleep(2.0)
        cpu0, wall0, own0 = _cpu_s(srv.pid), time.perf_counter(), time.process_time()
        out = asyncio.run(drive(base, crews, incidents, args))
        wall = time.perf_counter() - wall0
        out["server_cpu"] = round((_cpu_s(srv.pid) - cpu0) / wall, 2)
        out["client_cpu"] = round((time.process_time() - own0) / wall, 2)
    finally:
        stop_process(srv)
    result = {"terminals": len(crews), "channel": args.channel, "rate_per_s": args.rate,
              "seconds": args.seconds, "poll_s": args.poll if args.channel == "poll" else None,
              **out, "load_avg_1m_start": load_before,
              "load_avg": list(os.getloadavg())}
    for k, v in result.items():
        print(f"{k:<32} {v}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
