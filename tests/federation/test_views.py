"""EIDO export endpoint: region-scoped for regional users, everything for the national role.

A real uvicorn serves an app with only the federation router, its request session bound to the
test's rolled-back transaction (requests are sequential).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from geodispatch.api import errors
from geodispatch.api.deps import get_session
from geodispatch.db import session_factory, transaction
from geodispatch.federation.views import router
from geodispatch.settings import Settings
from tests.federation.conftest import insert_incident, insert_raw_event
from tests.helpers import account_check, bearer, running_server


@pytest.fixture()
def client(db: Session, settings: Settings) -> Iterator[httpx.Client]:
    app = FastAPI()
    app.state.settings = settings
    app.state.accounts = account_check()
    errors.install(app)
    app.include_router(router)

    def session() -> Iterator[Session]:
        yield db

    app.dependency_overrides[get_session] = session
    with running_server(app) as base, httpx.Client(base_url=base) as c:
        yield c


def _auth(settings: Settings, role: str, region: str | None) -> dict[str, str]:
    return bearer(role, region)


def test_export_scoped(client: httpx.Client, settings: Settings, engine: Engine,
                       sequencer: Any) -> None:
    """An ADX supervisor gets ADX incidents only; KV is refused; national sees both."""
    with transaction(session_factory(engine)) as s:
        a, a_ref = insert_incident(s, region="ADX")
        k, k_ref = insert_incident(s, region="KV")
        insert_raw_event(s, a, "registered", 0)
        insert_raw_event(s, k, "registered", 0)
    sequencer.drain()
    sup = _auth(settings, "supervisor", "ADX")
    refs = [d["incidentComponent"]["internalIncidentId"]
            for d in client.get("/api/federation/eido", headers=sup).json()]
    assert a_ref in refs and k_ref not in refs
    assert client.get("/api/federation/eido", params={"region": "KV"},
                      headers=sup).status_code == 403
    nat = _auth(settings, "national", None)
    refs = [d["incidentComponent"]["internalIncidentId"]
            for d in client.get("/api/federation/eido", headers=nat).json()]
    assert {a_ref, k_ref} <= set(refs)
    one = client.get(f"/api/federation/eido/{k_ref}", headers=nat)
    assert one.status_code == 200 and one.json()["incidentComponent"]["internalIncidentId"] == k_ref
    assert client.get(f"/api/federation/eido/{k_ref}", headers=sup).status_code == 404
    assert client.get("/api/federation/eido",
                      headers=_auth(settings, "call_taker", "ADX")).status_code == 403


def test_import_needs_admin(client: httpx.Client, settings: Settings) -> None:
    """The national role is read-only: it may not import."""
    r = client.post("/api/federation/eido", json={}, headers=_auth(settings, "national", None))
    assert r.status_code == 403
