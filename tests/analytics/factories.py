"""Hand-built incidents, crews and assignments for the analytics tests (plain ORM rows)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import h3
from sqlalchemy.orm import Session

from geodispatch.dispatch.models import Assignment
from geodispatch.geo import LatLng
from geodispatch.incidents.models import Incident
from geodispatch.tracking.models import Unit

KYIV = LatLng(50.4501, 30.5234)


def make_unit(session: Session, *, region: str = "TA") -> Unit:
    name = f"T-{uuid.uuid4().hex[:10]}"
    unit = Unit(call_sign=name, kind="patrol_car", capabilities=[], region=region, device_id=name,
                device_token_hash="!", status="available", active=True)
    session.add(unit)
    session.flush()
    return unit


def make_incident(
    session: Session,
    *,
    received: datetime,
    registered_after_s: float = 30.0,
    at: LatLng = KYIV,
    region: str = "TA",
    category: str = "theft",
    priority: int = 2,
    status: str = "closed",
    phone: str | None = None,
) -> Incident:
    inc = Incident(
        reference=f"T-{uuid.uuid4().hex[:12]}", region=region, received_at=received,
        registered_at=received + timedelta(seconds=registered_after_s),
        location=at.to_ewkt(), h3=h3.str_to_int(at.h3_cell(9)), category=category,
        original_category=category, priority=priority, status=status, description="",
        created_by="test", caller_lang="uk", sms_opt_out=False, source="call", caller_phone=phone,
    )
    session.add(inc)
    session.flush()
    return inc


def make_assignment(
    session: Session,
    incident: Incident,
    *,
    dispatched_after_s: float,
    en_route_after_s: float | None = None,
    on_scene_after_s: float | None = None,
    cleared_after_s: float | None = None,
) -> Assignment:
    t0 = incident.received_at

    def at(s: float | None) -> datetime | None:
        return None if s is None else t0 + timedelta(seconds=s)

    unit = make_unit(session, region=incident.region)
    a = Assignment(
        incident_id=incident.id, unit_id=unit.id, status="cleared", is_lead=False,
        was_recommended=True, created_by="test", dispatched_at=at(dispatched_after_s),
        en_route_at=at(en_route_after_s), on_scene_at=at(on_scene_after_s),
        cleared_at=at(cleared_after_s),
    )
    session.add(a)
    session.flush()
    return a
