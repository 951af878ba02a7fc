"""FastAPI dependencies: the request's unit of work, the caller, and the shared in-memory parts.

The request owns the transaction: ``get_session`` commits when the endpoint returns normally,
before the response is sent, and rolls back on any exception. Service functions only ``flush()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session, sessionmaker

from geodispatch.api.security import AccountCheck, Principal, decode_token
from geodispatch.errors import PermissionDenied
from geodispatch.settings import Settings

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/token")


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    factory = request.app.state.session_factory
    with factory() as session, session.begin():
        yield session


def get_factory(request: Request) -> sessionmaker[Session]:
    """The session factory, for write endpoints that own their transactions (they commit in
    their own worker thread, and may retry or split the work, rather than take ``SessionDep``'s
    one transaction)."""
    factory: sessionmaker[Session] = request.app.state.session_factory
    return factory


def get_principal(
    request: Request, token: Annotated[str, Depends(oauth2_scheme)]
) -> Principal:
    """The caller from the bearer token, checked against the users table (see AccountCheck)."""
    principal = decode_token(token, request.app.state.settings)
    accounts: AccountCheck = request.app.state.accounts
    return accounts.ensure(principal)


def require_roles(*roles: str) -> Callable[..., Principal]:
    """Dependency factory: the caller must hold one of ``roles``.

    The returned callable carries ``allowed_roles`` so tools (the role-matrix test, the OpenAPI
    post-processing) can read every endpoint's policy from the routes themselves.
    """
    allowed = frozenset(roles)

    def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role not in allowed:
            raise PermissionDenied(f"role {principal.role} may not do this")
        return principal

    check.allowed_roles = allowed  # type: ignore[attr-defined]
    check.__name__ = "require_" + "_or_".join(sorted(roles))
    return check


def get_state(name: str) -> Callable[[Request], Any]:
    """Dependency for a shared object on ``app.state`` (router, fleet, zone index...)."""

    def dep(request: Request) -> Any:
        return getattr(request.app.state, name, None)

    return dep


# scope="function": commit before the response is sent. With FastAPI's default (request scope)
# the exit code runs after the response has gone out, so a client could be told 201 for a
# write whose commit then failed, and could read before its own write was visible.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
UnitOfWork = Annotated[sessionmaker[Session], Depends(get_factory)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
