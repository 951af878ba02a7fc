"""Calls benchmark (not a test): a burst of 100 ringing calls, then 20 calls/s for a minute.

    .venv/bin/python bench/calls.py [--burst 100] [--rate 20] [--seconds 60] [--aml-share 0.2]
                                    [--children 16] [--reporters 4] [--screen push|poll]

Everything is real and on this machine: a ``geodispatch serve --no-ingest`` uvicorn process on a
database of its own (``<db>_bench_calls``, emptied and migrated first), the project's Kamailio
SIP edge (``geodispatch.calls.kamailio``, ``--children`` SIP worker processes, ``--reporters``
reporter processes posting the queued reports in batches to ``POST /api/calls/sip/batch``),
SIPp callers and SIPp call-taker phones (``geodispatch/calls/sipp/``). The burst is ``--burst``
callers dialling within 0.2 s to a phone that never answers; they ring together for half a
second and hang up (abandoned: each a callback with an SMS). Then ``--rate`` calls a second for
``--seconds`` are answered by the operator phone and hung up 0.3 s later. A share of the numbers
(``--aml-share``) sends an AML HTTPS form POST (ETSI TS 103 625) as soon as its call is on the
call-taker's screen.

- ``ring_to_record_ms``: from SIPp sending the INVITE (its ``-trace_msg`` time) to the call's
  record being written (``calls.recorded_at``; same clock). ``ring_to_phone_ms``: INVITE sent ->
  INVITE at the call-taker's phone (Kamailio relays at once; the report goes its own way).
- ``aml_to_screen_ms``: from posting the AML to the call-taker screen having it. ``--screen
  push`` (default, the console now): the screen is a live-feed client (``/api/live``) and the
  time is that of the ``calls`` message carrying the location. ``--screen poll`` (the old
  console): one client sends ``GET /api/calls?state=ringing,answered,ended`` with
  ``--screen-pause-s`` between answers and the time is that of the first answer showing it.
- ``unrecorded``: INVITEs SIPp sent whose Call-ID has no record 10 s after the run.

The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from intake import (  # type: ignore[import-not-found]  # noqa: E402
    VAR,
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
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from geodispatch.calls.kamailio import EdgeConfig, Kamailio  # noqa: E402
from geodispatch.calls.models import Call, CallCallback, CallLocation  # noqa: E402
from geodispatch.calls.sipp import numbers_csv, sipp  # noqa: E402
from geodispatch.db import app_engine  # noqa: E402

PASSWORD = "bench-calls-password"
CENTRE = (50.4501, 30.5234)
_HEAD = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d[ \t]\d\d:\d\d:\d\d\.\d+)")


def _free_sip_port() -> int:
    """A port free for UDP (SIP) as well as TCP, so parallel runs never share one."""
    import socket

    while True:
        port = _free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def trace_times(folder: Path, direction: str) -> dict[str, float]:
    """Call-ID -> epoch of the first INVITE ``direction`` ("sent"/"received") in the SIPp
    message traces of ``folder``."""
    out: dict[str, float] = {}
    for f in folder.glob("*_messages.log"):
        at: float | None = None
        state = 0  # 1: header seen with the right direction; 2: INVITE request line seen
        for line in f.read_text(errors="replace").splitlines():
            m = _HEAD.match(line)
            if m:
                stamp = m.group(1).replace("\t", " ")
                at, state = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp(), 0
            elif at is not None and state == 0 and line.startswith("UDP message"):
                state = 1 if direction in line else -1
            elif state == 1 and line.strip():
                state = 2 if line.startswith("INVITE ") else -1
            elif state == 2 and line.lower().startswith("call-id:"):
                cid = line.split(":", 1)[1].strip()
                if at is not None:
                    out.setdefault(cid, at)
                state = -1
    return out


def prepare(s: Any) -> None:
    from geodispatch.users.service import upsert_user

    engine = app_engine(s)
    with Session(engine) as session, session.begin():
        upsert_user(session=session, username="bench_calltaker", password=PASSWORD,
                    role="call_taker", region=None)
    engine.dispose()


def aml_form(number: str, k: int) -> dict[str, str]:
    return {"v": "1", "emergency_number": "112", "device_number": number,
            "location_latitude": f"{CENTRE[0] + (k % 50) * 1e-4:.6f}",
            "location_longitude": f"{CENTRE[1] + (k % 37) * 1e-4:.6f}",
            "location_accuracy": str(10 + k % 40),
            "location_time": str(int(time.time() * 1000) - 1500),
            "location_source": "gps", "location_confidence": "0.68"}


async def _token(client: httpx.AsyncClient) -> str:
    r = await client.post("/api/auth/token", data={"username": "bench_calltaker",
                                                    "password": PASSWORD})
    r.raise_for_status()
    return str(r.json()["access_token"])


async def screen_push(base: str, aml_numbers: set[str], stop: asyncio.Event, pause_s: float
                      ) -> dict[str, Any]:
    """The call-taker screen as the console runs it: the live feed (``/api/live``) pushes each
    changed call; an AML is posted for a chosen number as soon as its call is pushed, and the
    push that carries its location is timed."""
    import websockets

    posted: dict[str, float] = {}
    loc_id: dict[str, int] = {}
    seen: dict[tuple[str, int], float] = {}  # (number, location id) -> first pushed
    errors: dict[str, int] = {}
    pushes = 0
    pending: list[asyncio.Task[None]] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        token = await _token(client)

        async def send_aml(number: str, k: int) -> None:
            posted[number] = time.time()
            try:
                r = await client.post("/api/calls/aml/https", data=aml_form(number, k))
                if r.status_code != 200:
                    errors[f"aml_{r.status_code}"] = errors.get(f"aml_{r.status_code}", 0) + 1
                    return
                loc_id[number] = int(r.json()["location"]["id"])
            except (httpx.HTTPError, ValueError, KeyError):
                errors["aml"] = errors.get("aml", 0) + 1

        url = base.replace("http://", "ws://") + "/api/live"
        async with websockets.connect(url, max_size=1 << 26, open_timeout=60) as ws:
            await ws.send(json.dumps({"token": token}))
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                now = time.time()
                msg = json.loads(raw)
                if msg.get("type") != "calls":
                    continue
                pushes += 1
                for c in msg["calls"]:
                    n = c.get("caller_phone")
                    if n in aml_numbers and n not in posted:
                        pending.append(asyncio.create_task(send_aml(n, len(posted))))
                    loc = c.get("location")
                    if loc and n in posted:
                        seen.setdefault((n, int(loc["id"])), now)
        await asyncio.gather(*pending, return_exceptions=True)
    shown = {n: seen[(n, i)] for n, i in loc_id.items() if (n, i) in seen}
    lat = [(shown[n] - posted[n]) * 1000 for n in shown]
    return {"aml_posted": len(posted), "aml_accepted": len(loc_id), "aml_shown": len(shown),
            "aml_to_screen_p50_ms": _r(_pct(lat, 0.5)), "aml_to_screen_p99_ms": _r(_pct(lat, 0.99)),
            "aml_to_screen_max_ms": _r(max(lat) if lat else float("nan")),
            "screen_pushes": pushes, "screen_errors": errors}


async def screen_poll(base: str, aml_numbers: set[str], stop: asyncio.Event, pause_s: float
                      ) -> dict[str, Any]:
    """The old call-taker screen (``--screen poll``): its query, again and again; an AML is
    posted for a chosen number as soon as its call appears, and its arrival is timed."""
    posted: dict[str, float] = {}  # number -> when the AML POST was sent
    loc_id: dict[str, int] = {}
    shown: dict[str, float] = {}
    errors: dict[str, int] = {}
    polls = 0
    poll_ms: list[float] = []
    pending: list[asyncio.Task[None]] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        r = await client.post("/api/auth/token", data={"username": "bench_calltaker",
                                                        "password": PASSWORD})
        r.raise_for_status()
        h = {"Authorization": f"Bearer {r.json()['access_token']}"}

        async def send_aml(number: str, k: int) -> None:
            posted[number] = time.time()
            try:
                r = await client.post("/api/calls/aml/https", data=aml_form(number, k))
                if r.status_code != 200:
                    errors[f"aml_{r.status_code}"] = errors.get(f"aml_{r.status_code}", 0) + 1
                    return
                loc_id[number] = int(r.json()["location"]["id"])
            except (httpx.HTTPError, ValueError, KeyError):
                errors["aml"] = errors.get("aml", 0) + 1

        while not stop.is_set():
            t_sent = time.time()
            try:
                r = await client.get("/api/calls", params={
                    "state": "ringing,answered,ended", "limit": 200}, headers=h)
                items = r.json()["items"] if r.status_code == 200 else []
                if r.status_code != 200:
                    errors[f"poll_{r.status_code}"] = errors.get(f"poll_{r.status_code}", 0) + 1
            except (httpx.HTTPError, ValueError, KeyError):
                errors["poll"] = errors.get("poll", 0) + 1
                items = []
            polls += 1
            poll_ms.append((time.time() - t_sent) * 1000)
            for c in items:
                n = c.get("caller_phone")
                if n in aml_numbers and n not in posted:
                    pending.append(asyncio.create_task(send_aml(n, len(posted))))
                loc = c.get("location")
                if (n in loc_id and n not in shown and loc and loc.get("id") == loc_id[n]
                        and t_sent >= posted[n]):
                    shown[n] = time.time()
            await asyncio.sleep(pause_s)
        await asyncio.gather(*pending, return_exceptions=True)
    lat = [(shown[n] - posted[n]) * 1000 for n in shown]
    return {"aml_posted": len(posted), "aml_accepted": len(loc_id), "aml_shown": len(shown),
            "aml_to_screen_p50_ms": _r(_pct(lat, 0.5)), "aml_to_screen_p99_ms": _r(_pct(lat, 0.99)),
            "aml_to_screen_max_ms": _r(max(lat) if lat else float("nan")),
            "screen_polls": polls, "screen_poll_p50_ms": _r(_pct(poll_ms, 0.5)),
            "screen_poll_p99_ms": _r(_pct(poll_ms, 0.99)), "screen_errors": errors}


def wait_all(procs: list[Any], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=max(1.0, deadline - time.monotonic())))
        except Exception:  # noqa: BLE001 - a stuck SIPp is killed and reported
            p.kill()
            p.wait()
            codes.append(-1)
    return codes


async def run_calls(base: str, edge_port: int, op_port: int, noans_port: int, work: Path,
                    args: argparse.Namespace, burst: list[str], steady: list[str],
                    aml_numbers: set[str]) -> tuple[dict[str, Any], list[int]]:
    stop = asyncio.Event()
    watch = screen_push if args.screen == "push" else screen_poll
    watcher = asyncio.create_task(watch(base, aml_numbers, stop, args.screen_pause_s))
    await asyncio.sleep(1.0)
    target = f"127.0.0.1:{edge_port}"
    log(f"burst: {len(burst)} ringing calls")
    b = sipp("uac_abandoned.xml", port=_free_sip_port(), workdir=work / "callers", target=target,
             service="noanswer", calls=len(burst), rate=max(1, int(len(burst) / 0.2)),
             limit=len(burst),
             inject=numbers_csv(work / "burst.csv", [[n] for n in burst]),
             extra=["-trace_msg", "-rp", "1000"], timeout_s=120)
    codes = await asyncio.to_thread(wait_all, [b], 60)
    log(f"steady: {args.rate}/s for {args.seconds:.0f} s")
    st = sipp("uac_answered.xml", port=_free_sip_port(), workdir=work / "callers", target=target,
              calls=len(steady), rate=max(1, int(args.rate)),
              inject=numbers_csv(work / "steady.csv", [[n] for n in steady]),
              extra=["-trace_msg"], timeout_s=int(args.seconds) + 120)
    codes += await asyncio.to_thread(wait_all, [st], args.seconds + 120)
    await asyncio.sleep(3.0)
    stop.set()
    return await watcher, codes


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--burst", type=int, default=100)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--aml-share", type=float, default=0.2)
    p.add_argument("--children", type=int, default=16, help="Kamailio worker processes")
    p.add_argument("--screen", choices=("push", "poll"), default="push",
                   help="the call-taker screen: the live feed's pushes (the console now), or "
                        "the old query of the list again and again")
    p.add_argument("--reporters", type=int, default=4, help="Kamailio reporter processes")
    p.add_argument("--screen-pause-s", type=float, default=0.05,
                   help="pause between the screen client's queries (the console's is 1 s; "
                        "shorter measures when the data is there rather than the poll phase)")
    args = p.parse_args()
    if not (shutil.which("kamailio") and shutil.which("sipp")):
        sys.exit("needs Debian's kamailio, kamailio-utils-modules and sip-tester")
    s = bench_settings("_bench_calls")
    log("emptying and migrating the bench database")
    ensure_database(s, empty=True)
    log_keys(s)
    prepare(s)
    rng = random.Random(7)
    prefix = f"+38067{rng.randrange(10, 99)}"
    n_steady = int(args.rate * args.seconds)
    burst = [f"{prefix}{k:05d}" for k in range(args.burst)]
    steady = [f"{prefix}{50000 + k:05d}" for k in range(n_steady)]
    everyone = burst + steady
    aml_numbers = set(rng.sample(everyone, int(len(everyone) * args.aml_share)))
    work = VAR / "calls"
    shutil.rmtree(work, ignore_errors=True)
    (work / "callers").mkdir(parents=True)
    (work / "phones").mkdir(parents=True)
    port = _free_port()
    srv = start_process([sys.executable, "-m", "geodispatch.cli", "serve", "--port", str(port),
                         "--no-ingest"], bench_env(s), "calls_server.log")
    base = f"http://127.0.0.1:{port}"
    edge_port, op_port, noans_port = _free_sip_port(), _free_sip_port(), _free_sip_port()
    kam = Kamailio(EdgeConfig("127.0.0.1", edge_port, f"127.0.0.1:{op_port}",
                              f"127.0.0.1:{noans_port}", f"{base}/api/calls/sip",
                              children=args.children, reporters=args.reporters),
                   work / "kamailio")
    load_before = round(os.getloadavg()[0], 2)
    phones = []
    try:
        wait_http(srv, base, "calls_server.log")
        kam.start()
        phones = [sipp("uas_operator.xml", port=op_port, workdir=work / "phones",
                       calls=n_steady, extra=["-trace_msg"], timeout_s=int(args.seconds) + 300),
                  sipp("uas_ringing.xml", port=noans_port, workdir=work / "phones",
                       calls=args.burst, extra=["-trace_msg"], timeout_s=int(args.seconds) + 300)]
        time.sleep(1.0)
        cpu0, wall0 = _cpu_s(srv.pid), time.perf_counter()
        out, codes = asyncio.run(run_calls(base, edge_port, op_port, noans_port, work, args,
                                           burst, steady, aml_numbers))
        wall = time.perf_counter() - wall0
        out["server_cpu"] = round((_cpu_s(srv.pid) - cpu0) / wall, 2)
        out["sipp_exit_codes"] = codes
        time.sleep(7.0)  # the last reports; then: what has a record
    finally:
        for ph in phones:
            if ph.poll() is None:
                ph.kill()
                ph.wait()
        kam.stop()
        stop_process(srv)
    sent = trace_times(work / "callers", "sent")
    at_phone = trace_times(work / "phones", "received")
    engine = app_engine(s)
    with Session(engine) as session:
        rows = {c.external_id: c for c in session.execute(
            select(Call).where(Call.source == "sip")).scalars()}
        callbacks = session.execute(select(CallCallback)).scalars().all()
        states: dict[str, int] = {}
        for c in rows.values():
            states[c.state] = states.get(c.state, 0) + 1
        burst_set = set(burst)
        cb_with_sms = sum(1 for cb in callbacks if cb.sms_id is not None)
        located = session.execute(select(func.count()).select_from(CallLocation).where(
            CallLocation.call_id.is_not(None))).scalar_one()
    engine.dispose()
    to_record = [(rows[cid].recorded_at.timestamp() - t) * 1000 for cid, t in sent.items()
                 if cid in rows]
    to_phone = [(at_phone[cid] - t) * 1000 for cid, t in sent.items() if cid in at_phone]
    burst_ids = {cid for cid in sent if cid in rows and rows[cid].caller_phone in burst_set}
    burst_rec = [(rows[cid].recorded_at.timestamp() - sent[cid]) * 1000 for cid in burst_ids]
    steady_rec = [(rows[cid].recorded_at.timestamp() - sent[cid]) * 1000 for cid in sent
                  if cid in rows and cid not in burst_ids]
    unrecorded = sum(1 for cid in sent if cid not in rows)
    result = {
        "calls": len(sent), "unrecorded": unrecorded, "records": len(rows),
        "states": states, "callbacks": len(callbacks), "callbacks_with_sms": cb_with_sms,
        "burst": args.burst, "rate_per_s": args.rate, "seconds": args.seconds,
        "kamailio_children": args.children, "kamailio_reporters": args.reporters,
        "screen": args.screen,
        "ring_to_record_p50_ms": _r(_pct(to_record, 0.5)),
        "ring_to_record_p99_ms": _r(_pct(to_record, 0.99)),
        "ring_to_record_max_ms": _r(max(to_record) if to_record else float("nan")),
        "burst_ring_to_record_p50_ms": _r(_pct(burst_rec, 0.5)),
        "burst_ring_to_record_p99_ms": _r(_pct(burst_rec, 0.99)),
        "steady_ring_to_record_p50_ms": _r(_pct(steady_rec, 0.5)),
        "steady_ring_to_record_p99_ms": _r(_pct(steady_rec, 0.99)),
        "ring_to_phone_p50_ms": _r(_pct(to_phone, 0.5)),
        "ring_to_phone_p99_ms": _r(_pct(to_phone, 0.99)),
        "aml_numbers": len(aml_numbers), "aml_matched_to_calls": located, **out,
        "screen_pause_s": args.screen_pause_s if args.screen == "poll" else None,
        "load_avg_1m_start": load_before,
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }
    for k, v in result.items():
        print(f"{k:<32} {v}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
