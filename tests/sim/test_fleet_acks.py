"""The simulated fleet acknowledges its assignments through the same delivery path as an
MQTT-only crew terminal: against a real uvicorn (with its in-process ingest worker and delivery
loop), Mosquitto and PostGIS, a simulated crew gets a dispatcher's assignment, reports it
delivered and acknowledged on ``assignment/ack``, and drives to the call."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import Engine, text

from geodispatch.api.app import create_app
from geodispatch.geo import LatLng
from geodispatch.settings import Settings
from geodispatch.sim.engine import Simulator
from geodispatch.sim.motion import GpsModel
from geodispatch.sim.roads import GridRoads
from geodispatch.sim.transport import MqttTransport
from geodispatch.sim.unit import SimConfig, UnitSpec
from tests.helpers import bearer, running_server
from tests.tracking.conftest import ensure_unit, mqtt_settings, wait_for


def _row(engine: Engine, aid: int) -> Any:
    with engine.connect() as c:
        return c.execute(text("SELECT delivered_at, acknowledged_at, status, send_count "
                              "FROM assignments WHERE id = :a"), {"a": aid}).one()


def test_the_simulated_crew_acknowledges_through_the_delivery_path(
    settings: Settings, engine: Engine
) -> None:
    """Assigned over HTTP, the simulated crew's receipt and acknowledgement are stored (with
    their events) before it goes en route; the server's clearing of the acknowledged message
    does not turn it back; no resend and no not-acknowledged alert follow."""
    s = mqtt_settings(settings, serve_ingest=True, tile_url="", assignment_retry_s=1.0,
                      assignment_ack_timeout_s=4.0)
    centre = LatLng(50.45, 30.52)
    roads = GridRoads(centre)
    device = f"simack-{uuid.uuid4().hex[:8]}"
    uid, token = ensure_unit(engine, s, device, status="available")
    spec = UnitSpec(device=device, token=token, call_sign=device[:32], unit_id=uid,
                    home=roads.node(0, 0))
    cfg = SimConfig(turnout_s=(3.0, 3.0), on_scene_s=(600.0, 600.0), report_s=1.0,
                    gps=GpsModel(dropout_rate_per_h=0.0))
    sim = Simulator([spec], roads=roads, config=cfg, seed=11)
    app = create_app(s)
    disp, sup = bearer("dispatcher", "KV"), bearer("supervisor", "KV")
    stop = threading.Event()
    with running_server(app) as base:
        assert app.state.tracking_ingest[0].connected.wait(15)
        transport = MqttTransport(s, [spec], on_assignment=sim.on_assignment, shared=True,
                                  client_prefix=f"simack-{uuid.uuid4().hex[:6]}")
        transport.connect()
        runner = threading.Thread(target=sim.run, args=(transport,),
                                  kwargs={"stop": stop, "tick_s": 0.2}, daemon=True)
        runner.start()
        try:
            far = roads.node(8, 8)
            r = httpx.post(f"{base}/api/incidents", headers=disp, json={
                "lat": far.lat, "lng": far.lng, "category": "theft",
                "idempotency_key": uuid.uuid4().hex})
            assert r.status_code == 201, r.text
            inc = r.json()["id"]
            r = httpx.post(f"{base}/api/incidents/{inc}/assignments", headers=disp,
                           json={"unit_id": uid, "override_reason": "sim ack test"})
            assert r.status_code == 201, r.text
            aid = int(r.json()["id"])
            assert wait_for(lambda: _row(engine, aid).acknowledged_at is not None, timeout=15), \
                f"not acknowledged: {_row(engine, aid)}, sim acks {sim.stats.acks}"
            row = _row(engine, aid)
            assert row.delivered_at is not None and row.delivered_at <= row.acknowledged_at
            assert wait_for(lambda: _row(engine, aid).status == "en_route", timeout=15)
            sends = _row(engine, aid).send_count  # (a send the broker was slow to confirm
            assert sends >= 1                      # within the retry interval is sent again)
            time.sleep(5.0)  # past the acknowledgement timeout: nothing is sent again
            row = _row(engine, aid)
            assert row.status == "en_route" and row.send_count == sends, row
            r = httpx.get(f"{base}/api/dispatch/alerts", headers=sup)
            assert ("not_acknowledged", uid) not in {
                (a["kind"], a.get("unit_id")) for a in r.json()["items"]}
        finally:
            stop.set()
            runner.join(10)
            transport.close()
    with engine.connect() as c:
        kinds = list(c.execute(text(
            "SELECT kind FROM incident_events WHERE incident_id = :i ORDER BY incident_seq"),
            {"i": inc}).scalars())
    assert kinds.count("assignment_sent") == sends
    for kind in ("assignment_delivered", "assignment_acknowledged"):
        assert kinds.count(kind) == 1, (kind, kinds)
    assert kinds.index("assignment_acknowledged") < max(
        i for i, k in enumerate(kinds) if k == "crew_status")
    with engine.begin() as c:  # the crew stands down for the next test run
        c.execute(text("UPDATE units SET active = false WHERE id = :u"), {"u": uid})
