"""Intake benchmark (not a test): the signed log against the old single-lock chain, over HTTP, and
the speed of verifying a log of 1,000,000 events.

    .venv/bin/python bench/intake.py                          # the full run: about 5 minutes,
                                                              # 9 the first time (it builds the
                                                              # 1,000,000-event log)
    .venv/bin/python bench/intake.py --events 100000 --seconds 10 --ramp 4,32

Needs the compiled road graph (``geodispatch graph import``). Everything runs in databases of its
own on the configured server, created through the admin URL and migrated with
``geodispatch.migrate.upgrade``: ``<db>_bench_intake`` (emptied and migrated again before each
server phase) and ``<db>_bench`` (the large log: built once, reused while it matches this
checkout's keys; ``<db>_bench_<N>`` for ``--events N`` other than 1,000,000).

**Part 1: registrations through uvicorn, the new log and its baseline, with the same load.**

- *log* (issue 12): ``geodispatch serve --no-ingest`` and ``geodispatch log sequence``, both
  subprocesses; requests append events with no global lock, the sequencer seals them a few times
  a second into signed tree heads.
- *baseline, "the old single-lock chain"*: the same server and the same sequencer, but the
  server is started by ``bench/_baseline_server.py``, which wraps
  ``geodispatch.incidents.record.append_event`` so that each appending transaction first takes
  the old chain's one global transaction-scoped advisory lock (``pg_advisory_xact_lock``, the
  old key, held until commit), reads the previous link's hash and inserts
  ``sha256(prev_hash || body)`` into ``bench_baseline_chain`` (a table the bench creates for the
  phase and drops after). That is the serialisation the old ``chain.append_event`` imposed on
  every business transaction. Everything else (the region's reference-counter row lock, the
  event's projected state and canonical body, the queue trigger, the sequencer) is the same code
  in both phases, so the difference between them is the global lock and the chain alone.

Each phase: 5,000 crews made live (bench units at random nodes of the road graph, available,
with a fresh fix), then

a. *saturation*: a closed-loop ramp (``--ramp``: that many clients, each registering back to
   back for ``--ramp-seconds``); the sustained rate is the best level's completed registrations
   per second, counted after the level's first second;
b. *latency*: an open loop at ``--rate`` (100/s) for ``--seconds``; every ``--recommend-every``-th
   registration is followed at once by a recommendation ("register + recommend" is from sending
   the registration to receiving the ranking); every ``--retry-every``-th key is sent twice;
c. the server is stopped, the sequencer drains the queue and is stopped, and the database is
   counted: every key answered 2xx must be exactly one incident (lost = answered but absent;
   duplicated = more than one incident for a key, or a retry answered with another incident);
   the record is verified (``verify_record``, with the tree-head file as witness); the
   baseline's chain is recomputed link by link.

**Part 2: verification speed.** A log of ``--events`` events (default 1,000,000: one fifth as
many incidents, each registered, assigned, en route, on scene and closed, with its assignment
row; written with ``append_many`` in blocks and sealed by the ``Sequencer`` in batches of 5,000,
as the sequencer seals under load). Timed: ``verify_record`` over the database; the export
(``geodispatch log export``) and the standalone verifier over it (``verify_export``, as
``geodispatch verify-log --export``); inclusion proofs of ``--proofs`` random events from the tree
in memory (as the sequencer holds it: build the audit path and check it against the signed
root), and a few through ``ledger.service.inclusion``, which loads the tree from the database
per call.

The load generator runs on the same machine as the server and PostgreSQL; the 1-minute load
average (``os.getloadavg()``) is sampled at the start and end of every part and reported. Prints a
table and, last, one JSON line (keys of ../shared/BENCH.md plus extras).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from geodispatch.db import admin_engine, app_engine  # noqa: E402
from geodispatch.migrate import alembic_config  # noqa: E402
from geodispatch.settings import Settings, get_settings  # noqa: E402

PASSWORD = "bench-intake-password"
CATEGORIES = ("theft", "robbery", "assault", "disturbance", "traffic_accident", "alarm")
BASELINE_TABLE = "bench_baseline_chain"
VAR = ROOT / "var" / "bench"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def _r(x: float, nd: int = 1) -> float | None:
    return None if x != x else round(x, nd)  # NaN -> null in the JSON line


# --- databases of the bench ---------------------------------------------------------------------

def bench_settings(suffix: str) -> Settings:
    """The configured settings pointed at the database ``<configured name><suffix>``."""
    base = get_settings()

    def url(u: str) -> str:
        parsed = make_url(u)
        return parsed.set(database=(parsed.database or "geodispatch") + suffix).render_as_string(
            hide_password=False)

    return base.model_copy(update={"database_url": url(base.database_url),
                                   "admin_database_url": url(base.admin_database_url),
                                   "log_tree_head_file": None})


def bench_env(s: Settings) -> dict[str, str]:
    """Environment for subprocesses (server, sequencer) that use ``s``'s database."""
    return {**os.environ, "GEODISPATCH_DATABASE_URL": s.database_url,
            "GEODISPATCH_ADMIN_DATABASE_URL": s.admin_database_url,
            "GEODISPATCH_SERVE_INGEST": "false", "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def ensure_database(s: Settings, *, empty: bool) -> None:
    """Create the bench database if missing (and empty it if asked), then migrate it to head."""
    from geodispatch.migrate import upgrade

    name = make_url(s.admin_database_url).database
    root = create_engine(get_settings().admin_database_url, isolation_level="AUTOCOMMIT")
    try:
        with root.connect() as conn:
            if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                            {"n": name}).scalar() is None:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        root.dispose()
    eng = create_engine(s.admin_database_url, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as conn:
            if empty:
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = current_database() "
                                  "AND pid <> pg_backend_pid()"))
                conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
                conn.execute(text("GRANT USAGE ON SCHEMA public TO PUBLIC"))
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    finally:
        eng.dispose()
    if empty:
        s.resolved_log_tree_head_file.unlink(missing_ok=True)
    upgrade(s)


