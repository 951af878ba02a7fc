"""Federation fixtures: incidents with events, crews and assignments in the test transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

T0 = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)


def insert_incident(db: Session, *, region: str = "ADX", status: str = "registered",
                    lat: float = 42.5078, lng: float = 1.5211) -> tuple[int, str]:
    """An incident row (no events); returns (id, reference)."""
    from h3.api import basic_int as h3i

    ref = f"{region}-T-{uuid.uuid4().hex[:10]}"
    iid = db.execute(
        text(
            "INSERT INTO incidents (reference, region, received_at, location, h3, category, "
            "original_category, priority, status, description, created_by, caller_lang, "
            "sms_opt_out, source, address) VALUES (:ref, :region, :t, "
            "ST_SetSRID(ST_MakePoint(:lng, :lat), 4326), :h3, 'theft', 'theft', 2, :status, "
            "'bike stolen', 'ct1', 'uk', false, 'call', 'Av. Meritxell 1') RETURNING id"
        ),
        {"ref": ref, "region": region, "t": T0, "lat": lat, "lng": lng, "status": status,
         "h3": h3i.latlng_to_cell(lat, lng, 9)},
    ).scalar_one()
    return int(iid), ref


def insert_raw_event(db: Session, incident_id: int, kind: str, minutes: int) -> None:
    """An event through the real record (the incident row was inserted directly above)."""
    from geodispatch.incidents.record import append_event

    append_event(session=db, incident_id=incident_id, kind=kind, actor="d1",
                 data={"note": "x"}, at=T0 + timedelta(minutes=minutes))


def insert_assignment(db: Session, incident_id: int, status: str = "on_scene") -> str:
    sign = f"P-{uuid.uuid4().hex[:6]}"
    uid = db.execute(
        text(
            "INSERT INTO units (call_sign, kind, capabilities, region, status, device_id, "
            "device_token_hash, active) VALUES (:c, 'patrol_car', '{}', 'ADX', 'on_scene', :c, "
            "'x', true) RETURNING id"
        ),
        {"c": sign},
    ).scalar_one()
    db.execute(
        text(
            "INSERT INTO assignments (incident_id, unit_id, status, is_lead, was_recommended, "
            "created_by) VALUES (:i, :u, :s, true, true, 'd1')"
        ),
        {"i": incident_id, "u": uid, "s": status},
    )
    return sign


@pytest.fixture()
def make_incident(db: Session) -> Callable[..., tuple[int, str]]:
    def make(**kw: Any) -> tuple[int, str]:
        return insert_incident(db, **kw)

    return make
