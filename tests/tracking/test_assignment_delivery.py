"""Assignment delivery over MQTT end to end: the server's delivery loop publishes an assignment
that was committed without a broker publish, records it as sent, and the crew terminal's
acknowledgement on ``assignment/ack`` is stored by the ingest worker, not dropped."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geodispatch.api.app import create_app
from geodispatch.dispatch.workflow import assign
from geodispatch.incidents.schemas import IncidentCreate
from geodispatch.incidents.service import register_incident
from geodispatch.settings import Settings
from tests.helpers import running_server
from tests.tracking.conftest import publisher, running_worker, wait_for


def _assignment(engine: Engine, aid: int) -> Any:
    with engine.connect() as c:
        return c.execute(text("SELECT sent_at, send_count, delivered_at, acknowledged_at, status"
                              " FROM assignments WHERE id = :a"), {"a": aid}).one()


def test_delivery_loop_sends_and_mqtt_ack_is_stored(settings: Settings, engine: Engine,
                                                    new_unit: Any) -> None:
    """Assigned with no publish at all (as when the broker was down): the loop delivers it,
    an ``assignment_sent`` event is stored; the crew's MQTT ack sets acknowledged_at."""
    uid, device, _token = new_unit("dlv", status="available")
    with Session(engine) as s, s.begin():
        inc = register_incident(session=s, data=IncidentCreate(
            lat=50.45, lng=30.52, category="theft", idempotency_key=uuid.uuid4().hex),
            actor="ct")
        a = assign(session=s, incident_id=inc.id, unit_id=uid, actor="d", override_reason="t")
        aid, inc_id = a.id, inc.id
    got: list[bytes] = []
    # The terminal's side of the topics. Played by the server account: helpers' worktrees cannot
    # add device logins to the shared broker (the device ACL is tested in test_mqtt.py).
    term = publisher(settings)
    term.on_message = lambda _c, _u, m: got.append(bytes(m.payload))
    term.subscribe(f"geodispatch/units/{device}/assignment", qos=1)
    app = create_app(settings.model_copy(update={"serve_ingest": False,
                                                 "assignment_retry_s": 0.3}))
    try:
        with running_worker(settings), running_server(app):
            assert wait_for(lambda: any(g and orjson.loads(g).get("id") == aid for g in got),
                            timeout=10), got
            assert wait_for(lambda: _assignment(engine, aid).sent_at is not None, timeout=10)
            term.publish(f"geodispatch/units/{device}/assignment/ack",
                         orjson.dumps({"id": aid, "key": uuid.uuid4().hex}), qos=1)
            assert wait_for(lambda: _assignment(engine, aid).acknowledged_at is not None,
                            timeout=10)
            row = _assignment(engine, aid)
            assert row.status == "acknowledged" and row.send_count == 1
            # The worker cleared the retained message of the acknowledged assignment.
            assert wait_for(lambda: got[-1] == b"", timeout=5)
    finally:
        term.loop_stop()
    with engine.connect() as c:
        kinds = list(c.execute(text("SELECT kind FROM incident_events WHERE incident_id = :i"
                                    " ORDER BY incident_seq"), {"i": inc_id}).scalars())
    assert kinds.count("assignment_sent") == 1 and kinds.count("assignment_acknowledged") == 1


def test_broker_unreachable_assignment_waits_unsent_and_alerts(
    settings: Settings, engine: Engine, new_unit: Any
) -> None:
    """With no broker at all the server still starts and assigns; the assignment stays unsent
    (the loop keeps trying) and, unacknowledged past the timeout, raises the supervisor alert."""
    from urllib.parse import urlsplit, urlunsplit

    from geodispatch.dispatch.alerts import supervisor_alerts

    parts = urlsplit(settings.mqtt_url)
    dead = urlunsplit(parts._replace(netloc=parts.netloc.rsplit(":", 1)[0] + ":9"))
    uid, _device, _token = new_unit("nob", status="available")
    s = settings.model_copy(update={"serve_ingest": False, "mqtt_url": dead,
                                    "assignment_retry_s": 0.3, "assignment_ack_timeout_s": 1.0})
    app = create_app(s)
    with running_server(app):
        with Session(engine) as db, db.begin():
            inc = register_incident(session=db, data=IncidentCreate(
                lat=50.45, lng=30.52, category="theft", idempotency_key=uuid.uuid4().hex),
                actor="ct")
            aid = assign(session=db, incident_id=inc.id, unit_id=uid, actor="d",
                         override_reason="t").id
        time.sleep(1.5)
        assert app.state.mqtt is None
        row = _assignment(engine, aid)
        assert row.sent_at is None and row.send_count == 0
        with Session(engine) as db:
            kinds = {(a.kind, a.unit_id) for a in supervisor_alerts(
                session=db, region=None, settings=s)}
        assert ("not_acknowledged", uid) in kinds
