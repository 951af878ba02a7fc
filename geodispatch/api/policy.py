"""Read each endpoint's access policy from its dependencies (for OpenAPI and the role-matrix test).

An endpoint is *public* when nothing in its dependency tree asks for the caller, *authenticated*
when something depends on :func:`geodispatch.api.deps.get_principal`, and *role-restricted* when a
:func:`geodispatch.api.deps.require_roles` check is in the tree (several checks intersect).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi.dependencies.models import Dependant
from starlette.routing import BaseRoute

from geodispatch.api.deps import get_principal
from geodispatch.api.security import ALL_ROLES


@dataclass(frozen=True)
class Policy:
    """Who may call an endpoint. ``roles`` is empty for a public endpoint."""

    authenticated: bool
    roles: frozenset[str]

    @property
    def public(self) -> bool:
        return not self.authenticated


def dependant_policy(dependant: Dependant) -> Policy:
    """Walk a FastAPI dependency tree and combine what it requires."""
    authenticated = False
    roles: frozenset[str] = frozenset(ALL_ROLES)
    stack = [dependant]
    while stack:
        d = stack.pop()
        if d.call is get_principal:
            authenticated = True
        allowed = getattr(d.call, "allowed_roles", None)
        if allowed is not None:
            authenticated = True
            roles = roles & frozenset(allowed)
        stack.extend(d.dependencies)
    return Policy(authenticated=authenticated, roles=roles if authenticated else frozenset())


def route_policy(route: BaseRoute) -> Policy | None:
    """The policy of an HTTP or WebSocket route, or None for routes without a dependant (mounts).

    A WebSocket endpoint authenticates inside the handler (the token arrives as a query parameter
    or the first message); it declares its roles with a ``ws_roles`` attribute on the endpoint.
    """
    endpoint = getattr(route, "endpoint", None)
    ws_roles = getattr(endpoint, "ws_roles", None)
    if ws_roles is not None:
        return Policy(authenticated=True, roles=frozenset(ws_roles))
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return None
    return dependant_policy(dependant)


def iter_routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Every concrete route of an app, looking through included routers.

    Recent FastAPI versions keep an included router as one lazy entry in ``app.routes`` whose
    ``effective_route_contexts()`` yields the real routes (with the prefix applied); older ones
    copy the routes in. Both are handled, so callers see objects with ``path_format``,
    ``methods`` (HTTP only), ``endpoint`` and ``dependant``.
    """
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if callable(contexts):
            for ctx in contexts():
                if getattr(ctx, "path_format", ""):
                    yield ctx
                else:  # WebSocket routes are not expanded into a context: use the route itself
                    yield getattr(ctx, "starlette_route", None) or ctx.original_route
        else:
            yield route
