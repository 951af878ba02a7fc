"""The FastAPI app factory. Engines, the road graph, the live fleet and MQTT are created in the
lifespan and kept on ``app.state``; nothing is built at import time.

Domain routers live beside their domain (``geodispatch/<domain>/views.py``, each exposing
``router``); this module only assembles them (the composition root: the one place that imports
every domain's views), adds the static dispatcher map and completes the
OpenAPI document (problem responses and the roles allowed on every operation).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from sqlalchemy.orm import Session

from geodispatch import __version__
from geodispatch.analytics import views as analytics_views
from geodispatch.api import auth, docs, errors, live, live_lifespan, web
from geodispatch.api.logs import install as install_log_scrubbing
from geodispatch.api.policy import iter_routes, route_policy
from geodispatch.api.ratelimit import LoginLimiter
from geodispatch.api.security import AccountCheck
from geodispatch.calls import lifespan as calls_lifespan
from geodispatch.calls import views as calls_views
from geodispatch.crew import lifespan as crew_lifespan
from geodispatch.crew import views as crew_views
from geodispatch.db import app_engine, check_database, session_factory
from geodispatch.dispatch import lifespan as dispatch_lifespan
from geodispatch.dispatch import views as dispatch_views
from geodispatch.dispatch.publish import publish_after_commit
from geodispatch.dispatch.workflow import crew_status_report
from geodispatch.federation import lifespan as federation_lifespan
from geodispatch.federation import views as federation_views
from geodispatch.geocoding import views as geocoding_views
from geodispatch.incidents import views as incidents_views
from geodispatch.incidents.record import record_sms_outcome
from geodispatch.notify import lifespan as notify_lifespan
from geodispatch.notify import views as notify_views
from geodispatch.routing import lifespan as routing_lifespan
from geodispatch.routing import views as routing_views
from geodispatch.settings import Settings, get_settings
from geodispatch.tiles import views as tiles_views
from geodispatch.tracking import lifespan as tracking_lifespan
from geodispatch.tracking import views as tracking_views
from geodispatch.zones import lifespan as zones_lifespan
from geodispatch.zones import views as zones_views

log = logging.getLogger(__name__)

_PUSH_KEY = "geodispatch.crew_status_push"


def pushing_status_handler(app: FastAPI) -> Any:
    """The crew-status handler of tracker ingest (MQTT status topics, ``/api/ingest/status``):
    the dispatch workflow's ``crew_status_report``, plus what a press in the crew app gets from
    its view: once the ingest's transaction commits, the live fleet (the dispatcher's map), the
    crew terminals' streams and the MQTT terminals are told, through the same after-commit
    hook (:func:`~geodispatch.dispatch.publish.publish_after_commit`). The app's MQTT client,
    fleet and crew hub are read at each call: the lifespans make them after this is wired."""

    def handle(*, session: Session, unit_id: int, status: str, at: datetime | None,
               source: str, key: str | None = None, assignment_id: int | None = None) -> str:
        result = crew_status_report(session=session, unit_id=unit_id, status=status, at=at,
                                    source=source, key=key, assignment_id=assignment_id)
        root = session.get_transaction()
        if root is not None and session.info.get(_PUSH_KEY) is not root:
            session.info[_PUSH_KEY] = root  # one hook per transaction, however many statuses
            state = app.state
            publish_after_commit(session, mqtt=getattr(state, "mqtt", None),
                                 fleet=getattr(state, "fleet", None),
                                 inflight=getattr(state, "delivery_inflight", None),
                                 terminals=getattr(state, "crew_hub", None))
        return result

    return handle


# Every domain's routes and start-up steps, imported explicitly: a missing module is an import
# error at start, never an app that silently runs without part of its API.
ROUTERS: tuple[Any, ...] = (
    auth, tracking_views, routing_views, geocoding_views, zones_views, federation_views,
    incidents_views, calls_views, dispatch_views, crew_views, notify_views, analytics_views, live,
    web, tiles_views,
)
#: Routers mounted at the root, outside ``/api``, because a standard fixes their paths
#: (NENA-STA-024's ``/IncidentData/ent`` and ``/incidents/{id}``).
ROOT_ROUTERS: tuple[Any, ...] = (federation_views.centre_router,)
#: Start-up/shutdown steps (``async start(app)`` / ``async stop(app)``), run in this order and
#: stopped in reverse.
LIFESPANS: tuple[Any, ...] = (
    routing_lifespan, zones_lifespan, tracking_lifespan, crew_lifespan, dispatch_lifespan,
    notify_lifespan, live_lifespan, federation_lifespan, calls_lifespan,
)

DESCRIPTION = """\
Dispatch and unit tracking for police emergency call centres.

