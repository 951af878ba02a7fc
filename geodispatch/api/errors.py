"""One table from domain errors to HTTP statuses, and one JSON problem format (RFC 9457).

Unknown errors become a 500 carrying a request id that is also in the log, never a vague 422.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from geodispatch import errors

log = logging.getLogger(__name__)

STATUS: dict[type[errors.GeodispatchError], int] = {
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.InvalidInput: 422,
    errors.PermissionDenied: 403,
    errors.Unauthenticated: 401,
    errors.ConfigurationError: 503,
}


def problem(status: int, title: str, detail: str, **extra: object) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type="application/problem+json",
                        headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.GeodispatchError)
    async def domain_error(request: Request, exc: errors.GeodispatchError) -> JSONResponse:
        status = next((s for t, s in STATUS.items() if isinstance(exc, t)), 400)
        return problem(status, type(exc).__name__, str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        issues = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return problem(422, "Invalid request", "the request does not match the schema",
                       errors=issues)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, "HTTP error", str(exc.detail))

    @app.exception_handler(Exception)
    async def unknown_error(request: Request, exc: Exception) -> JSONResponse:
        rid = uuid.uuid4().hex[:12]
        log.exception("unhandled error, request id %s", rid)
        return problem(500, "Internal error", f"unexpected error; request id {rid}", request_id=rid)
