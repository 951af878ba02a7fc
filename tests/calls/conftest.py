"""Calls fixtures: a ring helper with unique phone-system call ids."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session

from geodispatch.calls import service
from geodispatch.calls.models import Call


@pytest.fixture()
def ring(db: Session) -> Callable[..., Call]:
    def make(caller: str | None = "+380671112233", **kw: Any) -> Call:
        call, created = service.ring(session=db, source="test",
                                     external_id=kw.pop("external_id", uuid.uuid4().hex),
                                     caller=caller, **kw)
        assert created
        return call
    return make


@pytest.fixture()
def make_incident(db: Session) -> Callable[..., Any]:
    from geodispatch.incidents.schemas import IncidentCreate
    from geodispatch.incidents.service import register_incident

    def make(**kw: Any) -> Any:
        body = {"lat": 50.4501, "lng": 30.5234, "category": "theft",
                "caller_phone": "+380671112233", "description": "test",
                "idempotency_key": uuid.uuid4().hex, **kw}
        return register_incident(session=db, data=IncidentCreate(**body), actor="ct1")
    return make
