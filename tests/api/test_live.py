"""The live feed: coalescing per client, region filtering, and the real WebSocket end to end."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geodispatch.api.app import create_app
from geodispatch.api.livefeed import LiveHub
from geodispatch.geo import LatLng
from geodispatch.settings import Settings
from tests.api.conftest import OTHER_REGION, REGION, Account
from tests.helpers import login, running_server


@dataclass(frozen=True)
class FakeState:
    unit_id: int
    region: str
    position: LatLng
    status: str = "available"
    call_sign: str = "X"
    kind: str = "patrol_car"
    fix_time: datetime | None = None


class SlowBrowser:
    """A client that takes ``delay`` seconds to read every message."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.messages: list[dict[str, Any]] = []

    async def send_text(self, data: str) -> None:
        await asyncio.sleep(self.delay)
        self.messages.append(json.loads(data))


def test_slow_client_gets_latest_state_not_a_queue() -> None:
    """Ingest-side calls stay O(1) and a slow reader's backlog is bounded by the unit count."""

    async def scenario() -> tuple[float, int, SlowBrowser, LiveClientInfo]:
        hub = LiveHub(max_rate_hz=5, tick_s=0.01)
        slow = SlowBrowser(delay=0.3)
        client = hub.add(slow, None)
        sender = asyncio.create_task(client.run())
        fanout = asyncio.create_task(hub.run())
        n_units, rounds = 200, 100
        elapsed = 0.0

        def produce() -> None:
            nonlocal elapsed
            t0 = time.perf_counter()
            for k in range(rounds):
                for u in range(n_units):
                    hub.on_fleet(FakeState(u, REGION, LatLng(50.0 + k * 1e-4, 30.0 + u * 1e-4)))
            elapsed = time.perf_counter() - t0

        producer = threading.Thread(target=produce)
        producer.start()
        max_pending = 0
        while producer.is_alive():
            max_pending = max(max_pending, len(client.pending_units))
            await asyncio.sleep(0.005)
        producer.join()
        await asyncio.sleep(1.0)
        for t in (sender, fanout):
            t.cancel()
        hub.remove(client)
        return elapsed, max_pending, slow, LiveClientInfo(client.sent_batches)

    elapsed, max_pending, slow, info = asyncio.run(scenario())
    updates = 200 * 100
    per_update_us = elapsed / updates * 1e6
    assert per_update_us < 50, f"{per_update_us:.1f} µs per update on the ingest side"
    assert max_pending <= 200, "pending is one entry per unit, never a growing queue"
    assert info.sent_batches <= 10, "a slow client gets few, fresh batches"
    latest: dict[int, float] = {}
    for m in slow.messages:
        for u in m.get("units", []):
            latest[u["id"]] = u["lat"]
    assert len(latest) == 200
    newest = 50.0 + 99 * 1e-4
    assert all(abs(lat - newest) < 1e-9 for lat in latest.values()), "ends on the newest"


@dataclass
class LiveClientInfo:
    sent_batches: int


def test_region_filter_and_dedup() -> None:
    """A regional client sees only its region; an unchanged state is not sent twice."""

    async def scenario() -> tuple[dict[int, str], dict[int, str], int]:
        hub = LiveHub()
        kv = hub.add(SlowBrowser(0), REGION)
        everyone = hub.add(SlowBrowser(0), None)
        hub.on_fleet(FakeState(1, REGION, LatLng(50.4, 30.5)))
        hub.on_fleet([FakeState(2, OTHER_REGION, LatLng(49.8, 24.0))])
        hub.fan_out_once()
        first = dict(kv.pending_units), dict(everyone.pending_units)
        kv.pending_units.clear()
        hub.on_fleet(FakeState(1, REGION, LatLng(50.4, 30.5)))
        return first[0], first[1], hub.fan_out_once()

    kv, everyone, changed_again = asyncio.run(scenario())
    assert set(kv) == {1}
    assert set(everyone) == {1, 2}
    assert changed_again == 0


# --- end to end --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def units(engine: Engine, admin_engine: Engine) -> Iterator[dict[str, tuple[int, str, str]]]:
    """Two committed units, ours and another region's: call sign -> (id, device, token)."""
    from geodispatch.tracking.service import create_unit

    tag = uuid.uuid4().hex[:6].upper()
    out = {}
    with Session(engine) as s, s.begin():
        for cs, region in ((f"LV-{tag}-1", REGION), (f"LV-{tag}-2", OTHER_REGION)):
            unit, token = create_unit(session=s, call_sign=cs, kind="patrol_car",
                                      capabilities=[], region=region, status="available")
            out[cs] = (unit.id, unit.device_id, token)
    yield out
    ids = [v[0] for v in out.values()]
    with admin_engine.begin() as conn:
        for table in ("positions", "unit_latest"):
            conn.execute(text(f"DELETE FROM {table} WHERE unit_id = ANY(:ids)"), {"ids": ids})
        conn.execute(text("DELETE FROM units WHERE id = ANY(:ids)"), {"ids": ids})