def log_keys(s: Settings) -> None:
    from geodispatch.ledger.signing import generate_keypair

    generate_keypair(s.resolved_log_signing_key, s.resolved_log_public_key)


# --- part 1: through uvicorn ---------------------------------------------------------------------

def prepare_crews(s: Settings, n_crews: int, seed: int) -> list[tuple[float, float]]:
    """Make ``n_crews`` bench crews live on the graph; return graph node points."""
    from geodispatch.routing.engine import load_router
    from geodispatch.users.service import upsert_user

    router = load_router(s)
    if router is None:
        sys.exit("no road graph: run `geodispatch graph import` first")
    g = router.graph
    rng = random.Random(seed)
    nodes = [rng.randrange(g.n_nodes) for _ in range(n_crews)]
    pts = [(float(g.node_lat[i]), float(g.node_lng[i])) for i in nodes]
    engine = app_engine(s)
    with Session(engine) as session, session.begin():
        mix = ([("patrol_car", ["patrol"])] * 8
               + [("rapid_response", ["patrol", "armed_response"])] + [("foot_patrol", ["foot"])])
        ids = []
        for k in range(n_crews):
            kind, caps = mix[k % len(mix)]
            ids.append(session.execute(text(
                "INSERT INTO units (call_sign, kind, capabilities, region, status,"
                " status_changed_at, device_id, device_token_hash, active)"
                " VALUES (:cs, :k, :c, :r, 'available', now(), :cs, 'bench-no-login', true)"
                " ON CONFLICT (call_sign) DO UPDATE SET status = 'available', active = true"
                " RETURNING id"),
                {"cs": f"BENCH-{k}", "k": kind, "c": caps, "r": s.default_region}
            ).scalar_one())
        session.execute(text(
            "INSERT INTO unit_latest (unit_id, fix_time, received_at, geom, h3, online)"
            " SELECT u, clock_timestamp(), clock_timestamp(),"
            "  ST_SetSRID(ST_MakePoint(lng, lat), 4326), 0, true"
            " FROM unnest(CAST(:u AS int[]), CAST(:lat AS float8[]), CAST(:lng AS float8[]))"
            "  AS t(u, lat, lng)"
            " ON CONFLICT (unit_id) DO UPDATE SET fix_time = EXCLUDED.fix_time,"
            "  received_at = EXCLUDED.received_at, geom = EXCLUDED.geom, online = true"),
            {"u": ids, "lat": [p[0] for p in pts], "lng": [p[1] for p in pts]})
        for role in ("call_taker", "supervisor"):
            upsert_user(session=session, username=f"bench_{role}", password=PASSWORD, role=role,
                        region=None)
    engine.dispose()
    return pts


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_process(cmd: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
    VAR.mkdir(parents=True, exist_ok=True)
    out = open(VAR / log_name, "wb")  # noqa: SIM115  (kept open by the child)
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=str(ROOT),
                            start_new_session=True)


