"""Intake fixtures: a registration body and a helper registering one incident."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session

from geodispatch.incidents.models import Incident
from geodispatch.incidents.schemas import IncidentCreate
from geodispatch.incidents.service import register_incident

KYIV = (50.4501, 30.5234)


@pytest.fixture()
def make_incident(db: Session) -> Callable[..., Incident]:
    def make(**kw: Any) -> Incident:
        body = {"lat": KYIV[0], "lng": KYIV[1], "category": "theft",
                "caller_phone": "+380671112233", "description": "test",
                "idempotency_key": uuid.uuid4().hex, **kw}
        return register_incident(session=db, data=IncidentCreate(**body), actor="ct1")
    return make
