"""Every error is one problem+json shape; the OpenAPI document lists problems and roles."""

from __future__ import annotations

import httpx
from fastapi import APIRouter
from sqlalchemy import text

from geodispatch.api.app import create_app
from geodispatch.api.deps import SessionDep
from geodispatch.errors import Conflict
from geodispatch.settings import Settings
from tests.api.conftest import Account
from tests.helpers import login, running_server

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}


def _app(settings: Settings):  # type: ignore[no-untyped-def]
    app = create_app(settings.model_copy(update={"serve_ingest": False}))
    extra = APIRouter()

    @extra.get("/test/conflict")
    def conflict() -> None:
        raise Conflict("incident 7 is already closed")

    @extra.get("/test/bug")
    def bug() -> None:
        raise RuntimeError("boom")

    @extra.post("/test/commit-fails")
    def commit_fails(session: SessionDep) -> dict[str, bool]:
        # a deferred unique constraint: every statement succeeds, the COMMIT fails
        session.execute(text("CREATE TEMP TABLE once (n int UNIQUE DEFERRABLE INITIALLY "
                             "DEFERRED) ON COMMIT DROP"))
        session.execute(text("INSERT INTO once VALUES (1), (1)"))
        return {"stored": True}

    app.include_router(extra)
    return app


def test_failed_commit_is_not_answered_as_success(settings: Settings) -> None:
    """The request's transaction commits before the response goes out: a write whose commit
    fails answers 500, never a 2xx the client would trust (FastAPI's default dependency scope
    would send the response first and commit after)."""
    with running_server(_app(settings)) as base:
        r = httpx.post(f"{base}/test/commit-fails")
        assert r.status_code == 500, r.text
        assert r.headers["content-type"].startswith("application/problem+json")


def test_problem_documents(settings: Settings, accounts: dict[str, Account]) -> None:
    """404, 405, 409, 422 and 500 all answer application/problem+json with the same keys."""
    with running_server(_app(settings)) as base:
        h = login(base, accounts["dispatcher"].username, accounts["dispatcher"].password)
        cases = [
            (httpx.get(f"{base}/api/nowhere"), 404),
            (httpx.delete(f"{base}/api/auth/me", headers=h), 405),
            (httpx.get(f"{base}/test/conflict"), 409),
            (httpx.get(f"{base}/api/geocode/search", params={"q": ""}, headers=h), 422),
            (httpx.get(f"{base}/test/bug"), 500),
        ]
        for r, status in cases:
            assert r.status_code == status, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            body = r.json()
            assert body.keys() >= PROBLEM_KEYS, body
            assert body["status"] == status
        assert "boom" not in cases[-1][0].text, "internal details stay in the log"
        assert cases[-1][0].json()["request_id"]
        assert cases[3][0].json()["errors"]


def test_openapi_lists_roles_and_problems(settings: Settings) -> None:
    """Each operation names its roles (x-roles) and documents problem responses."""
    app = create_app(settings.model_copy(update={"serve_ingest": False}))
    doc = app.openapi()
    assert "Problem" in doc["components"]["schemas"]
    ops = [op for item in doc["paths"].values() for op in item.values()]
    assert ops
    ids = [op["operationId"] for op in ops]
    assert len(ids) == len(set(ids)), "operation ids are unique"
    for op in ops:
        assert "x-roles" in op, op["operationId"]
        assert "500" in op["responses"]
        if op["x-roles"] != ["anonymous"]:
            assert {"401", "403"} <= op["responses"].keys()
    me = doc["paths"]["/api/auth/me"]["get"]
    assert "example" in me["responses"]["401"]["content"]["application/problem+json"]
    token = doc["paths"]["/api/auth/token"]["post"]
    assert "429" in token["responses"]
