"""Login (OAuth2 password flow) issuing JWTs, rate-limited per user and address; who am I."""

from __future__ import annotations

from functools import cache
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from geodispatch.api.deps import PrincipalDep, SessionDep, SettingsDep
from geodispatch.api.errors import RateLimited, problem_response
from geodispatch.api.ratelimit import LoginLimiter
from geodispatch.api.security import Principal, hash_password, issue_token, verify_password
from geodispatch.errors import PermissionDenied, Unauthenticated
from geodispatch.settings import Settings
from geodispatch.users.credentials import OFFICER
from geodispatch.users.models import User

router = APIRouter(prefix="/api/auth", tags=["auth"])


class Token(BaseModel):
    """An access token for the ``Authorization: Bearer`` header (and the live stream)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...", "token_type": "bearer",
        "role": "dispatcher", "region": "KV", "username": "o.petrenko", "language": "uk",
        "expires_in": 43200,
    }]})

    access_token: str
    token_type: str = "bearer"
    role: str
    region: str | None
    username: str = ""
    language: str = "uk"
    expires_in: int = Field(description="Seconds until the token expires (RFC 6749 5.1).")


class Me(BaseModel):
    """The authenticated caller."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"username": "o.petrenko", "role": "dispatcher", "region": "KV"}
    ]})

    username: str
    role: str
    region: str | None


@cache
def _dummy_hash() -> str:
    return hash_password("not-a-real-password")


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post(
    "/token",
    response_model=Token,
    summary="Log in (OAuth2 password flow)",
    responses={
        401: problem_response("Wrong username or password", {
            "type": "about:blank", "title": "Unauthenticated", "status": 401,
            "detail": "wrong username or password", "instance": "/api/auth/token"}),
        429: problem_response("Too many failed logins for this user from this address", {
            "type": "about:blank", "title": "Too many requests", "status": 429,
            "detail": "too many failed logins; retry in 42 s", "instance": "/api/auth/token",
            "retry_after": 42}),
    },
)
def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> Token:
    """Exchange a username and password for a JWT carrying the role and region.

    Failed attempts are limited to ``login_rate_per_minute`` per username and client address;
    beyond that the answer is 429 with ``Retry-After`` until the window frees up.
    """
    limiter: LoginLimiter = request.app.state.login_limiter
    address = _client_address(request)
    wait = limiter.retry_after(form.username, address)
    if wait:
        raise RateLimited(f"too many failed logins; retry in {wait} s", wait)
    user = session.scalar(select(User).where(User.username == form.username, User.active))
    # Verify against a dummy hash for unknown users so timing does not reveal who exists.
    ok = verify_password(form.password, user.password_hash if user else _dummy_hash())
    if user is None or not ok:
        limiter.failed(form.username, address)
        raise Unauthenticated("wrong username or password")
    limiter.succeeded(form.username, address)
    if user.role == OFFICER:
        raise PermissionDenied("an officer signs in on the crew app (/crew), bound to a unit")
    p = Principal(username=user.username, role=user.role, region=user.region)
    return _token(p, user.language, settings)


def _token(principal: Principal, language: str, settings: Settings) -> Token:
    return Token(access_token=issue_token(principal, settings), role=principal.role,
                 region=principal.region, username=principal.username, language=language,
                 expires_in=int(settings.jwt_ttl_minutes * 60))


@router.post(
    "/refresh",
    response_model=Token,
    summary="A fresh token for the same user and role (a shift-long console session)",
    responses={401: problem_response("The token is invalid, expired, or its account changed", {
        "type": "about:blank", "title": "Unauthenticated", "status": 401,
        "detail": "invalid token: Signature has expired", "instance": "/api/auth/refresh"})},
)
def refresh(principal: PrincipalDep, session: SessionDep, settings: SettingsDep) -> Token:
    """Exchange a valid, not yet expired token for a new one with a full lifetime.

    The new token names the same user, role and region. An expired token is refused (log in
    again), and so is one whose account was deactivated or given another role or region since
    (the account check every request makes), so a refresh never outlives a revocation.
    """
    language = session.scalar(select(User.language).where(User.username == principal.username))
    return _token(principal, language or "uk", settings)


@router.get("/me", response_model=Me, summary="Who am I")
def me(principal: PrincipalDep) -> Me:
    """The caller's username, role and region (null region = every region)."""
    return Me(username=principal.username, role=principal.role, region=principal.region)
