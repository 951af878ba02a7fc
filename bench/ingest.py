"""Ingest benchmark (not a test): catch-up of a broker backlog and a live stream, with loss and
duplication counted from the rows afterwards.

Runs against the configured (development) database and the project's Mosquitto::

    .venv/bin/python bench/ingest.py                      # 1,000,000 messages, 5,000 units
    .venv/bin/python bench/ingest.py --messages 100000    # a quick run

1. Catch-up. Persistent sessions are created for every consumer group and left offline: a bare
   paho subscriber group (2 clients), the naive consumer, 1 ingest worker, 2 ingest workers (MQTT 5
   shared subscriptions). ``--messages`` QoS 1 fixes from ``--units`` units are then published
   once; the broker queues them for each offline session, as during a worker outage. Each group is
   then started in turn and timed until it has drained its backlog:
   bare subscriber (ack only: the ceiling of a Python MQTT consumer here), the naive path (one ORM
   insert and commit per message, ``--naive-seconds``), ingest with 1 and 2 workers (drain into
   PostGIS, history + latest; rows deleted between runs).
2. Live. 2 workers run; publishers send a steady stream at ``--live-rate`` for ``--live-seconds``;
   each worker records publish->commit lag of every fix (fix time = publish time).

Prints a table and, last, one JSON line with the figures the issue asks for.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from sqlalchemy import text  # noqa: E402

from geodispatch.db import admin_engine, app_engine, session_factory, transaction  # noqa: E402
from geodispatch.settings import Settings, get_settings  # noqa: E402
from geodispatch.tracking.broker import server_credentials  # noqa: E402
from geodispatch.tracking.mqtt import connect_properties, make_client, shared  # noqa: E402

TOPIC = "geodispatch/units/{}/position"
FILTER = "geodispatch/units/+/position"
PREFIX = "bench-"
BATCH_SIZE = 20_000  # set from --batch-size


def say(*args: object) -> None:
    print(time.strftime("%H:%M:%S"), *args, flush=True)


# --- set-up ------------------------------------------------------------------------------------


def ensure_units(settings: Settings, n: int) -> list[tuple[int, str]]:
    """``n`` bench units (reused across runs), ids and device ids, with no history."""
    from geodispatch.tracking.models import Unit
    from geodispatch.tracking.service import create_unit

    engine = app_engine(settings)
    factory = session_factory(engine)
    with transaction(factory) as s:
        have = {d for (d,) in s.execute(text(
            "SELECT device_id FROM units WHERE device_id LIKE 'bench-%'"))}
        for i in range(n):
            dev = f"{PREFIX}{i:05d}"
            if dev not in have:
                create_unit(session=s, call_sign=f"BENCH-{i:05d}", kind="patrol_car",
                            capabilities=[], region="KV", device_id=dev, settings=settings)
        # Bench units exist only while a bench runs: inactive units stay off the map.
        s.execute(text("UPDATE units SET active = true WHERE device_id LIKE 'bench-%'"))
    with factory() as s:
        rows = s.query(Unit.id, Unit.device_id).filter(Unit.device_id.like("bench-%")).all()
    engine.dispose()
    units = sorted((int(i), str(d)) for i, d in rows)[:n]
    clear_rows(settings, [u[0] for u in units])
    return units


def retire_units(settings: Settings) -> None:
    eng = app_engine(settings)
    with eng.begin() as c:
        c.execute(text("UPDATE units SET active = false WHERE device_id LIKE 'bench-%'"))
    eng.dispose()


def clear_rows(settings: Settings, ids: list[int]) -> None:
    eng = admin_engine(settings)
    with eng.begin() as c:
        c.execute(text("DELETE FROM positions WHERE unit_id = ANY(:u)"), {"u": ids})
        c.execute(text("DELETE FROM unit_latest WHERE unit_id = ANY(:u)"), {"u": ids})
    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM ANALYZE positions"))
    eng.dispose()


def counts(settings: Settings, ids: list[int]) -> tuple[int, int, int]:
    """(history rows, distinct (unit, fix_time), latest rows) of the bench units."""
    eng = app_engine(settings)
    with eng.connect() as c:
        total, distinct = c.execute(text(
            "SELECT count(*), count(DISTINCT (unit_id, fix_time)) FROM positions "
            "WHERE unit_id = ANY(:u)"), {"u": ids}).one()
        latest = c.execute(text("SELECT count(*) FROM unit_latest WHERE unit_id = ANY(:u)"),
                           {"u": ids}).scalar()
    eng.dispose()
    return int(total), int(distinct), int(latest or 0)


def history_count(settings: Settings, ids: list[int]) -> int:
    eng = app_engine(settings)
    with eng.connect() as c:
        n = c.execute(text("SELECT count(*) FROM positions WHERE unit_id = ANY(:u)"),
                      {"u": ids}).scalar()
    eng.dispose()
    return int(n or 0)


def reset_session(settings: Settings, client_id: str, group: str | None) -> None:
    """Drop any old session, then create a fresh persistent one subscribed to ``group`` and go
    offline, so the broker queues the backlog for it."""
    c = make_client(settings, client_id, clean_start=True, session_expiry_s=0)
    c.disconnect()
    c.loop_stop()
    if group is None:
        return
    c = make_client(settings, client_id, clean_start=False)
    done = threading.Event()
    c.on_subscribe = lambda *a: done.set()
    c.subscribe(shared(group, FILTER), qos=1)
    done.wait(10)
    c.disconnect()
    c.loop_stop()


# --- load generation ---------------------------------------------------------------------------


def _payloads(devices: list[str], per_unit: int, *, end_ms: int, part: int, parts: int) -> Any:
    """(topic, payload) of the backlog: per unit one fix a second, moving ~40 km/h."""
    for k in range(per_unit):
        t = end_ms - (per_unit - k) * 1000
        for i in range(part, len(devices), parts):
            lat = 50.40 + (i % 100) * 0.001 + k * 1e-4
            lng = 30.40 + (i // 100) * 0.001
            yield (TOPIC.format(devices[i]),
                   b'{"lat":%.7f,"lon":%.7f,"t":%d,"speed":11.1,"acc":6}' % (lat, lng, t))


def _publish_part(settings: Settings, devices: list[str], per_unit: int, end_ms: int, part: int,
                  parts: int, out: Any) -> None:
    user, pw, host, port = server_credentials(settings)
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{part}-{os.getpid()}",
                    protocol=paho.MQTTv5)
    c.username_pw_set(user, pw)
    c.max_inflight_messages_set(5000)
    c.connect(host, port)
    c.loop_start()
    n = 0
    info = None
    for topic, body in _payloads(devices, per_unit, end_ms=end_ms, part=part, parts=parts):
        info = c.publish(topic, body, qos=1)
        n += 1
        if n % 5000 == 0:
            info.wait_for_publish()
    if info is not None:
        info.wait_for_publish()
    c.disconnect()
    c.loop_stop()
    out.put(n)


def publish_backlog(settings: Settings, devices: list[str], per_unit: int,
                    procs: int) -> tuple[int, float]:
    end_ms = int(time.time() * 1000) - 10_000
    q: Any = mp.Queue()
    t0 = time.perf_counter()
    ps = [mp.Process(target=_publish_part,
                     args=(settings, devices, per_unit, end_ms, p, procs, q)) for p in range(procs)]
    for p in ps:
        p.start()
    total = sum(q.get() for _ in ps)
    for p in ps:
        p.join()
    return total, time.perf_counter() - t0


def _live_part(settings: Settings, devices: list[str], rate: float, seconds: float, part: int,
               parts: int, out: Any) -> None:
    user, pw, host, port = server_credentials(settings)
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-live-{part}-{os.getpid()}",
                    protocol=paho.MQTTv5)
    c.username_pw_set(user, pw)
    c.max_inflight_messages_set(5000)
    c.connect(host, port)
    c.loop_start()
    mine = devices[part::parts]
    start = time.time()
    sent = 0
    k = 0
    while True:
        now = time.time()
        if now - start >= seconds:
            break
        due = int((now - start) * rate)
        while sent < due:
            i = sent % len(mine)
            if i == 0:
                k += 1
            lat = 50.40 + (i % 100) * 0.001 + k * 1e-5
            lng = 30.40 + (i // 100) * 0.001 + part * 0.01
            body = b'{"lat":%.7f,"lon":%.7f,"t":%d,"speed":11.1}' % (lat, lng,
                                                                     int(time.time() * 1000))
            info = c.publish(TOPIC.format(mine[i]), body, qos=1)
            sent += 1
        time.sleep(0.002)
    elapsed = time.time() - start
    if sent:
        info.wait_for_publish(30)  # every in-flight QoS 1 message acknowledged by the broker
    c.disconnect()
    c.loop_stop()
    out.put((sent, elapsed))


# --- consumers ---------------------------------------------------------------------------------


def _bare(settings: Settings, client_id: str, target: int, out: Any) -> None:
    c = make_client(settings, client_id, clean_start=False, connect=False)
    got = [0]
    done = threading.Event()
    first = [0.0]

    def on_message(_c: Any, _u: Any, m: paho.MQTTMessage) -> None:
        if not got[0]:
            first[0] = time.perf_counter()
        got[0] += 1
        if got[0] >= target:
            done.set()

    c.on_message = on_message
    user, pw, host, port = server_credentials(settings)
    c.connect(host, port, clean_start=False, properties=connect_properties(settings))
    c.loop_start()
    done.wait(3600)
    c.disconnect()
    c.loop_stop()
    out.put(got[0])


def drain_bare(settings: Settings, clients: list[str], per_client: int) -> float:
    q: Any = mp.Queue()
    t0 = time.perf_counter()
    ps = [mp.Process(target=_bare, args=(settings, cid, per_client, q)) for cid in clients]
    for p in ps:
        p.start()
    total = sum(q.get() for _ in ps)
    dt = time.perf_counter() - t0
    for p in ps:
        p.join()
    return total / dt


def _naive(settings: Settings, client_id: str, seconds: float, unit_of: dict[str, int],
           out: Any) -> None:
    """One ORM insert and one commit per message: what the issue calls the naive path."""
    from datetime import UTC, datetime

    from geoalchemy2.elements import WKTElement
    from sqlalchemy.orm import Session

    from geodispatch.tracking.models import Position

    engine = app_engine(settings)
    session = Session(engine)
    c = make_client(settings, client_id, clean_start=False, connect=False)
    inbox: list[paho.MQTTMessage] = []
    lock = threading.Lock()
    c.on_message = lambda _c, _u, m: (lock.acquire(), inbox.append(m), lock.release())
    user, pw, host, port = server_credentials(settings)
    c.connect(host, port, clean_start=False, properties=connect_properties(settings))
    c.loop_start()
    t_end = time.perf_counter() + seconds
    stored = 0
    while time.perf_counter() < t_end:
        with lock:
            batch, inbox[:] = list(inbox), []
        if not batch:
            time.sleep(0.01)
            continue
        for m in batch:
            if time.perf_counter() >= t_end:
                break
            d = json.loads(m.payload)
            uid = unit_of.get(m.topic.split("/")[2])
            if uid is None:
                continue
            session.add(Position(
                unit_id=uid, fix_time=datetime.fromtimestamp(d["t"] / 1000, tz=UTC),
                received_at=datetime.now(UTC),
                geom=WKTElement(f"POINT({d['lon']} {d['lat']})", srid=4326), h3=0,
                speed_mps=d.get("speed"), accuracy_m=d.get("acc"), source="native"))
            session.commit()
            stored += 1
    c.disconnect()
    c.loop_stop()
    session.close()
    engine.dispose()
    out.put(stored)


def run_naive(settings: Settings, client_id: str, seconds: float,
              unit_of: dict[str, int]) -> float:
    q: Any = mp.Queue()
    p = mp.Process(target=_naive, args=(settings, client_id, seconds, unit_of, q))
    t0 = time.perf_counter()
    p.start()
    stored = q.get()
    dt = time.perf_counter() - t0
    p.join()
    return stored / max(dt - 1.0, seconds)


def start_workers(client_ids: list[str], group: str, logdir: Path,
                  stats: bool = False) -> list[tuple[subprocess.Popen[bytes], Path]]:
    out = []
    for cid in client_ids:
        stats_file = logdir / f"{cid}.json"
        cmd = [sys.executable, "-m", "geodispatch.cli", "ingest", "--client-id", cid,
               "--group", group]
        if stats:
            cmd += ["--stats-file", str(stats_file)]
        log = (logdir / f"{cid}.log").open("wb")
        env = {**os.environ, "GEODISPATCH_INGEST_BATCH_SIZE": str(BATCH_SIZE)}
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        out.append((p, stats_file))
    return out


def wait_connected(client_ids: list[str], logdir: Path, timeout: float = 120.0) -> None:
    """Until every worker's log says it is connected (interpreter start-up can take seconds)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        logs = [(logdir / f"{cid}.log") for cid in client_ids]
        if all(p.exists() and b"MQTT connected" in p.read_bytes() for p in logs):
            return
        time.sleep(0.2)


