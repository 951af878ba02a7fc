"""A gateway that takes 10 s per message holds up nobody: the worker sends outside any
transaction, so registrations (which queue SMS) go on at full speed meanwhile."""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from sqlalchemy import Engine, text

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from tests.api.conftest import Account, accounts  # noqa: F401  (the fixture)
from tests.helpers import login, running_server

SLOW_S = 10.0


@pytest.fixture()
def slow_gateway() -> Iterator[tuple[str, list[float]]]:
    """A stand-in SMS provider that answers each message after SLOW_S seconds."""
    started: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            started.append(time.monotonic())
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(SLOW_S)
            body = json.dumps({"id": f"slow-{len(started)}"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/sms", started
    server.shutdown()
    server.server_close()


def test_registrations_do_not_wait_on_a_slow_gateway(
        settings: Settings, accounts: dict[str, Account], engine: Engine,  # noqa: F811
        slow_gateway: tuple[str, list[float]]) -> None:
    url, started = slow_gateway
    with engine.begin() as conn:  # earlier tests' messages would only queue ahead of ours
        conn.execute(text("UPDATE sms_outbox SET status = 'suppressed' "
                          "WHERE status IN ('pending', 'sending')"))
    app = create_app(settings.model_copy(update={
        "serve_ingest": False, "sms_backend": "http", "sms_http_url": url}))
    with running_server(app) as base, httpx.Client(base_url=base, timeout=30) as client:
        ct = accounts["call_taker"]
        h = login(base, ct.username, ct.password)

        def register(i: int) -> float:
            t0 = time.perf_counter()
            r = client.post("/api/incidents", headers=h, json={
                "lat": 50.45 + i * 1e-4, "lng": 30.52, "category": "theft",
                "caller_phone": "+380671112233", "caller_lang": "en",
                "description": f"slow gateway {i}",
                "idempotency_key": f"slow-gw-{time.time()}-{i}"})
            assert r.status_code in (200, 201), r.text
            return time.perf_counter() - t0

        register(-1)  # warm up the connection and the first-request paths
        # The server runs in this process, which holds every earlier test's objects: a full
        # garbage collection over them is a pause of the test harness, not of the system (a
        # served process holds only its own). Freeze them out of the collector for the run, and
        # time whatever collections still happen so a failure says whether they were the cause.
        gc.collect()
        gc.freeze()
        gc_pauses: list[float] = []
        gc_started: list[float] = []

        def gc_timer(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                gc_started.append(time.perf_counter())
            elif gc_started:
                gc_pauses.append(time.perf_counter() - gc_started.pop())

        gc.callbacks.append(gc_timer)
        deadline = time.monotonic() + 15
        while not started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started, "the worker never called the gateway"
        in_send_since = started[0]
        try:
            times = [register(i) for i in range(100)]
        finally:
            gc.callbacks.remove(gc_timer)
            gc.unfreeze()
        assert time.monotonic() - in_send_since < SLOW_S, "the gateway answered before we ended"
        assert len(started) == 1, "the worker sends one message at a time"
        slowest = max(times)
        slowest_ms = sorted(round(t * 1000) for t in times)[-5:]
        assert slowest < 0.100, (f"slowest registrations {slowest_ms} ms; longest garbage "
                                 f"collection {max(gc_pauses, default=0) * 1000:.0f} ms")
        with engine.connect() as conn:
            sending = conn.execute(text(
                "SELECT count(*) FROM sms_outbox WHERE status = 'sending'")).scalar()
        assert sending >= 1, "the message being sent is marked sending, visible to all"
