"""Federation benchmark: two regional centres registering calls live to the national centre.

Three real centres on this machine (each its own database, signing key, ``geodispatch serve``
and ``geodispatch log sequence``): regions KV and LV each register ``--rate`` incidents a second
through their HTTP API for ``--duration`` seconds (open loop, on schedule); the national centre
follows both NENA-STA-024 feeds, verifying every JWS signature, inclusion and consistency proof.
A poller on the national database notes when each incident becomes visible there.

Prints a table, then one JSON line last: regions, incidents, registration_to_national_p50_ms /
p99_ms (from the region's HTTP 201 to the committed national copy), lost, duplicated, signed,
refused, loadavg. Target: p99 <= 1000 ms, 0 lost, 0 duplicated.

    PYTHONPATH=. .venv/bin/python bench/federation.py [--rate 50] [--duration 20]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geodispatch.settings import Settings  # noqa: E402
from tests.federation.harness import (  # noqa: E402
    Centre,
    create_centre,
    drop_centre,
    register_centre_at,
    register_incident,
    wait_for,
)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=50.0, help="incidents per second per region")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of registration")
    args = ap.parse_args()

    settings = Settings()
    root = Path(tempfile.mkdtemp(prefix="bench-federation-"))
    prefix = (settings.database_url.rsplit("/", 1)[-1] or "geodispatch") + "_bench_fed"
    nat = create_centre(settings, "NAT", root, subscribe=True, prefix=prefix)
    regions = [create_centre(settings, code, root, subscriber_keys=[nat.public_key],
                             prefix=prefix) for code in ("KV", "LV")]
    centres: list[Centre] = [*regions, nat]
    seen: dict[str, float] = {}
    stop = threading.Event()
    try:
        for c in centres:
            c.start()
        for r in regions:
            register_centre_at(nat, r)
        # The national centre compiles its fast EIDO validator in a child process at start:
        # measured after it is ready (until then jsonschema alone validates, and the compile
        # takes a CPU).
        ready = wait_for(lambda: "EIDO fast validation ready" in (
            nat.var / "logs" / "api.log").read_text(errors="replace"), 180, 0.5)
        print(f"national fast validator {'ready' if ready else 'NOT ready after 180 s'}")
        http = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=64))
        headers = {r.code: r.token() for r in regions}
        for r in regions:  # warm up: the subscriber follows both feeds
            ref = register_incident(http, r, headers[r.code], -1)
            wait_for(lambda r=r, ref=ref: bool(nat.scalar(
                "SELECT count(*) FROM incidents WHERE external_ref = :x",
                x=f"{r.code}:{ref}")), 30, 0.1)

        def poll() -> None:
            # Two regions commit concurrently, so ids become visible out of order: rescan a
            # window behind the highest id seen.
            last = 0
            with nat.engine.connect() as conn:
                while not stop.is_set():
                    rows = conn.execute(text(
                        "SELECT id, external_ref FROM incidents WHERE source = 'eido' "
                        "AND id > :l ORDER BY id"), {"l": last - 2000}).all()
                    conn.commit()
                    now = time.time()
                    for i, x in rows:
                        seen.setdefault(x, now)
                        last = max(last, int(i))
                    time.sleep(0.01)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        registered: dict[str, float] = {}
        lock = threading.Lock()

        def one(c: Centre, n: int) -> None:
            ref = register_incident(http, c, headers[c.code], n)
            with lock:
                registered[f"{c.code}:{ref}"] = time.time()

        total = int(args.rate * args.duration)
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=32) as pool:
            futures = []
            for n in range(total):
                due = t0 + n / args.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                for c in regions:
                    futures.append(pool.submit(one, c, n))
            for f in futures:
                f.result()
        # Drain: until all arrived, or 30 s after the last arrival (late is not lost: an
        # incident that arrives 100 s late counts in p99, one that never does counts as lost).
        last_count, last_progress = -1, time.monotonic()
        while not all(k in seen for k in registered) \
                and time.monotonic() - last_progress < 30:
            if len(seen) != last_count:
                last_count, last_progress = len(seen), time.monotonic()
            time.sleep(0.1)
        stop.set()
        poller.join(5)
        delays = [(seen[k] - t) * 1000 for k, t in registered.items() if k in seen]
        lost = sum(1 for k in registered if k not in seen)
        dup_incidents = nat.scalar("SELECT count(*) FROM (SELECT external_ref FROM incidents "
                                   "WHERE source = 'eido' GROUP BY 1 HAVING count(*) > 1) d")
        appended = nat.scalar("SELECT count(*) FROM incident_events WHERE data ? '_origin'")
        verified = nat.scalar("SELECT count(*) FROM federation_events")
        refused = nat.scalar("SELECT count(*) FROM federation_refusals")
        duplicated = int(dup_incidents) + int(appended) - int(verified)
        elapsed = time.monotonic() - t0
        print(f"{'region':8} {'registered':>10} {'at national':>11}")
        for r in regions:
            n_reg = sum(1 for k in registered if k.startswith(r.code + ":"))
            n_seen = sum(1 for k in registered if k.startswith(r.code + ":") and k in seen)
            print(f"{r.code:8} {n_reg:>10} {n_seen:>11}")
        print(f"rate {args.rate:.0f}/s per region for {args.duration:.0f} s ({elapsed:.1f} s "
              f"with drain); registration -> national p50 {_percentile(delays, .5):.0f} ms, "
              f"p99 {_percentile(delays, .99):.0f} ms, max {max(delays or [0]):.0f} ms; "
              f"lost {lost}, duplicated {duplicated}, refused {refused}")
        result = {
            "regions": len(regions), "incidents": len(registered),
            "rate_per_region": args.rate,
            "registration_to_national_p50_ms": round(_percentile(delays, .5), 1),
            "registration_to_national_p99_ms": round(_percentile(delays, .99), 1),
            "lost": lost, "duplicated": duplicated, "signed": True, "refused": int(refused),
            "loadavg": list(os.getloadavg()),
        }
        http.close()
    finally:
        stop.set()
        for c in centres:
            drop_centre(settings, c)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
