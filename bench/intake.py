"""Intake benchmark (not a test): registrations and recommendations through the real HTTP API.

Runs against the configured (development) database, with the compiled road graph
(``geodispatch graph import`` first)::

    .venv/bin/python bench/intake.py                    # 5,000 crews, 250 calls/s for 20 s
    .venv/bin/python bench/intake.py --rate 400 --seconds 10

1. 5,000 crews are made live: bench units (created once, call signs ``BENCH-n``) are put at
   random nodes of the road graph, available, with a fresh fix in ``unit_latest``.
2. ``geodispatch serve --no-ingest`` starts as a subprocess (uvicorn, one process) on a free port.
3. An open-loop client sends registrations at ``--rate`` per second for ``--seconds`` (each with
   its own idempotency key; every ``--retry-every``-th key is sent twice, as a client retrying
   after a lost response). Every ``--recommend-every``-th registration is followed at once by a
   recommendation; "register + recommend" is the time from sending the registration to receiving
   the ranking.
4. Afterwards the database is counted: every key answered 2xx must be exactly one incident
   (lost = answered but absent; duplicated = more than one incident for one key, or a retry
   answered with another incident), and the whole event chain is verified.

Prints a table and, last, one JSON line with the figures the issue asks for.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from geodispatch.db import app_engine  # noqa: E402
from geodispatch.settings import get_settings  # noqa: E402

PASSWORD = "bench-intake-password"
CATEGORIES = ("theft", "robbery", "assault", "disturbance", "traffic_accident", "alarm")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def prepare(n_crews: int, seed: int) -> tuple[list[tuple[float, float]], str]:
    """Make ``n_crews`` bench crews live on the graph; return graph node points and run id."""
    from geodispatch.routing.engine import load_router
    from geodispatch.users.service import upsert_user

    settings = get_settings()
    router = load_router(settings)
    if router is None:
        sys.exit("no road graph: run `geodispatch graph import` first")
    g = router.graph
    rng = random.Random(seed)
    nodes = [rng.randrange(g.n_nodes) for _ in range(n_crews)]
    pts = [(float(g.node_lat[i]), float(g.node_lng[i])) for i in nodes]
    engine = app_engine(settings)
    with Session(engine) as s, s.begin():
        mix = [("patrol_car", ["patrol"])] * 8 + [("rapid_response", ["patrol", "armed_response"])] \
            + [("foot_patrol", ["foot"])]
        ids = []
        for k in range(n_crews):
            kind, caps = mix[k % len(mix)]
            ids.append(s.execute(text(
                "INSERT INTO units (call_sign, kind, capabilities, region, status,"
                " status_changed_at, device_id, device_token_hash, active)"
                " VALUES (:cs, :k, :c, :r, 'available', now(), :cs, 'bench-no-login', true)"
                " ON CONFLICT (call_sign) DO UPDATE SET status = 'available', active = true"
                " RETURNING id"),
                {"cs": f"BENCH-{k}", "k": kind, "c": caps, "r": settings.default_region}
            ).scalar_one())
        s.execute(text(
            "INSERT INTO unit_latest (unit_id, fix_time, received_at, geom, h3, online)"
            " SELECT u, clock_timestamp(), clock_timestamp(),"
            "  ST_SetSRID(ST_MakePoint(lng, lat), 4326), 0, true"
            " FROM unnest(CAST(:u AS int[]), CAST(:lat AS float8[]), CAST(:lng AS float8[]))"
            "  AS t(u, lat, lng)"
            " ON CONFLICT (unit_id) DO UPDATE SET fix_time = EXCLUDED.fix_time,"
            "  received_at = EXCLUDED.received_at, geom = EXCLUDED.geom, online = true"),
            {"u": ids, "lat": [p[0] for p in pts], "lng": [p[1] for p in pts]})
        for role in ("call_taker", "supervisor"):
            upsert_user(session=s, username=f"bench_{role}", password=PASSWORD, role=role,
                        region=None)
    engine.dispose()
    return pts, uuid.uuid4().hex[:10]


def start_server(port: int, anchor_s: float) -> subprocess.Popen[bytes]:
    env = {**os.environ, "GEODISPATCH_ANCHOR_INTERVAL_S": str(anchor_s),
           "GEODISPATCH_SERVE_INGEST": "false", "PYTHONUNBUFFERED": "1"}
    log = open(ROOT / "var" / "bench_intake_server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "geodispatch.cli", "serve", "--port", str(port), "--no-ingest"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited ({proc.returncode}); see var/bench_intake_server.log")
        try:
            if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    sys.exit("server did not start in 90 s")


async def _login(client: httpx.AsyncClient, role: str) -> dict[str, str]:
    for attempt in range(10):
        try:
            r = await client.post("/api/auth/token",
                                  data={"username": f"bench_{role}", "password": PASSWORD})
            r.raise_for_status()
            return {"Authorization": f"Bearer {r.json()['access_token']}"}
        except httpx.HTTPError:
            if attempt == 9:
                raise
            await asyncio.sleep(1.0)
    raise RuntimeError("unreachable")


async def load(base: str, pts: list[tuple[float, float]], run: str, *, rate: float,
               seconds: float, recommend_every: int, retry_every: int, warmup: int,
               seed: int) -> dict[str, Any]:
    rng = random.Random(seed + 1)
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
    async with httpx.AsyncClient(base_url=base, timeout=30.0, limits=limits) as client:
        ct = await _login(client, "call_taker")
        sv = await _login(client, "supervisor")
        reg_ms: list[float] = []
        reco_ms: list[float] = []
        only_reco_ms: list[float] = []
        answered: dict[str, int] = {}
        retried: dict[str, int] = {}
        errors: list[str] = []

        def body(key: str) -> dict[str, Any]:
            lat, lng = rng.choice(pts)
            return {"lat": lat + rng.uniform(-0.0005, 0.0005),
                    "lng": lng + rng.uniform(-0.0005, 0.0005),
                    "category": rng.choice(CATEGORIES), "caller_phone": "+380671112233",
                    "caller_lang": rng.choice(("uk", "en")), "description": "bench call",
                    "idempotency_key": key}

        async def one(i: int, measure: bool) -> None:
            key = f"bench-{run}-{i}"
            b = body(key)
            t0 = time.perf_counter()
            try:
                r = await client.post("/api/incidents", json=b, headers=ct)
            except httpx.HTTPError as exc:
                errors.append(f"register {i}: {exc!r}")
                return
            t1 = time.perf_counter()
            if r.status_code not in (200, 201):
                errors.append(f"register {i}: {r.status_code} {r.text[:120]}")
                return
            iid = int(r.json()["id"])
            answered[key] = iid
            if measure:
                reg_ms.append((t1 - t0) * 1000)
            if retry_every and i % retry_every == 0:
                try:
                    r2 = await client.post("/api/incidents", json=b, headers=ct)
                except httpx.HTTPError as exc:
                    errors.append(f"retry {i}: {exc!r}")
                else:
                    if r2.status_code in (200, 201):
                        retried[key] = int(r2.json()["id"])
            if recommend_every and i % recommend_every == 0:
                t2 = time.perf_counter()
                try:
                    r3 = await client.post(f"/api/incidents/{iid}/recommend", json={},
                                           headers=sv)
                except httpx.HTTPError as exc:
                    errors.append(f"recommend {i}: {exc!r}")
                    return
                t3 = time.perf_counter()
                if r3.status_code != 200:
                    errors.append(f"recommend {i}: {r3.status_code} {r3.text[:120]}")
                elif measure:
                    reco_ms.append((t3 - t0) * 1000)
                    only_reco_ms.append((t3 - t2) * 1000)

        # warm-up (not measured): connections, caches, the router's first searches
        await asyncio.gather(*(one(-1 - k, False) for k in range(warmup)))
        total = int(rate * seconds)
        tasks = []
        t_start = time.perf_counter()
        for i in range(total):
            due = t_start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, True)))
        send_end = time.perf_counter()
        await asyncio.gather(*tasks)
        t_end = time.perf_counter()
    return {"reg_ms": reg_ms, "reco_ms": reco_ms, "only_reco_ms": only_reco_ms,
            "answered": answered, "retried": retried, "errors": errors, "total": total,
            "elapsed_s": t_end - t_start, "send_s": send_end - t_start}


def count(run: str, answered: dict[str, int], retried: dict[str, int]) -> dict[str, Any]:
    from geodispatch.db import admin_engine
    from geodispatch.incidents.verify import verify_record
    from geodispatch.ledger.sequencer import Sequencer
    from geodispatch.ledger.service import public_key, witnesses
    from geodispatch.ledger.signing import generate_keypair, load_private_key

    settings = get_settings()
    generate_keypair(settings.resolved_log_signing_key, settings.resolved_log_public_key)
    key = public_key(settings)
    adm = admin_engine(settings)
    seq = Sequencer(adm, load_private_key(settings.resolved_log_signing_key),
                    witnesses(settings, key))
    seq.open()
    seq.drain()
    seq.close()
    adm.dispose()
    engine = app_engine(settings)
    with Session(engine) as s:
        rows = s.execute(text("SELECT idempotency_key, id FROM incidents "
                              "WHERE idempotency_key LIKE :p"), {"p": f"bench-{run}-%"}).all()
        found: dict[str, list[int]] = {}
        for k, iid in rows:
            found.setdefault(k, []).append(int(iid))
        lost = sum(1 for k in answered if k not in found)
        duplicated = sum(len(v) - 1 for v in found.values())
        duplicated += sum(1 for k, iid in retried.items() if answered.get(k) != iid)
        t0 = time.perf_counter()
        report = verify_record(session=s, public_key=key, witnesses=witnesses(settings, key))
        verify_s = time.perf_counter() - t0
        s.rollback()
    engine.dispose()
    return {"lost": lost, "duplicated": duplicated, "chain_ok": report.ok,
            "chain_checked": report.events,
            "chain_reason": report.findings[0].what if report.findings else None,
            "verify_s": verify_s, "in_db": len(rows)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crews", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=250.0, help="registrations per second")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--recommend-every", type=int, default=10)
    ap.add_argument("--retry-every", type=int, default=25)
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    t = time.perf_counter()
    pts, run = prepare(args.crews, args.seed)
    print(f"{args.crews} crews live in {time.perf_counter() - t:.1f} s (run {run})")
    port = _free_port()
    proc = start_server(port, anchor_s=5.0)
    try:
        time.sleep(2.0)  # the tracking lifespan loads the fleet; let one refresh pass
        res = asyncio.run(load(f"http://127.0.0.1:{port}", pts, run, rate=args.rate,
                               seconds=args.seconds, recommend_every=args.recommend_every,
                               retry_every=args.retry_every, warmup=args.warmup,
                               seed=args.seed))
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    db = count(run, res["answered"], res["retried"])
    done = len([k for k in res["answered"] if not k.split("-")[-1].startswith("-")
                and int(k.rsplit("-", 1)[1]) >= 0])
    rps = done / res["elapsed_s"]
    rows = [
        ("crews live", f"{args.crews}"),
        ("offered rate", f"{args.rate:.0f}/s for {args.seconds:.0f} s ({res['total']} calls)"),
        ("registrations answered", f"{done} ({len(res['errors'])} errors)"),
        ("sustained rate", f"{rps:.1f}/s (all answered within {res['elapsed_s']:.2f} s)"),
        ("register p50 / p99 / max ms",
         f"{_pct(res['reg_ms'], .5):.1f} / {_pct(res['reg_ms'], .99):.1f} / "
         f"{max(res['reg_ms'] or [0]):.1f}"),
        ("recommend alone p50 / p99 ms",
         f"{_pct(res['only_reco_ms'], .5):.1f} / {_pct(res['only_reco_ms'], .99):.1f}"),
        ("register+recommend p50 / p99 ms (n)",
         f"{_pct(res['reco_ms'], .5):.1f} / {_pct(res['reco_ms'], .99):.1f} "
         f"({len(res['reco_ms'])})"),
        ("retries (same key) answered", f"{len(res['retried'])}"),
        ("incidents in DB for the run", f"{db['in_db']} (incl. warm-up)"),
        ("lost / duplicated", f"{db['lost']} / {db['duplicated']}"),
        ("event chain", f"{'OK' if db['chain_ok'] else 'BROKEN: ' + str(db['chain_reason'])}"
                        f" ({db['chain_checked']} events in {db['verify_s']:.1f} s)"),
    ]
    w = max(len(r[0]) for r in rows)
    print("-" * (w + 40))
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    print("-" * (w + 40))
    for e in res["errors"][:5]:
        print("error:", e)
    print(json.dumps({
        "registrations_per_s": round(rps, 1),
        "register_p99_ms": round(_pct(res["reg_ms"], .99), 1),
        "recommend_p99_ms": round(_pct(res["reco_ms"], .99), 1),
        "lost": db["lost"], "duplicated": db["duplicated"], "chain_ok": db["chain_ok"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
