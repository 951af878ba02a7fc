"""The live feed's incident queries: open incidents per region, changes since an event id.

Rows are written inside the rolled-back test transaction (never committed), so the shared event
chain is not touched.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from geodispatch.api.livefeed import incident_changes_since, open_incidents
from geodispatch.eventfeed import last_event_id
from geodispatch.geo import LatLng
from geodispatch.incidents.models import Incident, IncidentEvent


def _incident(db: Session, region: str, status: str, phone: str = "+380671234567") -> Incident:
    p = LatLng(50.45, 30.52)
    inc = Incident(
        reference=f"T-{uuid.uuid4().hex[:10]}", region=region, received_at=datetime.now(UTC),
        caller_phone=phone, location=p.to_ewkt(), h3=int(p.h3_cell(9), 16), category="theft",
        original_category="theft", priority=2, status=status, created_by="test",
    )
    db.add(inc)
    db.flush()
    return inc


def _event(db: Session, incident: Incident, kind: str) -> IncidentEvent:
    from geodispatch.incidents.record import append_event

    eid = append_event(session=db, incident_id=incident.id, kind=kind, actor="test")
    ev = db.get(IncidentEvent, eid)
    assert ev is not None
    return ev


def test_open_incidents_are_regional_and_carry_no_phone(db: Session) -> None:
    """The snapshot lists open incidents of the region only, without caller details."""
    mine = _incident(db, "KV", "queued")
    _incident(db, "LV", "queued")
    closed = _incident(db, "KV", "closed")
    rows = open_incidents(session=db, region="KV")
    ids = {r["id"] for r in rows}
    assert mine.id in ids and closed.id not in ids
    assert all(r["region"] == "KV" for r in rows)
    assert all("caller_phone" not in r and "+380" not in str(r) for r in rows)


def test_changes_since_returns_current_state_once_per_incident(db: Session) -> None:
    """Several new events of one incident give one row with its newest event."""
    start = last_event_id(session=db)
    inc = _incident(db, "KV", "registered")
    _event(db, inc, "registered")
    inc.status = "assigned"
    db.flush()
    last = _event(db, inc, "assigned")
    rows, ids = incident_changes_since(session=db, after_id=start)
    mine = [r for r in rows if r["id"] == inc.id]
    assert len(mine) == 1
    assert mine[0]["status"] == "assigned"
    assert mine[0]["last_event"]["kind"] == "assigned"
    assert last.id in ids
    again, _ = incident_changes_since(session=db, after_id=start, exclude=ids)
    assert all(r["id"] != inc.id for r in again), "events already read are skipped"