def wait_http(proc: subprocess.Popen[bytes], base: str, log_name: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited ({proc.returncode}); see {VAR / log_name}")
        try:
            if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_process(proc)
    sys.exit("server did not start in 90 s")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


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


@dataclass
class Load:
    """What the client saw in one server phase."""

    answered: dict[str, int] = field(default_factory=dict)
    retried: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    ramp: list[dict[str, Any]] = field(default_factory=list)
    reg_ms: list[float] = field(default_factory=list)
    reco_ms: list[float] = field(default_factory=list)
    only_reco_ms: list[float] = field(default_factory=list)
    offered: int = 0
    open_elapsed_s: float = 0.0
    open_answered: int = 0


async def drive(base: str, pts: list[tuple[float, float]], run: str, args: argparse.Namespace
                ) -> Load:
    rng = random.Random(args.seed + 1)
    levels = [int(x) for x in args.ramp.split(",") if x.strip()]
    conns = max([128, *levels]) + 8
    limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
    out = Load()
    async with httpx.AsyncClient(base_url=base, timeout=60.0, limits=limits) as client:
        ct = await _login(client, "call_taker")
        sv = await _login(client, "supervisor")

        def body(key: str) -> dict[str, Any]:
            lat, lng = rng.choice(pts)
            return {"lat": lat + rng.uniform(-0.0005, 0.0005),
                    "lng": lng + rng.uniform(-0.0005, 0.0005),
                    "category": rng.choice(CATEGORIES), "caller_phone": "+380671112233",
                    "caller_lang": rng.choice(("uk", "en")), "description": "bench call",
                    "idempotency_key": key}

        async def register(key: str) -> tuple[int | None, dict[str, Any], float]:
            b = body(key)
            t0 = time.perf_counter()
            try:
                r = await client.post("/api/incidents", json=b, headers=ct)
            except httpx.HTTPError as exc:
                out.errors.append(f"register {key}: {exc!r}")
                return None, b, t0
            if r.status_code not in (200, 201):
                out.errors.append(f"register {key}: {r.status_code} {r.text[:120]}")
                return None, b, t0
            iid = int(r.json()["id"])
            out.answered[key] = iid
            return iid, b, t0

        # warm-up (not measured): connections, caches, the router's first searches
        await asyncio.gather(*(register(f"bench-{run}-warm-{k}") for k in range(args.warmup)))

        # a. saturation: closed-loop levels
        async def worker(w: int, level: int, counted_from: float, t_end: float,
                         done: list[float], lat: list[float]) -> None:
            k = 0
            while time.perf_counter() < t_end:
                k += 1
                iid, _b, t0 = await register(f"bench-{run}-sat{level}-{w}-{k}")
                t1 = time.perf_counter()
                if iid is not None and counted_from <= t1 <= t_end:
                    done.append(t1)
                    lat.append((t1 - t0) * 1000)

        for level in levels:
            t_start = time.perf_counter()
            t_end = t_start + args.ramp_seconds
            counted_from = t_start + min(1.0, args.ramp_seconds / 4)
            done: list[float] = []
            lat: list[float] = []
            await asyncio.gather(*(worker(w, level, counted_from, t_end, done, lat)
                                   for w in range(level)))
            window = t_end - counted_from
            out.ramp.append({"clients": level, "per_s": len(done) / window,
                             "p50_ms": _pct(lat, .5), "p99_ms": _pct(lat, .99)})
            log(f"  {level} clients: {len(done) / window:.1f} registrations/s, "
                f"p99 {_pct(lat, .99):.0f} ms")

        # b. latency: open loop at the offered rate
        async def one(i: int) -> None:
            key = f"bench-{run}-open-{i}"
            iid, b, t0 = await register(key)
            t1 = time.perf_counter()
            if iid is None:
                return
            out.reg_ms.append((t1 - t0) * 1000)
            if args.retry_every and i % args.retry_every == 0:
                try:
                    r2 = await client.post("/api/incidents", json=b, headers=ct)
                except httpx.HTTPError as exc:
                    out.errors.append(f"retry {i}: {exc!r}")
                else:
                    if r2.status_code in (200, 201):
                        out.retried[key] = int(r2.json()["id"])
                    else:
                        out.errors.append(f"retry {i}: {r2.status_code} {r2.text[:120]}")
            if args.recommend_every and i % args.recommend_every == 0:
                t2 = time.perf_counter()
                try:
                    r3 = await client.post(f"/api/incidents/{iid}/recommend", json={},
                                           headers=sv)
                except httpx.HTTPError as exc:
                    out.errors.append(f"recommend {i}: {exc!r}")
                    return
                t3 = time.perf_counter()
                if r3.status_code != 200:
                    out.errors.append(f"recommend {i}: {r3.status_code} {r3.text[:120]}")
                else:
                    out.reco_ms.append((t3 - t0) * 1000)
                    out.only_reco_ms.append((t3 - t2) * 1000)

        total = int(args.rate * args.seconds)
        tasks = []
        t_start = time.perf_counter()
        for i in range(total):
            delay = t_start + i / args.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        out.open_elapsed_s = time.perf_counter() - t_start
        out.offered = total
        out.open_answered = sum(1 for k in out.answered if "-open-" in k)
    return out


def wait_sealed(s: Settings, timeout: float = 180.0) -> int:
    """Wait until the sequencer has sealed every queued event; the number still queued."""
    eng = app_engine(s)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with eng.connect() as conn:
                left = int(conn.execute(text("SELECT count(*) FROM log_pending")).scalar_one())
            if left == 0 or time.monotonic() > deadline:
                return left
            time.sleep(0.25)
    finally:
        eng.dispose()


def count(s: Settings, run: str, load: Load, *, baseline: bool) -> dict[str, Any]:
    from geodispatch.incidents.verify import verify_record
    from geodispatch.ledger.service import public_key, witnesses

    key = public_key(s)
    engine = app_engine(s)
    out: dict[str, Any] = {}
    with Session(engine) as session:
        rows = session.execute(text("SELECT idempotency_key, id FROM incidents "
                                    "WHERE idempotency_key LIKE :p"),
                               {"p": f"bench-{run}-%"}).all()
        found: dict[str, list[int]] = {}
        for k, iid in rows:
            found.setdefault(k, []).append(int(iid))
        out["lost"] = sum(1 for k in load.answered if k not in found)
        dup = sum(len(v) - 1 for v in found.values())
        dup += sum(1 for k, iid in load.retried.items() if load.answered.get(k) != iid)
        out["duplicated"] = dup
        out["in_db"] = len(rows)
        t0 = time.perf_counter()
        report = verify_record(session=session, public_key=key, witnesses=witnesses(s, key))
        out["verify_s"] = time.perf_counter() - t0
        out["chain_ok"] = report.ok
        out["events"] = report.events
        out["sealed"] = report.sealed
        out["chain_reason"] = report.findings[0].what if report.findings else None
        if baseline:
            out["baseline_chain_ok"], out["baseline_links"] = _check_baseline_chain(session)
        session.rollback()
    engine.dispose()
    return out


def _check_baseline_chain(session: Session) -> tuple[bool, int]:
    """Recompute the baseline's chain link by link, as the old ``verify_chain`` did."""
    prev = "0" * 64
    n = 0
    ok = True
    for p, h, body in session.execute(text(
            f"SELECT c.prev_hash, c.hash, e.body FROM {BASELINE_TABLE} c "
            "JOIN incident_events e ON e.id = c.event_id ORDER BY c.id")):
        if p != prev or hashlib.sha256(prev.encode("ascii") + bytes(body)).hexdigest() != h:
            ok = False
        prev = h
        n += 1
    events = session.execute(text("SELECT count(*) FROM incident_events")).scalar_one()
    return ok and n == events, n


class LockWaits(threading.Thread):
    """Samples, every 50 ms, which statements of the bench database wait on a lock (evidence of
    what serialises registrations: a row lock, the baseline's advisory lock ...)."""

    def __init__(self, s: Settings) -> None:
        super().__init__(daemon=True)
        self.engine = create_engine(s.admin_database_url, isolation_level="AUTOCOMMIT")
        self.stop = threading.Event()
        self.samples = 0
        self.waits: Counter[tuple[str, str]] = Counter()
        self.active = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with self.engine.connect() as conn:
                    while not self.stop.wait(0.05):
                        rows = conn.execute(text(
                            "SELECT coalesce(wait_event_type, ''), coalesce(wait_event, ''), "
                            "regexp_replace(left(query, 70), '\\s+', ' ', 'g') "
                            "FROM pg_stat_activity WHERE datname = current_database() "
                            "AND state = 'active' AND pid <> pg_backend_pid()")).all()
                        self.samples += 1
                        self.active += len(rows)
                        for kind, event, query in rows:
                            if kind == "Lock":
                                self.waits[(event, query)] += 1
            except Exception as exc:  # noqa: BLE001  (a sampler must not end the run)
                log(f"lock sampler: {exc!r}"[:160] + "; retrying")
                self.stop.wait(1.0)
        self.engine.dispose()

    def summary(self) -> dict[str, Any]:
        n = max(self.samples, 1)
        top = self.waits.most_common(1)
        return {"active": self.active / n, "waiting": sum(self.waits.values()) / n,
                "top": (f"{top[0][0][0]}: {top[0][0][1]}" if top else None),
                "top_share": (top[0][1] / max(sum(self.waits.values()), 1) if top else 0.0)}


def server_phase(label: str, s: Settings, args: argparse.Namespace, *, baseline: bool
                 ) -> dict[str, Any]:
    log(f"{label}: emptying and migrating {make_url(s.admin_database_url).database}")
    ensure_database(s, empty=True)
    if baseline:
        from _baseline_server import CREATE_SQL  # type: ignore[import-not-found]

        eng = admin_engine(s)
        with eng.begin() as conn:
            conn.execute(text(CREATE_SQL))
            conn.execute(text(f"GRANT SELECT, INSERT ON {BASELINE_TABLE} TO {s.app_db_role}"))
            conn.execute(text(f"GRANT USAGE ON SEQUENCE {BASELINE_TABLE}_id_seq "
                              f"TO {s.app_db_role}"))
        eng.dispose()
    t = time.perf_counter()
    pts = prepare_crews(s, args.crews, args.seed)
    log(f"{label}: {args.crews} crews live in {time.perf_counter() - t:.1f} s")
    env = bench_env(s)
    run = uuid.uuid4().hex[:10]
    seq = start_process([sys.executable, "-m", "geodispatch.cli", "log", "sequence"], env,
                        f"intake_{label}_sequencer.log")
    port = _free_port()
    cmd = ([sys.executable, str(ROOT / "bench" / "_baseline_server.py")] if baseline
           else [sys.executable, "-m", "geodispatch.cli"])
    server_log = f"intake_{label}_server.log"
    srv = start_process(cmd + ["serve", "--port", str(port), "--no-ingest"], env, server_log)
    load_before = loadavg()
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(srv, base, server_log)
        time.sleep(2.0)  # the tracking lifespan loads the fleet; let one refresh pass
        cpu0, wall0, own0 = _cpu_s(srv.pid), time.perf_counter(), time.process_time()
        sampler = LockWaits(s)
        sampler.start()
        try:
            load = asyncio.run(drive(base, pts, run, args))
        finally:
            sampler.stop.set()
            sampler.join(10)
        wall = time.perf_counter() - wall0
        server_cpu = (_cpu_s(srv.pid) - cpu0) / wall
        client_cpu = (time.process_time() - own0) / wall
    finally:
        stop_process(srv)
    load_after = loadavg()
    left = wait_sealed(s)
    stop_process(seq)
    if seq.returncode not in (0, -signal.SIGINT):
        log(f"{label}: sequencer exited {seq.returncode}; see {VAR}/intake_{label}_sequencer.log")
    db = count(s, run, load, baseline=baseline)
    db["unsealed_after_drain"] = left
    if baseline:
        eng = admin_engine(s)
        with eng.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {BASELINE_TABLE}"))
        eng.dispose()
    best = max(load.ramp, key=lambda r: r["per_s"]) if load.ramp else None
    return {"label": label, "load": load, "db": db, "best": best, "locks": sampler.summary(),
            "load_avg": (load_before, load_after), "server_cpu": server_cpu,
            "client_cpu": client_cpu}


# --- part 2: verification speed ------------------------------------------------------------------

EVENTS_PER_INCIDENT = 5  # registered, assigned, en_route, on_scene, closed
BLOCK = 5000  # incidents written (and then sealed) together


def _pepper_id(s: Settings) -> str:
    return hashlib.sha256(s.resolved_record_pepper.read_bytes()).hexdigest()[:16]


def _log_target(s: Settings, n_events: int) -> dict[str, str]:
    """What a reusable bench log must have been built with."""
    from geodispatch.ledger.service import public_key
    from geodispatch.ledger.signing import log_id

    schema = ScriptDirectory.from_config(alembic_config(s.admin_database_url)).get_current_head()
    return {"events": str(n_events), "log_id": log_id(public_key(s)), "pepper": _pepper_id(s),
            "layout": "blocks-2", "schema": str(schema)}


def _log_matches(s: Settings, n_events: int) -> str | None:
    """Why the bench log in ``s``'s database cannot be reused (None if it can)."""

    try:
        eng = admin_engine(s)
        with eng.connect() as conn:
            meta = dict(conn.execute(text("SELECT key, value FROM bench_meta")).all())
            leaves = conn.execute(text("SELECT count(*) FROM log_leaves")).scalar_one()
            pending = conn.execute(text("SELECT count(*) FROM log_pending")).scalar_one()
        eng.dispose()
    except Exception as exc:  # noqa: BLE001  (no database, no table: build it)
        return f"no bench log yet ({type(exc).__name__})"
    for k, v in {**_log_target(s, n_events), "complete": "yes"}.items():
        if meta.get(k) != v:
            return f"bench log built with another {k}"
    if leaves != n_events or pending:
        return f"bench log holds {leaves} leaves and {pending} queued events"
    if not s.resolved_log_tree_head_file.exists():
        return "its tree-head file is gone"
    return None


def build_log(s: Settings, n_events: int, seed: int) -> float:
    """Write and seal a log of exactly ``n_events`` events; the seconds it took.

    Each block of incidents (all five of its rounds) is one transaction, sealed right after, so
    a build cut short (this machine's PostgreSQL is restarted by other work now and then) goes
    on from the last whole block when it is started again.
    """
    from geodispatch.incidents.record import append_many
    from geodispatch.ledger.service import centre_sequencer

    t0 = time.perf_counter()
    target = _log_target(s, n_events)
    eng = admin_engine(s)
    try:
        with eng.connect() as conn:
            meta = dict(conn.execute(text("SELECT key, value FROM bench_meta")).all())
    except Exception:  # noqa: BLE001  (no database or no table yet)
        meta = {}
    eng.dispose()
    resume = all(meta.get(k) == v for k, v in target.items())
    if not resume:
        ensure_database(s, empty=True)
    eng = admin_engine(s)
    with eng.begin() as conn:
        if not resume:
            conn.execute(text("CREATE TABLE bench_meta (key text PRIMARY KEY, value text)"))
            for k, v in target.items():
                conn.execute(text("INSERT INTO bench_meta VALUES (:k, :v)"), {"k": k, "v": v})
            conn.execute(text(
                "INSERT INTO units (call_sign, kind, capabilities, region, status, device_id, "
                "device_token_hash, active) SELECT 'V-' || g, 'patrol_car', ARRAY['patrol'], :r, "
                "'available', 'v-' || g, 'bench-no-login', true FROM generate_series(1, 500) g"),
                {"r": s.default_region})
        units = [int(u) for u in conn.execute(text("SELECT id FROM units ORDER BY id")).scalars()]
        made = int(conn.execute(text("SELECT count(*) FROM incidents")).scalar_one())
    if resume:
        log(f"  resuming after {made:,} incidents")
    seq = centre_sequencer(s, eng)
    seq.open()
    seq.drain()  # whatever a cut-short run committed but did not seal
    n_incidents = -(-n_events // EVENTS_PER_INCIDENT)
    last_events = n_events - (n_incidents - 1) * EVENTS_PER_INCIDENT  # the last one's share
    year = 2026
    start = datetime(2026, 3, 1, tzinfo=UTC)
    rounds = [
        ("assigned", "INSERT INTO assignments (incident_id, unit_id, status, is_lead, "
         "was_recommended, eta_s, distance_m, created_by, recommended_at, dispatched_at) "
         "SELECT i, u, 'dispatched', true, true, e, e * 8.5, 'd1', :t, :t "
         "FROM unnest(CAST(:ids AS int[]), CAST(:units AS int[]), CAST(:eta AS float8[])) "
         "AS x(i, u, e); UPDATE incidents SET status = 'assigned' WHERE id = ANY(:ids)"),
        ("en_route", "UPDATE assignments SET status = 'en_route', acknowledged_at = :t, "
         "en_route_at = :t WHERE incident_id = ANY(:ids); "
         "UPDATE incidents SET status = 'en_route' WHERE id = ANY(:ids)"),
        ("on_scene", "UPDATE assignments SET status = 'on_scene', on_scene_at = :t "
         "WHERE incident_id = ANY(:ids); "
         "UPDATE incidents SET status = 'on_scene' WHERE id = ANY(:ids)"),
        ("closed", "UPDATE assignments SET status = 'cleared', cleared_at = :t "
         "WHERE incident_id = ANY(:ids); UPDATE incidents SET status = 'closed', "
         "closed_at = :t, disposition = 'RPT' WHERE id = ANY(:ids)"),
    ]
    try:
        while made < n_incidents:
            k = min(BLOCK, n_incidents - made)
            rng = random.Random(seed * 1_000_003 + made)
            t_block = start + timedelta(minutes=made)
            with Session(eng) as session, session.begin():
                ids = [int(i) for i in session.execute(text(
                    "INSERT INTO incidents (reference, region, received_at, registered_at, "
                    " caller_phone, caller_lang, sms_opt_out, location, h3, address, category, "
                    " original_category, priority, status, description, created_by, source, "
                    " event_count) "
                    "SELECT :r || '-' || :y || '-' || lpad((:ref + g)::text, 6, '0'), :r, "
                    " :t + g * interval '1 second', :t + g * interval '1 second' "
                    "  + interval '20 seconds', '+380671112233', 'uk', false, "
                    " ST_SetSRID(ST_MakePoint(30.40 + random() * 0.25, "
                    "  50.38 + random() * 0.15), 4326), 617700000000000000 + :ref + g, "
                    " 'вул. Хрещатик, ' || g, (ARRAY['theft','robbery','assault',"
                    "  'disturbance','traffic_accident','alarm'])[1 + g % 6], "
                    " (ARRAY['theft','robbery','assault','disturbance','traffic_accident',"
                    "  'alarm'])[1 + g % 6], 1 + g % 4, 'queued', "
                    " 'bench call ' || g || ': caller reports a disturbance near the entrance', "
                    " 'ct' || (g % 40), 'call', 0 "
                    "FROM generate_series(1, :k) g ORDER BY g RETURNING id"),
                    {"r": s.default_region, "y": str(year), "ref": made, "t": t_block, "k": k}
                ).scalars()]
                append_many(session=session, kind="registered", actor="ct1", at=t_block,
                            events=[(i, {"source": "call", "has_phone": True,
                                         "set": {"status": "queued"}}) for i in ids])
                units_of = [rng.choice(units) for _ in ids]
                for r_no, (kind, sql) in enumerate(rounds, 2):
                    # The last incident may carry fewer events: the log holds exactly n_events.
                    take = [i for j, i in enumerate(ids)
                            if made + j < n_incidents - 1 or r_no <= last_events]
                    if not take:
                        continue
                    when = t_block + timedelta(minutes=r_no * 3)
                    for stmt in sql.split("; "):
                        session.execute(text(stmt), {
                            "ids": take, "t": when, "units": units_of[:len(take)],
                            "eta": [round(rng.uniform(60, 900), 1) for _ in take]})
                    append_many(session=session, kind=kind, actor="d1", at=when,
                                events=[(i, {"unit": f"V-{u}"} if kind == "assigned" else {})
                                        for i, u in zip(take, units_of, strict=False)])
                session.execute(text(
                    "INSERT INTO reference_counters (region, year, last) VALUES (:r, :y, :n) "
                    "ON CONFLICT (region, year) DO UPDATE SET last = EXCLUDED.last"),
                    {"r": s.default_region, "y": year, "n": made + k})
            seq.drain()
            made += k
            log(f"  built {seq.tree.size:,} of {n_events:,} events "
                f"({time.perf_counter() - t0:.0f} s)")
    finally:
        seq.close()
    with eng.begin() as conn:
        conn.execute(text("INSERT INTO bench_meta VALUES ('complete', 'yes') "
                          "ON CONFLICT (key) DO UPDATE SET value = 'yes'"))
        conn.execute(text("ANALYZE"))
    eng.dispose()
    return time.perf_counter() - t0


def verify_phase(args: argparse.Namespace) -> dict[str, Any]:
    from geodispatch.incidents.verify import verify_record
    from geodispatch.ledger.merkle import verify_inclusion
    from geodispatch.ledger.offline import verify_export
    from geodispatch.ledger.sequencer import load_tree
    from geodispatch.ledger.service import (
        export_lines,
        inclusion,
        newest_head,
        public_key,
        witnesses,
    )

    n = args.events
    s = bench_settings("_bench" if n == 1_000_000 else f"_bench_{n}")
    name = make_url(s.admin_database_url).database
    out: dict[str, Any] = {"database": name, "load_start": loadavg()}
    why = _log_matches(s, n)
    if why is None:
        log(f"verification: reusing the {n:,}-event log in {name}")
        out["built_s"] = None
    else:
        log(f"verification: building a {n:,}-event log in {name} ({why})")
        for attempt in range(1, 6):
            try:
                out["built_s"] = build_log(s, n, args.seed)
                break
            except OperationalError as exc:  # the server restarted under us: go on from there
                if attempt == 5:
                    raise
                log(f"  build interrupted ({str(exc.orig or exc).strip()[:80]}); "
                    "resuming in 10 s")
                time.sleep(10)
    key = public_key(s)
    engine = app_engine(s)
    with Session(engine) as session:
        log("verification: verify_record over the database")
        t0 = time.perf_counter()
        report = verify_record(session=session, public_key=key, witnesses=witnesses(s, key))
        out["verify_s"] = time.perf_counter() - t0
        out["verify_ok"] = report.ok
        out["verify_events"] = report.events
        out["verify_heads"] = report.heads_checked
        out["verify_findings"] = [f.what for f in report.findings[:3]]
        session.rollback()

        export = VAR / f"log-export-{n}.jsonl"
        VAR.mkdir(parents=True, exist_ok=True)
        log(f"verification: exporting to {export}")
        t0 = time.perf_counter()
        with export.open("wb") as fh:
            buf: list[bytes] = []
            for line in export_lines(session=session, key=key):
                buf.append(line)
                if len(buf) >= 10000:
                    fh.write(b"".join(buf))
                    buf.clear()
            fh.write(b"".join(buf))
        out["export_s"] = time.perf_counter() - t0
        out["export_mb"] = export.stat().st_size / 1e6
        session.rollback()

        log("verification: the standalone verifier over the export")
        t0 = time.perf_counter()
        rep = verify_export(export, s.resolved_log_public_key)
        out["offline_s"] = time.perf_counter() - t0
        out["offline_ok"] = rep.ok
        out["offline_events"] = rep.events
        out["offline_problems"] = rep.problems[:3]

        log("verification: inclusion proofs")
        head = newest_head(session)
        assert head is not None
        t0 = time.perf_counter()
        tree = load_tree(session.connection())
        out["tree_load_s"] = time.perf_counter() - t0
        root = bytes.fromhex(head.root_hash)
        size = head.tree_size
        rng = random.Random(args.seed + 2)
        picks = [rng.randrange(size) for _ in range(args.proofs)]
        times: list[float] = []
        bad = 0
        for i in picks:
            t1 = time.perf_counter()
            proof = tree.inclusion_proof(i, size)
            ok = verify_inclusion(tree.levels[0][i], i, size, proof, root)
            times.append((time.perf_counter() - t1) * 1000)
            bad += not ok
        out["proof_ms_p50"] = statistics.median(times)
        out["proof_ms_p99"] = _pct(times, .99)
        out["proofs_bad"] = bad
        out["proof_len"] = len(tree.inclusion_proof(picks[0], size))
        ids = [int(x) for x in session.execute(text(
            "SELECT event_id FROM log_leaves WHERE seq = ANY(:s)"),
            {"s": picks[:args.db_proofs]}).scalars()]
        db_times = []
        for eid in ids:
            t1 = time.perf_counter()
            p = inclusion(session=session, event_id=eid)
            ok = verify_inclusion(tree.levels[0][int(p["seq"])], int(p["seq"]),
                                  int(p["tree_head"]["tree_size"]),  # type: ignore[index]
                                  [bytes.fromhex(x) for x in p["proof"]],  # type: ignore[attr-defined]
                                  bytes.fromhex(p["tree_head"]["root_hash"]))  # type: ignore[index]
            db_times.append((time.perf_counter() - t1) * 1000)
            bad += not ok
        out["db_proof_ms_p50"] = statistics.median(db_times) if db_times else float("nan")
        out["proofs_bad"] = bad
        session.rollback()
    engine.dispose()
    if not args.keep_export:
        export.unlink(missing_ok=True)
    out["load_end"] = loadavg()
    return out


# --- the run -------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--crews", type=int, default=5000)
    ap.add_argument("--ramp", default="4,16,64",
                    help="closed-loop client counts of the saturation ramp")
    ap.add_argument("--ramp-seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=100.0, help="open-loop registrations/s")
    ap.add_argument("--seconds", type=float, default=20.0, help="open-loop duration")
    ap.add_argument("--recommend-every", type=int, default=10)
    ap.add_argument("--retry-every", type=int, default=25)
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--events", type=int, default=1_000_000, help="events in the verified log")
    ap.add_argument("--proofs", type=int, default=2000, help="inclusion proofs timed")
    ap.add_argument("--db-proofs", type=int, default=5,
                    help="inclusion proofs through ledger.service.inclusion (loads the tree)")
    ap.add_argument("--keep-export", action="store_true", help="keep var/bench/log-export-N")
    ap.add_argument("--skip", choices=("none", "http", "verify"), default="none",
                    help="leave out a part (for development)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    started = loadavg()
    s_intake = bench_settings("_bench_intake")
    log_keys(s_intake)
    phases: dict[str, dict[str, Any]] = {}
    if args.skip != "http":
        phases["baseline"] = server_phase("baseline", s_intake, args, baseline=True)
        phases["log"] = server_phase("log", s_intake, args, baseline=False)
    ver = verify_phase(args) if args.skip != "verify" else None

    rows: list[tuple[str, str]] = [("load average (1 min) at start", f"{started:.2f}")]
    result: dict[str, Any] = {}
    for label, ph in phases.items():
        load, db, best = ph["load"], ph["db"], ph["best"]
        name = "old single-lock chain" if label == "baseline" else "signed log (issue 12)"
        rows.append((f"== {name}", ""))
        for r in load.ramp:
            rows.append((f"  saturation, {r['clients']} clients",
                         f"{r['per_s']:.1f}/s (p50 {r['p50_ms']:.0f} / p99 {r['p99_ms']:.0f} ms)"))
        rows += [
            ("  sustained registrations", f"{best['per_s']:.1f}/s" if best else "n/a"),
            (f"  open loop {args.rate:.0f}/s offered",
             f"{load.open_answered}/{load.offered} answered in {load.open_elapsed_s:.1f} s "
             f"({len(load.errors)} errors)"),
            ("  register p50 / p99 / max ms",
             f"{_pct(load.reg_ms, .5):.1f} / {_pct(load.reg_ms, .99):.1f} / "
             f"{max(load.reg_ms or [float('nan')]):.1f}"),
            ("  recommend alone p50 / p99 ms",
             f"{_pct(load.only_reco_ms, .5):.1f} / {_pct(load.only_reco_ms, .99):.1f}"),
            ("  register+recommend p50 / p99 ms (n)",
             f"{_pct(load.reco_ms, .5):.1f} / {_pct(load.reco_ms, .99):.1f} "
             f"({len(load.reco_ms)})"),
            ("  lost / duplicated", f"{db['lost']} / {db['duplicated']} "
                                    f"({len(load.answered)} answered, {db['in_db']} in DB, "
                                    f"{len(load.retried)} retries)"),
            ("  record verified after the sequencer drained",
             f"{'OK' if db['chain_ok'] else 'BROKEN: ' + str(db['chain_reason'])} "
             f"({db['events']} events, {db['sealed']} sealed, {db['verify_s']:.1f} s)"),
        ]
        if label == "baseline":
            rows.append(("  baseline chain recomputed",
                         f"{'OK' if db['baseline_chain_ok'] else 'BROKEN'} "
                         f"({db['baseline_links']} links)"))
        lk = ph["locks"]
        rows.append(("  statements active / waiting on a lock (mean)",
                     f"{lk['active']:.1f} / {lk['waiting']:.1f}"))
        if lk["top"]:
            rows.append(("  most waited-on", f"{lk['top_share']:.0%} {lk['top']}"[:110]))
        rows.append(("  CPU: server / load generator",
                     f"{ph['server_cpu']:.0%} / {ph['client_cpu']:.0%} of one core"))
        before, after = ph["load_avg"]
        rows.append(("  load average (1 min) before / after", f"{before:.2f} / {after:.2f}"))
        for e in load.errors[:3]:
            rows.append(("  error", e[:100]))
    if ver is not None:
        n_ev = ver["verify_events"]
        rows += [
            (f"== verification of {args.events:,} events", f"({ver['database']})"),
            ("  log built", "reused" if ver["built_s"] is None else f"{ver['built_s']:.0f} s"),
            ("  verify_record (database)",
             f"{'OK' if ver['verify_ok'] else 'FAILED ' + str(ver['verify_findings'])}: "
             f"{n_ev:,} events in {ver['verify_s']:.1f} s = {n_ev / ver['verify_s']:,.0f}/s "
             f"({ver['verify_heads']} heads)"),
            ("  export", f"{ver['export_mb']:.0f} MB in {ver['export_s']:.1f} s"),
            ("  standalone verifier (export)",
             f"{'OK' if ver['offline_ok'] else 'FAILED ' + str(ver['offline_problems'])}: "
             f"{ver['offline_events']:,} events in {ver['offline_s']:.1f} s = "
             f"{ver['offline_events'] / ver['offline_s']:,.0f}/s"),
            ("  inclusion proof, tree in memory p50 / p99",
             f"{ver['proof_ms_p50']:.3f} / {ver['proof_ms_p99']:.3f} ms "
             f"({args.proofs} random events, {ver['proof_len']} hashes, "
             f"{ver['proofs_bad']} failed)"),
            ("  tree load from the database", f"{ver['tree_load_s']:.2f} s"),
            ("  inclusion proof via ledger.service (loads the tree)",
             f"{ver['db_proof_ms_p50']:.0f} ms median"),
            ("  load average (1 min) start / end",
             f"{ver['load_start']:.2f} / {ver['load_end']:.2f}"),
        ]
    ended = loadavg()
    rows.append(("load average (1 min) at end", f"{ended:.2f}"))
    w = max(len(r[0]) for r in rows)
    print("-" * (w + 60))
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    print("-" * (w + 60))

    new, old = phases.get("log"), phases.get("baseline")
    if new:
        result.update({
            "registrations_per_s": _r(new["best"]["per_s"]) if new["best"] else None,
            "register_p99_ms": _r(_pct(new["load"].reg_ms, .99)),
            "recommend_p99_ms": _r(_pct(new["load"].reco_ms, .99)),
            "lost": new["db"]["lost"], "duplicated": new["db"]["duplicated"],
            "chain_ok": new["db"]["chain_ok"],
        })
    if old:
        result["baseline_registrations_per_s"] = (_r(old["best"]["per_s"]) if old["best"]
                                                  else None)
    if ver is not None:
        result["verify_events_per_s"] = round(ver["verify_events"] / ver["verify_s"])
        result["inclusion_proof_ms"] = _r(ver["proof_ms_p50"], 4)
    if new:
        result["register_p50_ms"] = _r(_pct(new["load"].reg_ms, .5))
        result["offered_per_s"] = args.rate
        result["errors"] = len(new["load"].errors)
    if old:
        result.update({
            "baseline_register_p99_ms": _r(_pct(old["load"].reg_ms, .99)),
            "baseline_recommend_p99_ms": _r(_pct(old["load"].reco_ms, .99)),
            "baseline_lost": old["db"]["lost"], "baseline_duplicated": old["db"]["duplicated"],
            "baseline_chain_ok": bool(old["db"]["chain_ok"] and old["db"]["baseline_chain_ok"]),
        })
    if ver is not None:
        result.update({
            "verify_events": ver["verify_events"], "verify_ok": ver["verify_ok"],
            "offline_verify_events_per_s": round(ver["offline_events"] / ver["offline_s"]),
            "offline_ok": ver["offline_ok"],
            "inclusion_proof_p99_ms": _r(ver["proof_ms_p99"], 4),
            "inclusion_proof_db_ms": _r(ver["db_proof_ms_p50"]),
        })
    result["load_avg_start"] = started
    result["load_avg_end"] = ended
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
