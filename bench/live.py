"""Benchmark of the live map feed: 5,000 units at 1 Hz, end to end to 20 WebSocket clients.

By default (``via_mqtt``) the fixes travel the whole way a tracker's do: a publisher process
sends each unit's fix over MQTT (QoS 1, to the project's Mosquitto, fix time = the moment it is
published), the server's in-process ingest worker decodes, validates, stores (COPY) and applies
them to the live fleet, and the live feed fans them out to browser-like WebSocket clients. The
latency is from publishing to a client receiving the update. ``--in-process`` feeds the fleet
inside the server instead (the fix time is stamped when it is applied), which isolates the
fan-out. The table gives the CPU each stage spent per fix: publisher, broker, server (ingest +
live feed), clients.

The server is a real uvicorn process running ``create_app`` with the real lifespans (its ingest
worker on a private shared-subscription group, dropped afterwards); the units are real rows
(region ``LIVEBENCH``, removed afterwards); clients are 20 ``websockets`` connections that parse
every message like a browser would.

Usage: ``python bench/live.py [--units 5000] [--clients 20] [--hz 1] [--seconds 20]
[--in-process]``.
Prints a table, then one JSON line (the last line of output). ``load_avg_1m`` is reported because
on a shared machine the latency tail follows the CPU the server actually gets, not its own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REGION = "LIVEBENCH"
CENTRE = (50.4501, 30.5234)  # Kyiv


# --- server side (runs in the child process) -----------------------------------------------------
def _feeder(app: Any, hz: float) -> None:
    """Wait for the fleet, then move every benchmark unit ``hz`` times a second, evenly."""
    from sqlalchemy import text

    from geodispatch.geo import LatLng
    from geodispatch.tracking.reports import PositionReport

    while getattr(app.state, "fleet", None) is None or getattr(app.state, "live_hub", None) is None:
        time.sleep(0.05)
    fleet = app.state.fleet
    with app.state.session_factory() as s:
        ids = [r[0] for r in s.execute(text("SELECT id FROM units WHERE region = :r ORDER BY id"),
                                       {"r": REGION})]
    rng = random.Random(7)
    pos = {u: [CENTRE[0] + rng.uniform(-0.05, 0.05), CENTRE[1] + rng.uniform(-0.08, 0.08)]
           for u in ids}
    slices = 20  # batches per period, like ingest committing every 50 ms
    period = 1.0 / hz
    chunk = max(1, len(ids) // slices)
    next_at = time.monotonic()
    while True:
        for k in range(0, len(ids), chunk):
            now = datetime.now(UTC)
            reports = []
            for u in ids[k:k + chunk]:
                p = pos[u]
                p[0] += rng.uniform(-1e-4, 1e-4)
                p[1] += rng.uniform(-1e-4, 1e-4)
                reports.append(PositionReport(device=f"bench{u}", fix_time=now,
                                              position=LatLng(p[0], p[1]), source="bench",
                                              received_at=now, speed_mps=8.0, unit_id=u))
            fleet.apply_positions(reports)
            next_at += period / slices
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def serve(port: int, hz: float, deflate: bool, via_mqtt: bool) -> None:
    import uvicorn

    from geodispatch.api.app import create_app
    from geodispatch.settings import get_settings

    settings = get_settings().model_copy(update={"serve_ingest": via_mqtt})
    app = create_app(settings)
    if not via_mqtt:
        threading.Thread(target=_feeder, args=(app, hz), daemon=True).start()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws_max_size=1 << 24,
                ws_per_message_deflate=deflate)


def publish(hz: float, seconds: float) -> None:
    """Every benchmark unit's fix over MQTT ``hz`` times a second, in 20 slices a period."""
    import orjson
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    from sqlalchemy import text

    from geodispatch.db import app_engine
    from geodispatch.settings import get_settings
    from geodispatch.tracking.broker import server_credentials

    settings = get_settings()
    engine = app_engine(settings)
    with engine.connect() as conn:
        devices = [r[0] for r in conn.execute(text(
            "SELECT device_id FROM units WHERE region = :r ORDER BY id"), {"r": REGION})]
    engine.dispose()
    user, pw, host, port = server_credentials(settings)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"livebench-pub-{os.getpid()}",
                         protocol=paho.MQTTv5)
    client.username_pw_set(user, pw)
    client.max_inflight_messages_set(5000)
    client.max_queued_messages_set(0)
    client.connect(host, port)
    client.loop_start()
    while not client.is_connected():
        time.sleep(0.02)
    rng = random.Random(7)
    pos = {d: [CENTRE[0] + rng.uniform(-0.05, 0.05), CENTRE[1] + rng.uniform(-0.08, 0.08)]
           for d in devices}
    slices = 20
    period = 1.0 / hz
    chunk = max(1, len(devices) // slices)
    end = time.monotonic() + seconds
    next_at = time.monotonic()
    while time.monotonic() < end:
        for k in range(0, len(devices), chunk):
            for d in devices[k:k + chunk]:
                p = pos[d]
                p[0] += rng.uniform(-1e-5, 1e-5)
                p[1] += rng.uniform(-1e-5, 1e-5)
                body = orjson.dumps({"lat": p[0], "lon": p[1], "t": int(time.time() * 1000),
                                     "speed": 8.0})
                client.publish(f"geodispatch/units/{d}/position", body, qos=1)
            next_at += period / slices
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    client.disconnect()
    client.loop_stop()


def _broker_pid() -> int | None:
    from geodispatch.settings import get_settings

    try:
        return int((get_settings().var_dir / "mosquitto" / "mosquitto.pid").read_text().strip())
    except (OSError, ValueError):
        return None


# --- bench side ----------------------------------------------------------------------------------
def _setup_units(n: int) -> None:
    from sqlalchemy import text

    from geodispatch.db import app_engine
    from geodispatch.settings import get_settings

    engine = app_engine(get_settings())
    with engine.begin() as conn:
        _cleanup(conn)
        conn.execute(text("""
            INSERT INTO units (call_sign, kind, capabilities, region, status, device_id,
                               device_token_hash, active)
            SELECT 'LIVEBENCH-' || g, 'patrol_car', '{}', :r, 'available', 'livebench-' || g,
                   'x', true
            FROM generate_series(1, :n) AS g
        """), {"r": REGION, "n": n})
    engine.dispose()


def _cleanup(conn: Any = None) -> None:
    from sqlalchemy import text

    if conn is None:
        from geodispatch.db import app_engine
        from geodispatch.settings import get_settings

        engine = app_engine(get_settings())
        with engine.begin() as c:
            _cleanup(c)
        engine.dispose()
        return
    ids = "SELECT id FROM units WHERE region = :r"
    for table in ("positions", "unit_latest"):
        conn.execute(text(f"DELETE FROM {table} WHERE unit_id IN ({ids})"), {"r": REGION})
    conn.execute(text("DELETE FROM units WHERE region = :r"), {"r": REGION})


def _token() -> str:
    from sqlalchemy.orm import Session

    from geodispatch.api.security import Principal, issue_token
    from geodispatch.db import app_engine
    from geodispatch.settings import get_settings
    from geodispatch.users.service import upsert_user

    # A dispatcher of the benchmark region: sees exactly the benchmark's units, whatever else is in
    # the database. A real user: the server checks every token against the users table.
    settings = get_settings()
    engine = app_engine(settings)
    with Session(engine) as s, s.begin():
        upsert_user(session=s, username="bench_live", password="bench-live-password",
                    role="dispatcher", region=REGION)
    engine.dispose()
    return issue_token(Principal("bench_live", "dispatcher", REGION), settings)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _client(url: str, stop: asyncio.Event, warm_until: float, out: dict[str, Any]) -> None:
    import websockets

    lat: list[float] = []
    server_side: list[float] = []
    msgs = units = 0
    nbytes = 0
    async with websockets.connect(url, max_size=1 << 26, open_timeout=60) as ws:
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            now = time.time()
            msg = json.loads(raw)
            if msg.get("type") != "units" or now < warm_until:
                continue
            msgs += 1
            nbytes += len(raw)
            server_side.append(msg["sent_at"] - min(
                (u["fix_time"] for u in msg["units"] if u["fix_time"]), default=msg["sent_at"]))
            for u in msg["units"]:
                if u["fix_time"] is not None:
                    lat.append(now - u["fix_time"])
            units += len(msg["units"])
    out.update(lat=lat, server_side=server_side, msgs=msgs, units=units, bytes=nbytes)


async def _run_clients(base: str, n: int, seconds: float, warmup: float) -> list[dict[str, Any]]:
    url = f"{base}/api/live?token={_token()}"
    stop = asyncio.Event()
    results: list[dict[str, Any]] = [{} for _ in range(n)]
    warm_until = time.time() + warmup
    tasks = [asyncio.create_task(_client(url, stop, warm_until, results[i])) for i in range(n)]
    await asyncio.sleep(warmup + seconds)
    stop.set()
    await asyncio.gather(*tasks)
    return results


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=5000)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--hz", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--deflate", action="store_true",
                    help="negotiate permessage-deflate (off in `geodispatch serve` too)")
    ap.add_argument("--in-process", action="store_true",
                    help="feed the fleet inside the server instead of over MQTT")
    ap.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--publish", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    via_mqtt = not args.in_process
    if args.serve:
        serve(args.serve, args.hz, args.deflate, via_mqtt)
        return 0
    if args.publish:
        publish(args.hz, args.seconds)
        return 0

    import uuid

    import httpx

    from tests.helpers import free_port

    _setup_units(args.units)
    port = free_port()
    tag = uuid.uuid4().hex[:8]
    env = {**os.environ, "GEODISPATCH_MQTT_SHARED_GROUP": f"livebench{tag}",
           "GEODISPATCH_MQTT_CLIENT_ID": f"livebench-{tag}"}
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--hz", str(args.hz)]
                              + (["--deflate"] if args.deflate else [])
                              + (["--in-process"] if not via_mqtt else []),
                              cwd=ROOT, env=env)
    publisher: subprocess.Popen[bytes] | None = None
    broker = _broker_pid() if via_mqtt else None
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(base + "/openapi.json", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("server did not start") from None
                time.sleep(0.3)
        time.sleep(3.0)  # the ingest worker subscribes and the fleet loads
        if via_mqtt:
            publisher = subprocess.Popen(
                [sys.executable, __file__, "--publish", "--hz", str(args.hz), "--seconds",
                 str(args.warmup + args.seconds + 2)], cwd=ROOT, env=env)
        cpu0 = _cpu_seconds(server.pid)
        client_cpu0 = _cpu_seconds(os.getpid())
        pub_cpu0 = 0.0
        broker_cpu0 = _cpu_seconds(broker) if broker else 0.0
        wall0 = time.monotonic()
        results = asyncio.run(_run_clients(base.replace("http", "ws", 1), args.clients,
                                           args.seconds, args.warmup))
        elapsed = time.monotonic() - wall0
        cpu = (_cpu_seconds(server.pid) - cpu0) / elapsed * 100
        client_cpu = (_cpu_seconds(os.getpid()) - client_cpu0) / elapsed * 100
        pub_cpu = ((_cpu_seconds(publisher.pid) - pub_cpu0) / elapsed * 100
                   if publisher is not None and publisher.poll() is None else None)
        broker_cpu = ((_cpu_seconds(broker) - broker_cpu0) / elapsed * 100) if broker else None
    finally:
        if publisher is not None:
            publisher.terminate()
            publisher.wait(15)
        server.terminate()
        server.wait(15)
        _cleanup()
        if via_mqtt:
            from geodispatch.settings import get_settings
            from geodispatch.tracking.mqtt import drop_session

            drop_session(get_settings().model_copy(update={
                "mqtt_shared_group": f"livebench{tag}", "mqtt_client_id": f"livebench-{tag}"}),
                f"livebench-{tag}-serve")

    all_lat = [x for r in results for x in r.get("lat", [])]
    per_client_units = statistics.mean(r.get("units", 0) for r in results) / args.seconds
    msgs = statistics.mean(r.get("msgs", 0) for r in results) / args.seconds
    mb = sum(r.get("bytes", 0) for r in results) / args.seconds / 1e6
    row = {
        "units": args.units, "clients": args.clients, "hz": args.hz, "deflate": args.deflate,
        "updates_per_s": args.units * args.hz,
        "client_unit_updates_per_s": round(per_client_units, 1),
        "client_msgs_per_s": round(msgs, 2), "total_mb_per_s": round(mb, 2),
        "latency_p50_ms": round(_pct(all_lat, 50) * 1000, 1),
        "latency_p90_ms": round(_pct(all_lat, 90) * 1000, 1),
        "latency_p99_ms": round(_pct(all_lat, 99) * 1000, 1),
        "latency_max_ms": round(max(all_lat) * 1000, 1) if all_lat else None,
        "samples": len(all_lat),
        "server_oldest_fix_age_p99_ms": round(_pct(
            [x for r in results for x in r.get("server_side", [])], 99) * 1000, 1),
        "via_mqtt": via_mqtt,
        "server_cpu_pct": round(cpu, 1), "client_cpu_pct": round(client_cpu, 1),
        "publisher_cpu_pct": None if pub_cpu is None else round(pub_cpu, 1),
        "broker_cpu_pct": None if broker_cpu is None else round(broker_cpu, 1),
        # CPU per fix at each stage (microseconds of one core per fix sent).
        "publisher_us_per_fix": None if pub_cpu is None
        else round(pub_cpu / 100 / (args.units * args.hz) * 1e6, 1),
        "broker_us_per_fix": None if broker_cpu is None
        else round(broker_cpu / 100 / (args.units * args.hz) * 1e6, 1),
        "server_us_per_fix": round(cpu / 100 / (args.units * args.hz) * 1e6, 1),
        "clients_us_per_fix": round(client_cpu / 100 / (args.units * args.hz) * 1e6, 1),
        "cpu_cores": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    row["p99_ok"] = bool(all_lat) and row["latency_p99_ms"] <= 1000
    width = max(len(k) for k in row)
    print(f"{'metric':<{width}}  value")
    print(f"{'-' * width}  -----")
    for k, v in row.items():
        print(f"{k:<{width}}  {v}")
    print(json.dumps({"bench": "live", **row}))
    return 0 if row["p99_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
