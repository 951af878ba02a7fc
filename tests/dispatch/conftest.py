"""Dispatch fixtures: crews with a position, incidents, and a live fleet read from the database."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.geo import LatLng
from geodispatch.incidents.models import Incident
from geodispatch.incidents.schemas import IncidentCreate
from geodispatch.incidents.service import register_incident
from geodispatch.settings import Settings
from geodispatch.tracking.fleet import LiveFleet
from tests.api.conftest import accounts  # noqa: F401  (the per-role console users)

KYIV = LatLng(50.4501, 30.5234)


def add_crew(session: Session, p: LatLng | None, *, kind: str = "patrol_car",
             caps: tuple[str, ...] = ("patrol",), status: str = "available", region: str = "KV",
             fix_age_s: float = 5.0, home_zone_id: int | None = None) -> int:
    """Insert a unit (and its latest fix at ``p``) directly; return its id."""
    cs = "T-" + uuid.uuid4().hex[:8]
    uid = int(session.execute(text(
        "INSERT INTO units (call_sign, kind, capabilities, region, status, status_changed_at,"
        " device_id, device_token_hash, active, home_zone_id) VALUES (:cs, :k, :c, :r, :s, now(),"
        " :cs, 'x', true, :hz) RETURNING id"),
        {"cs": cs, "k": kind, "c": list(caps), "r": region, "s": status, "hz": home_zone_id}
    ).scalar_one())
    if p is not None:
        t = datetime.now(UTC) - timedelta(seconds=fix_age_s)
        session.execute(text(
            "INSERT INTO unit_latest (unit_id, fix_time, received_at, geom, h3, online)"
            " VALUES (:u, :t, :t, ST_SetSRID(ST_MakePoint(:lng, :lat), 4326), 0, true)"),
            {"u": uid, "t": t, "lat": p.lat, "lng": p.lng})
    return uid


@pytest.fixture()
def crew(db: Session) -> Callable[..., int]:
    def make(p: LatLng | None = KYIV, **kw: Any) -> int:
        return add_crew(db, p, **kw)
    return make


@pytest.fixture()
def incident(db: Session) -> Callable[..., Incident]:
    def make(p: LatLng = KYIV, **kw: Any) -> Incident:
        body = {"lat": p.lat, "lng": p.lng, "category": "theft", "caller_phone": "+380671112233",
                "caller_lang": "en", "idempotency_key": uuid.uuid4().hex, **kw}
        return register_incident(session=db, data=IncidentCreate(**body), actor="ct")
    return make


@pytest.fixture()
def fleet(db: Session, settings: Settings) -> Callable[[], LiveFleet]:
    def make() -> LiveFleet:
        f = LiveFleet(settings)
        f.refresh(db)
        return f
    return make