async def _until(ws: Any, pred: Any, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
        if pred(msg):
            return msg


def test_websocket_streams_positions_of_own_region(
    settings: Settings, accounts: dict[str, Account], units: dict[str, tuple[int, str, str]]
) -> None:
    """A fix posted by a tracker reaches a dispatcher's WebSocket within a second; other regions'
    units never do; the token works as a query parameter and as the first message."""
    (kv_cs, (kv_id, kv_dev, kv_tok)), (_, (lv_id, lv_dev, lv_tok)) = units.items()
    app = create_app(settings.model_copy(update={"serve_ingest": False, "live_max_rate_hz": 10}))
    acc = accounts["dispatcher"]
    with running_server(app) as base:
        token = login(base, acc.username, acc.password)["Authorization"].split()[1]
        ws_base = base.replace("http", "ws", 1) + "/api/live"

        async def scenario() -> tuple[dict[str, Any], dict[str, Any], float]:
            async with websockets.connect(f"{ws_base}?token={token}") as a, \
                    websockets.connect(ws_base) as b:
                await b.send(json.dumps({"token": token}))
                snap = json.loads(await a.recv())
                snap_b = json.loads(await b.recv())
                assert snap_b["type"] == "snapshot"
                now = int(time.time())
                async with httpx.AsyncClient(base_url=base) as http:
                    for dev, tok, lat in ((lv_dev, lv_tok, 49.84), (kv_dev, kv_tok, 50.4512)):
                        r = await http.get("/api/ingest/osmand", params={
                            "id": dev, "lat": lat, "lon": 30.5234, "timestamp": now,
                            "speed": 10, "token": tok})
                        assert r.status_code == 200, r.text
                t0 = time.monotonic()
                moved = await _until(a, lambda m: m["type"] == "units" and any(
                    u["id"] == kv_id and u["lat"] == pytest.approx(50.4512) for u in m["units"]))
                latency = time.monotonic() - t0
                return snap, moved, latency

        snap, moved, latency = asyncio.run(scenario())
    assert snap["type"] == "snapshot"
    assert snap["user"]["region"] == REGION
    seen = {u["id"] for u in snap["units"]}
    assert kv_id in seen and lv_id not in seen
    assert all(u["id"] != lv_id for u in moved["units"]), "another region's unit leaked"
    assert latency < 1.5


def test_websocket_streams_incident_changes_of_own_region(
    settings: Settings, accounts: dict[str, Account], engine: Engine
) -> None:
    """An event appended to an incident of our region reaches the dispatcher's stream; one of
    another region does not; caller phones never travel on the stream."""
    from geodispatch.incidents.models import Incident
    from geodispatch.incidents.record import append_event

    app = create_app(settings.model_copy(update={"serve_ingest": False,
                                                 "live_incident_poll_s": 0.2}))
    acc = accounts["dispatcher"]

    def make(region: str) -> int:
        p = LatLng(50.45, 30.52)
        with Session(engine) as s, s.begin():
            inc = Incident(
                reference=f"LIVE-{uuid.uuid4().hex[:10]}", region=region,
                received_at=datetime.now(UTC), caller_phone="+380509998877",
                location=p.to_ewkt(), h3=int(p.h3_cell(9), 16), category="theft",
                original_category="theft", priority=2, status="queued", created_by="test")
            s.add(inc)
            s.flush()
            append_event(session=s, incident_id=inc.id, kind="registered", actor="test",
                         data={"category": "theft"})
            return int(inc.id)

    with running_server(app) as base:
        token = login(base, acc.username, acc.password)["Authorization"].split()[1]

        async def scenario() -> tuple[dict[str, Any], int, int, list[str]]:
            raw: list[str] = []
            url = f"{base.replace('http', 'ws', 1)}/api/live?token={token}"
            async with websockets.connect(url) as ws:
                raw.append(await ws.recv())
                other = await asyncio.to_thread(make, OTHER_REGION)
                mine = await asyncio.to_thread(make, REGION)
                deadline = time.monotonic() + 10
                while True:
                    text_ = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
                    raw.append(text_)
                    msg = json.loads(text_)
                    incidents = msg.get("incidents", []) if msg["type"] == "incidents" else []
                    if any(i["id"] == mine for i in incidents):
                        return msg, mine, other, raw

        msg, mine, other, raw = asyncio.run(scenario())
    row = next(i for i in msg["incidents"] if i["id"] == mine)
    assert row["status"] == "queued" and row["last_event"]["kind"] == "registered"
    assert all(i["id"] != other for m in raw for i in json.loads(m).get("incidents", []))
    assert not any("9998877" in m for m in raw), "a caller phone travelled on the live stream"
