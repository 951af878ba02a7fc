"""SMS outbox: delivery, retries with exponential backoff, HTTP gateway, opt-out, templates."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.incidents.models import Incident
from geodispatch.incidents.record import record_sms_outcome
from geodispatch.incidents.schemas import IncidentCreate
from geodispatch.incidents.service import register_incident
from geodispatch.notify.gateway import FileGateway, GatewayError, HttpGateway
from geodispatch.notify.models import SmsMessage
from geodispatch.notify.outbox import backoff_s, deliver_due, enqueue_sms, opt_out
from geodispatch.notify.templates import render
from geodispatch.settings import Settings


def _incident(db: Session, lang: str = "uk", phone: str = "+380671112233") -> Incident:
    return register_incident(session=db, data=IncidentCreate(
        lat=50.45, lng=30.52, category="theft", caller_phone=phone, caller_lang=lang,
        idempotency_key=uuid.uuid4().hex), actor="ct")


class FlakyGateway:
    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.sent: list[str] = []

    def send(self, *, phone: str, body: str, ref: str) -> str:
        if self.fail > 0:
            self.fail -= 1
            raise GatewayError("temporarily down")
        self.sent.append(body)
        return "gw-" + ref


def _mine(db: Session, inc: Incident) -> SmsMessage:
    return db.query(SmsMessage).filter(SmsMessage.incident_id == inc.id).one()


def test_templates_in_ukrainian_and_english() -> None:
    """Every template exists in uk and en; unknown languages fall back to English."""
    uk, _ = render("assigned", "uk", reference="KV-1", call_sign="P-1", eta_min=4)
    en, _ = render("assigned", "en", reference="KV-1", call_sign="P-1", eta_min=4)
    assert "екіпаж" in uk and "crew" in en and "4" in en
    assert render("closed", "de", reference="X")[1] == "en"


def test_backoff_grows_exponentially() -> None:
    """5 s, 10 s, 20 s ... capped."""
    assert [backoff_s(n) for n in (1, 2, 3)] == [5.0, 10.0, 20.0]
    assert backoff_s(50) == 3600.0


def test_delivery_records_an_event(db: Session, tmp_path: Path, settings: Settings) -> None:
    """A delivered message is marked sent and an sms_sent event is appended."""
    inc = _incident(db)
    gw = FileGateway(tmp_path / "sms.log")
    now = datetime.now(UTC) + timedelta(seconds=1)
    while deliver_due(session=db, gateway=gw, record=record_sms_outcome, settings=settings,
                      now=now, limit=500):
        if _mine(db, inc).status != "pending":
            break
    m = _mine(db, inc)
    assert m.status == "sent" and inc.reference in (tmp_path / "sms.log").read_text()
    kinds = db.execute(text("SELECT kind FROM incident_events WHERE incident_id = :i"),
                       {"i": inc.id}).scalars().all()
    assert "sms_sent" in kinds


def test_retries_with_backoff_then_fails(db: Session, settings: Settings) -> None:
    """Failures are retried later; after sms_max_attempts the message is failed (an event)."""
    inc = _incident(db)
    # (every other queued message, missed-call ones without an incident too)
    db.execute(text("UPDATE sms_outbox SET status = 'suppressed' WHERE status = 'pending' "
                    "AND incident_id IS DISTINCT FROM :i"), {"i": inc.id})
    s = settings.model_copy(update={"sms_max_attempts": 3})
    gw = FlakyGateway(fail=10)
    now = datetime.now(UTC) + timedelta(seconds=1)
    deliver_due(session=db, gateway=gw, record=record_sms_outcome, settings=s, now=now)
    m = _mine(db, inc)
    assert m.status == "pending" and m.attempts == 1
    assert m.next_attempt_at >= now + timedelta(seconds=4.9)
    # not due yet
    assert deliver_due(session=db, gateway=gw, record=record_sms_outcome, settings=s, now=now) == 0
    for _ in range(2):
        now = m.next_attempt_at + timedelta(seconds=1)
        deliver_due(session=db, gateway=gw, record=record_sms_outcome, settings=s, now=now)
    assert m.status == "failed" and m.attempts == 3
    kinds = db.execute(text("SELECT kind FROM incident_events WHERE incident_id = :i"),
                       {"i": inc.id}).scalars().all()
    assert "sms_failed" in kinds


def test_opt_out_is_respected(db: Session) -> None:
    """An opted-out number gets nothing; pending messages are suppressed."""
    phone = "+380671119999"
    inc = _incident(db, phone=phone)
    opt_out(session=db, phone=phone)
    assert _mine(db, inc).status == "suppressed"
    assert enqueue_sms(session=db, incident=inc, template="closed") is None


@pytest.fixture()
def standin_gateway() -> Iterator[tuple[str, list[dict[str, Any]], dict[str, int]]]:
    """A local HTTP server standing in for an SMS provider (fails the first N requests)."""
    received: list[dict[str, Any]] = []
    control = {"fail": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.headers.get("Authorization") != "Bearer s3cret":
                self.send_response(401)
                self.end_headers()
                return
            if control["fail"] > 0:
                control["fail"] -= 1
                self.send_response(503)
                self.end_headers()
                return
            received.append(body)
            out = json.dumps({"id": f"prov-{len(received)}"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/sms", received, control
    server.shutdown()
    server.server_close()
    thread.join()


def test_http_gateway_against_standin(db: Session, settings: Settings,
                                      standin_gateway: tuple[str, list[dict[str, Any]],
                                                             dict[str, int]]) -> None:
    """JSON POST with the token; a 503 is retried; the provider's id is stored."""
    url, received, control = standin_gateway
    inc = _incident(db, lang="en")
    # (every other queued message, missed-call ones without an incident too)
    db.execute(text("UPDATE sms_outbox SET status = 'suppressed' WHERE status = 'pending' "
                    "AND incident_id IS DISTINCT FROM :i"), {"i": inc.id})
    gw = HttpGateway(url, "s3cret")
    control["fail"] = 1
    now = datetime.now(UTC) + timedelta(seconds=1)
    deliver_due(session=db, gateway=gw, record=record_sms_outcome, settings=settings, now=now)
    m = _mine(db, inc)
    assert m.status == "pending" and "503" in (m.last_error or "")
    deliver_due(session=db, gateway=gw, record=record_sms_outcome, settings=settings,
                now=now + timedelta(minutes=5))
    assert m.status == "sent" and m.gateway_id == "prov-1"
    assert received[0]["to"] == "+380671112233" and inc.reference in received[0]["body"]
    bad = HttpGateway(url, "wrong")
    with pytest.raises(GatewayError) as err:
        bad.send(phone="+380671112233", body="x", ref="r")
    assert err.value.permanent
    gw.close()
    bad.close()
