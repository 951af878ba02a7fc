"""One table from domain errors to HTTP statuses, and one JSON problem format (RFC 9457).

Every error response of the API, whatever raised it (a domain error, request validation, routing,
the login rate limiter, an unexpected bug), is ``application/problem+json`` with ``type``,
``title``, ``status``, ``detail`` and ``instance`` (the request path). Unknown errors become a 500
carrying a request id that is also in the log, never a vague 422.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from geodispatch import errors

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
#: Retry-After of the answer when no pooled database connection was free in time.
POOL_RETRY_AFTER_S = 1

STATUS: dict[type[errors.GeodispatchError], int] = {
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.InvalidInput: 422,
    errors.PermissionDenied: 403,
    errors.Unauthenticated: 401,
    errors.ConfigurationError: 503,
}

TITLES: dict[int, str] = {
    400: "Bad request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


class RateLimited(Exception):
    """The caller exceeded a rate limit; retry after ``retry_after_s`` s (an API-edge error)."""

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = max(1, int(retry_after_s))


class Problem(BaseModel):
    """An RFC 9457 problem document: the body of every error response."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "about:blank",
                    "title": "NotFound",
                    "status": 404,
                    "detail": "incident 42 not found",
                    "instance": "/api/incidents/42",
                }
            ]
        },
    )

    type: str = Field("about:blank", description="URI identifying the problem type.")
    title: str = Field(description="Short summary: the error class or the HTTP reason.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="Human-readable explanation of this occurrence.")
    instance: str | None = Field(None, description="The request path that failed.")
    request_id: str | None = Field(None, description="Set on 500s; the same id is in the log.")
    errors: list[dict[str, Any]] | None = Field(
        None, description="Validation issues (422): loc, msg, type for each."
    )


def problem_response(description: str, example: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI ``responses`` entry for a problem document with one example."""
    return {
        "description": description,
        "model": Problem,
        "content": {PROBLEM_MEDIA_TYPE: {"example": example}},
    }


def problem(
    status: int, title: str, detail: str, *, headers: Mapping[str, str] | None = None,
    **extra: object,
) -> JSONResponse:
    body: dict[str, object] = {
        "type": "about:blank", "title": title, "status": status, "detail": detail, **extra,
    }
    hdrs = dict(headers or {})
    if status == 401:
        hdrs.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE,
                        headers=hdrs or None)


def status_for(exc: errors.GeodispatchError) -> int:
    return next((s for t, s in STATUS.items() if isinstance(exc, t)), 400)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem document."""

    @app.exception_handler(errors.GeodispatchError)
    async def domain_error(request: Request, exc: errors.GeodispatchError) -> JSONResponse:
        reserved = {"type", "title", "status", "detail", "instance", "headers"}
        extra = {k: v for k, v in exc.extra.items() if k not in reserved}
        return problem(status_for(exc), type(exc).__name__, str(exc), instance=request.url.path,
                       **extra)

    @app.exception_handler(RateLimited)
    async def rate_limited(request: Request, exc: RateLimited) -> JSONResponse:
        return problem(429, TITLES[429], str(exc), headers={"Retry-After": str(exc.retry_after_s)},
                       instance=request.url.path, retry_after=exc.retry_after_s)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        issues = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return problem(422, TITLES[422], "the request does not match the schema",
                       instance=request.url.path, errors=issues)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = TITLES.get(exc.status_code, "HTTP error")
        return problem(exc.status_code, title, str(exc.detail), headers=exc.headers,
                       instance=request.url.path)

    @app.exception_handler(PoolTimeout)
    async def pool_exhausted(request: Request, exc: PoolTimeout) -> JSONResponse:
        # Every pooled database connection is busy (a burst, a slow query): a moment's wait,
        # not a fault of the server. Clients retry after Retry-After (the crew app's outbox
        # keeps the press queued meanwhile).
        log.warning("database pool exhausted on %s %s: %s", request.method, request.url.path,
                    str(exc).splitlines()[0][:200])
        return problem(503, TITLES[503], "the server is busy (no free database connection); "
                       f"retry in {POOL_RETRY_AFTER_S} s",
                       headers={"Retry-After": str(POOL_RETRY_AFTER_S)},
                       instance=request.url.path, retry_after=POOL_RETRY_AFTER_S)

    @app.exception_handler(Exception)
    async def unknown_error(request: Request, exc: Exception) -> JSONResponse:
        rid = uuid.uuid4().hex[:12]
        log.exception("unhandled error on %s %s, request id %s", request.method,
                      request.url.path, rid)
        return problem(500, TITLES[500], f"unexpected error; request id {rid}",
                       instance=request.url.path, request_id=rid)
