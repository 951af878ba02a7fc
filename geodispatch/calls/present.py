"""Calls as the console sees them (the list, one call, the live feed): plain JSON-able dicts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from geodispatch.calls import service
from geodispatch.calls.models import Call, CallLocation
from geodispatch.incidents.record import call_events, event_dict


def call_json(session: Session, c: Call, *, events: bool = False,
              latest: dict[int, CallLocation] | None = None) -> dict[str, Any]:
    """``latest``: the calls' newest locations when the caller fetched them for a whole list."""
    loc = (latest.get(c.id) if latest is not None
           else service.latest_location(session=session, call_id=c.id))
    out: dict[str, Any] = {
        "id": c.id, "source": c.source, "external_id": c.external_id,
        "caller_phone": c.caller_phone, "line": c.line, "state": c.state,
        "ring_at": c.ring_at.isoformat(), "recorded_at": c.recorded_at.isoformat()
        if c.recorded_at else None, "queue_position": c.queue_position,
        "answered_at": c.answered_at.isoformat() if c.answered_at else None,
        "operator": c.operator, "ended_at": c.ended_at.isoformat() if c.ended_at else None,
        "outcome": c.outcome, "outcome_by": c.outcome_by, "incident_id": c.incident_id,
        "transferred_to": c.transferred_to, "note": c.note,
        "closed_at": c.closed_at.isoformat() if c.closed_at else None,
        "location": None if loc is None else location_json(loc),
        # grows with every event of the call: a newer copy of the call replaces an older one
        "version": c.event_count,
    }
    if events:
        out["events"] = [event_dict(e) for e in call_events(session=session, call_id=c.id)]
        out["locations"] = [location_json(x) for x in session.execute(
            select(CallLocation).where(CallLocation.call_id == c.id)
            .order_by(CallLocation.received_at, CallLocation.id)).scalars()]
    return out


def location_json(x: CallLocation) -> dict[str, Any]:
    return {"id": x.id, "kind": x.kind, "phone": x.phone, "lat": x.lat, "lng": x.lng,
            "radius_m": x.radius_m, "method": x.method, "confidence": x.confidence,
            "fix_at": x.fix_at.isoformat() if x.fix_at else None,
            "received_at": x.received_at.isoformat(), "call_id": x.call_id}