def cpu_children() -> float:
    """CPU seconds (user + system) of every waited-for child process so far."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def stop_workers(procs: list[tuple[subprocess.Popen[bytes], Path]]) -> None:
    for p, _ in procs:
        p.terminate()
    for p, _ in procs:
        p.wait(60)


def drain_ingest(settings: Settings, client_ids: list[str], group: str, ids: list[int],
                 expected: int, logdir: Path) -> tuple[float, float]:
    """Start the workers; time until all ``expected`` rows are committed. (rate, seconds)."""
    t0 = time.perf_counter()
    procs = start_workers(client_ids, group, logdir)
    last, last_change = -1, time.perf_counter()
    while True:
        n = history_count(settings, ids)
        if n >= expected:
            break
        if n != last:
            last, last_change = n, time.perf_counter()
        elif time.perf_counter() - last_change > 60:
            say(f"  stalled at {n} of {expected} rows")
            break
        time.sleep(0.5)
    dt = time.perf_counter() - t0
    stop_workers(procs)
    return expected / dt, dt


# --- main --------------------------------------------------------------------------------------


def main() -> int:
    global BATCH_SIZE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--units", type=int, default=5_000)
    ap.add_argument("--publishers", type=int, default=2)
    ap.add_argument("--naive-seconds", type=float, default=30.0)
    ap.add_argument("--live-rate", type=float, default=5000.0, help="messages/s, all publishers")
    ap.add_argument("--live-seconds", type=float, default=30.0)
    ap.add_argument("--batch-size", type=int, default=20_000,
                    help="GEODISPATCH_INGEST_BATCH_SIZE of the workers")
    args = ap.parse_args()
    BATCH_SIZE = args.batch_size
    settings = get_settings()
    logdir = Path(tempfile.mkdtemp(prefix="geodispatch-bench-"))
    say(f"logs in {logdir}")

    units = ensure_units(settings, args.units)
    ids = [u[0] for u in units]
    devices = [u[1] for u in units]
    unit_of = {d: i for i, d in units}
    per_unit = max(1, args.messages // len(units))
    n = per_unit * len(units)

    tag = f"{os.getpid()}"
    bare = [f"bench-bare-{tag}-{i}" for i in range(2)]
    naive = f"bench-naive-{tag}"
    w1 = [f"bench-w1-{tag}-0"]
    w2 = [f"bench-w2-{tag}-{i}" for i in range(2)]
    groups = {"bare": f"bbare{tag}", "naive": f"bnaive{tag}", "w1": f"bw1{tag}",
              "w2": f"bw2{tag}", "live": f"blive{tag}"}
    for cid in bare:
        reset_session(settings, cid, groups["bare"])
    reset_session(settings, naive, groups["naive"])
    for cid in w1:
        reset_session(settings, cid, groups["w1"])
    for cid in w2:
        reset_session(settings, cid, groups["w2"])

    say(f"publishing {n:,} QoS 1 messages from {len(units):,} units into 5 offline sessions")
    sent, pub_s = publish_backlog(settings, devices, per_unit, args.publishers)
    say(f"  published {sent:,} in {pub_s:.1f} s ({sent / pub_s:,.0f}/s)")

    say("bare paho subscribers (2 clients, shared subscription) draining")
    cpu0 = cpu_children()
    ceiling = drain_bare(settings, bare, n // 2)
    bare_cpu_us = (cpu_children() - cpu0) / n * 1e6
    say(f"  {ceiling:,.0f} msg/s, {bare_cpu_us:.0f} us CPU per message")

    say(f"naive path: ORM insert + commit per message for {args.naive_seconds:.0f} s")
    naive_rate = run_naive(settings, naive, args.naive_seconds, unit_of)
    reset_session(settings, naive, None)
    clear_rows(settings, ids)
    say(f"  {naive_rate:,.0f} msg/s")

    results: dict[int, dict[str, Any]] = {}
    for k, cids in ((1, w1), (2, w2)):
        say(f"ingest with {k} worker(s) draining {n:,}")
        cpu0 = cpu_children()
        rate, secs = drain_ingest(settings, cids, groups[f"w{k}"], ids, n, logdir)
        cpu_us = (cpu_children() - cpu0) / n * 1e6
        total, distinct, latest = counts(settings, ids)
        results[k] = {"rate": rate, "secs": secs, "rows": total, "lost": n - distinct,
                      "duplicated": total - distinct, "latest": latest, "cpu_us": cpu_us}
        say(f"  {rate:,.0f} msg/s in {secs:.1f} s; rows {total:,}, latest {latest:,}; "
            f"{cpu_us:.0f} us worker CPU per message")
        clear_rows(settings, ids)
        for cid in cids:
            reset_session(settings, cid, None)

    say(f"live: 2 workers, {args.live_rate:,.0f} msg/s target for {args.live_seconds:.0f} s")
    live_ids = [f"bench-live-{tag}-{i}" for i in range(2)]
    for cid in live_ids:
        reset_session(settings, cid, groups["live"])
    procs = start_workers(live_ids, groups["live"], logdir, stats=True)
    wait_connected(live_ids, logdir)
    q: Any = mp.Queue()
    ps = [mp.Process(target=_live_part, args=(settings, devices, args.live_rate / 2,
                                              args.live_seconds, p, 2, q)) for p in range(2)]
    for p in ps:
        p.start()
    parts = [q.get() for _ in ps]
    for p in ps:
        p.join()
    live_sent = sum(s for s, _ in parts)
    live_rate = live_sent / max(e for _, e in parts)
    deadline = time.time() + 60
    while history_count(settings, ids) < live_sent and time.time() < deadline:
        time.sleep(0.5)
    live_total, live_distinct, _ = counts(settings, ids)
    stop_workers(procs)
    lags: list[float] = []
    for _p, f in procs:
        if f.exists():
            lags += json.loads(f.read_text())["lags_ms"]
    lags.sort()
    p50 = statistics.median(lags) if lags else float("nan")
    p99 = lags[int(len(lags) * 0.99) - 1] if lags else float("nan")
    for cid in live_ids:
        reset_session(settings, cid, None)
    for cid in bare:
        reset_session(settings, cid, None)
    clear_rows(settings, ids)
    retire_units(settings)

    lost = results[1]["lost"] + results[2]["lost"] + (live_sent - live_distinct)
    dup = results[1]["duplicated"] + results[2]["duplicated"] + (live_total - live_distinct)
    w2r = results[2]["rate"]
    print()
    print(f"{'measurement':<44}{'msg/s':>12}{'seconds':>10}{'lost':>8}{'dup':>6}")
    print("-" * 80)
    print(f"{'publish backlog (' + str(args.publishers) + ' publishers)':<44}"
          f"{sent / pub_s:>12,.0f}{pub_s:>10.1f}{'':>8}{'':>6}")
    print(f"{'bare paho subscriber, 2 clients (ceiling)':<44}{ceiling:>12,.0f}"
          f"{n / ceiling:>10.1f}{'':>8}{'':>6}")
    print(f"{'naive ORM insert+commit per message':<44}{naive_rate:>12,.0f}"
          f"{args.naive_seconds:>10.1f}{'':>8}{'':>6}")
    for k in (1, 2):
        r = results[k]
        print(f"{'catch-up ingest, ' + str(k) + ' worker(s)':<44}{r['rate']:>12,.0f}"
              f"{r['secs']:>10.1f}{r['lost']:>8}{r['duplicated']:>6}")
    print(f"{'live stream, 2 workers':<44}{live_rate:>12,.0f}{args.live_seconds:>10.1f}"
          f"{live_sent - live_distinct:>8}{live_total - live_distinct:>6}")
    print("-" * 80)
    print(f"catch-up: {n:,} messages, {len(units):,} units; 2 workers = "
          f"{w2r / results[1]['rate']:.2f}x 1 worker; {w2r / ceiling:.0%} of the bare subscriber")
    print(f"worker CPU per message (load-independent): bare subscriber {bare_cpu_us:.0f} us, "
          f"ingest {results[1]['cpu_us']:.0f} us (1 worker) / {results[2]['cpu_us']:.0f} us "
          f"(2 workers); load average during the run: {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    print(f"live lag publish->commit: p50 {p50:.0f} ms, p99 {p99:.0f} ms over {len(lags):,} fixes")
    print(json.dumps({
        "msgs_per_s": round(w2r), "ceiling_msgs_per_s": round(ceiling),
        "naive_msgs_per_s": round(naive_rate), "workers": 2, "lost": lost, "duplicated": dup,
        "live_msgs_per_s": round(live_rate), "p99_lag_ms": round(p99, 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