* **Auth**: `POST /api/auth/token` (OAuth2 password flow) returns a JWT; send it as
  `Authorization: Bearer <token>`. Roles: call_taker, dispatcher, supervisor, analyst, admin,
  national (read-only, every region). Each operation lists the roles it allows (`x-roles`).
* **Errors**: every error is `application/problem+json` (RFC 9457) with `title`, `status`,
  `detail` and `instance`; 500s carry a `request_id` that is also in the server log.
* **Live**: `GET /api/live` upgrades to a WebSocket (token as `?token=` or as the first message
  `{"token": "..."}`) streaming unit positions and statuses and incident changes of the caller's
  region as JSON messages `{"type": "snapshot" | "units" | "incidents", ...}`.
* **Spatial data** is GeoJSON (`[lng, lat]`) unless a field says `lat`/`lng`.
"""


_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _problem(description: str, status: int, title: str, detail: str) -> dict[str, Any]:
    example = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return {"description": description, "content": {
        errors.PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_REF, "example": example}}}


def _complete_openapi(app: FastAPI) -> dict[str, Any]:
    """Generate the schema once, adding problem responses and roles to every operation."""
    if app.openapi_schema:
        return app.openapi_schema
    with warnings.catch_warnings():
        # One route serving several methods (api_route) shares one operation id in FastAPI;
        # the ids are made unique below instead of warning.
        warnings.filterwarnings("ignore", message="Duplicate Operation ID", category=UserWarning)
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes, tags=app.openapi_tags)
    seen_ids: set[str] = set()
    for path_item in schema.get("paths", {}).values():
        for method, op in path_item.items():
            op_id = op.get("operationId")
            if op_id in seen_ids:
                op["operationId"] = f"{op_id}_{method}"
            seen_ids.add(op["operationId"] if op_id else "")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = errors.Problem.model_json_schema(
        ref_template="#/components/schemas/{model}")
    for route in iter_routes(app.routes):
        if not getattr(route, "include_in_schema", False) or not getattr(route, "methods", None):
            continue
        policy = route_policy(route)
        for method in route.methods:
            op = schema.get("paths", {}).get(route.path_format, {}).get(method.lower())
            if op is None:
                continue
            responses = op.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = _problem(
                    "The request does not match the schema", 422, "Invalid request",
                    "the request does not match the schema")
            if policy is not None and policy.authenticated:
                roles = sorted(policy.roles)
                op["x-roles"] = roles
                text_ = (op.get("description") or "").rstrip()
                roles_line = "**Roles:** " + ", ".join(roles)
                op["description"] = "\n\n".join(filter(None, [text_, roles_line]))
                responses.setdefault("401", _problem("Missing or invalid token", 401,
                                                     "Unauthenticated", "Not authenticated"))
                responses.setdefault("403", _problem("The caller's role or region may not do this",
                                                     403, "PermissionDenied",
                                                     "role analyst may not do this"))
            else:
                op["x-roles"] = ["anonymous"]
            responses.setdefault("500", _problem("Unexpected error (with a request id)", 500,
                                                 "Internal error",
                                                 "unexpected error; request id 3f2a9c1b7e4d"))
    app.openapi_schema = schema
    return schema


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    hooks = LIFESPANS

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_log_scrubbing()  # after uvicorn configured its loggers
        engine = app_engine(settings)
        check_database(engine)
        app.state.engine = engine
        app.state.session_factory = session_factory(engine)
        app.state.accounts = AccountCheck(app.state.session_factory)
        started = []
        try:
            for mod in hooks:
                await mod.start(app)
                started.append(mod)
            yield
        finally:
            for mod in reversed(started):
                try:
                    await mod.stop(app)
                except Exception:  # noqa: BLE001 - shutdown must continue
                    log.exception("error stopping %s", getattr(mod, "__name__", mod))
            engine.dispose()

    app = FastAPI(
        title="geodispatch",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from local copies of the scripts by geodispatch.api.docs
        redoc_url=None,
    )
    docs.mount(app)
    install_log_scrubbing()
    app.state.settings = settings
    app.state.login_limiter = LoginLimiter(settings.login_rate_per_minute)
    # Crew statuses decoded by the tracking ingest (MQTT, HTTP) are the dispatch workflow's to
    # apply; the composition root wires them, so tracking does not import dispatch.
    app.state.crew_status_handler = pushing_status_handler(app)
    app.state.sms_outcome_recorder = record_sms_outcome
    errors.install(app)
    for mod in ROUTERS:
        app.include_router(mod.router)
        mount = getattr(mod, "mount", None)
        if callable(mount):
            mount(app)
    for r in ROOT_ROUTERS:
        app.include_router(r)
    app.openapi = lambda: _complete_openapi(app)  # type: ignore[method-assign]
    return app
