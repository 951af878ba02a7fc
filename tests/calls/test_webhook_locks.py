"""A phone-system report waiting for a call's row lock does not stop the server answering others.

The endpoints used to be ``async def`` with blocking database work: a report waiting for a lock
blocked the event loop, so the lock holder's commit (scheduled on that loop) never ran and the
server froze (seen in bench/calls.py: a burst's CANCELs and the AML of the same calls).
"""

from __future__ import annotations

import threading
import time
import uuid

import httpx
from sqlalchemy import Engine, text

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from tests.helpers import running_server


def test_a_report_waiting_for_a_lock_does_not_freeze_the_server(
    settings: Settings, engine: Engine
) -> None:
    """While another transaction holds call A's row, A's hang-up waits; a ring of call B, a
    SIP report and an AML are answered meanwhile; A's hang-up completes once the lock goes."""
    app = create_app(settings.model_copy(update={"serve_ingest": False}))
    a, b, c = (uuid.uuid4().hex for _ in range(3))
    with running_server(app) as base:
        r = httpx.post(f"{base}/api/calls/events",
                       json={"event": "ring", "call_id": a, "from": "+380631110001"})
        call_id = r.json()["call"]["id"]
        done: dict[str, float] = {}
        with engine.connect() as conn:
            tx = conn.begin()
            conn.execute(text("SELECT id FROM calls WHERE id = :i FOR UPDATE"), {"i": call_id})

            def hang_up() -> None:
                httpx.post(f"{base}/api/calls/events", timeout=30,
                           json={"event": "hangup", "call_id": a})
                done["a"] = time.monotonic()

            waiter = threading.Thread(target=hang_up)
            waiter.start()
            time.sleep(0.5)  # the hang-up is now waiting for the lock
            t = time.monotonic()
            r1 = httpx.post(f"{base}/api/calls/events", timeout=5,
                            json={"event": "ring", "call_id": b, "from": "+380631110002"})
            r2 = httpx.post(f"{base}/api/calls/sip", timeout=5, content=b"-",
                            params={"event": "invite", "call_id": c, "from": "+380631110003"})
            r3 = httpx.post(f"{base}/api/calls/aml/sms", timeout=5, json={
                "from": "+380631110002", "text": "not an AML message"})
            answered_in = time.monotonic() - t
            assert (r1.status_code, r2.status_code, r3.status_code) == (200, 200, 422)
            assert answered_in < 3.0, answered_in
            assert "a" not in done  # still waiting for the lock
            tx.rollback()
        waiter.join(30)
        assert "a" in done
        r = httpx.get(f"{base}/openapi.json")
        assert r.status_code == 200
    with engine.connect() as conn:
        state = conn.execute(text("SELECT state FROM calls WHERE id = :i"),
                             {"i": call_id}).scalar()
    assert state == "abandoned"
