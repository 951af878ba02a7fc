"""Access tokens (JWT, HS256), the principal, and the account check (passwords and roles are
:mod:`geodispatch.users.credentials`).

A token says who its holder was when it was issued. :class:`AccountCheck` says whether that is
still so: every request and the live feed ask it, so deactivating a user or changing their role
or region takes effect within :data:`ACCOUNT_TTL_S`, not when a 12-hour token runs out.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from geodispatch.errors import PermissionDenied, Unauthenticated
from geodispatch.settings import Settings
from geodispatch.users.credentials import (  # re-exported: the API's view of accounts
    ADMIN,
    ALL_ROLES,
    ANALYST,
    CALL_TAKER,
    DISPATCHER,
    NATIONAL,
    SUPERVISOR,
    hash_password,
    verify_password,
)

__all__ = ["ACCOUNT_TTL_S", "ADMIN", "ALL_ROLES", "ANALYST", "CALL_TAKER", "DISPATCHER",
           "NATIONAL", "SUPERVISOR", "AccountCheck", "Principal", "decode_token",
           "decode_token_expiry", "hash_password", "issue_token", "verify_password"]

#: How long an account lookup is trusted (seconds).
ACCOUNT_TTL_S = 1.0

@dataclass(frozen=True)
class Principal:
    """Who is calling: a console user. ``region`` None means every region."""

    username: str
    role: str
    region: str | None

    @property
    def read_only(self) -> bool:
        return self.role == NATIONAL

    def scope(self, region: str | None) -> str | None:
        """The region a request may see: the caller's own, or the asked one (or all) without one."""
        if self.region is None:
            return region
        if region is not None and region != self.region:
            raise PermissionDenied(f"region {region} is outside your region {self.region}")
        return self.region

    def can_see_region(self, region: str) -> bool:
        return self.region is None or self.region == region


def issue_token(principal: Principal, settings: Settings) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": principal.username,
        "role": principal.role,
        "region": principal.region,
        "iat": now,
        "exp": now + timedelta(minutes=settings.jwt_ttl_minutes),
    }
    return jwt.encode(claims, settings.resolved_jwt_secret, algorithm="HS256")


def decode_token(token: str, settings: Settings) -> Principal:
    return decode_token_expiry(token, settings)[0]


def decode_token_expiry(token: str, settings: Settings) -> tuple[Principal, datetime]:
    """The token's principal and expiry; Unauthenticated when it is invalid or expired."""
    try:
        claims = jwt.decode(token, settings.resolved_jwt_secret, algorithms=["HS256"],
                            options={"require": ["exp", "sub"]})
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"invalid token: {exc}") from None
    principal = Principal(username=claims["sub"], role=claims["role"],
                          region=claims.get("region"))
    return principal, datetime.fromtimestamp(float(claims["exp"]), UTC)


class AccountCheck:
    """Whether a token's holder is still an active user with the token's role and region.

    Lookups are cached for ``ttl_s`` per user, so a busy console costs one indexed query per
    user and second, and a deactivation is seen within ``ttl_s``.
    """

    def __init__(self, factory: sessionmaker[Session], ttl_s: float = ACCOUNT_TTL_S) -> None:
        self._factory = factory
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[float, tuple[str, str | None] | None]] = {}
        self._lock = threading.Lock()

    def _current(self, username: str) -> tuple[str, str | None] | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(username)
        if hit is not None and now - hit[0] < self._ttl_s:
            return hit[1]
        with self._factory() as session:
            row = session.execute(text(
                "SELECT role, region FROM users WHERE username = :u AND active"),
                {"u": username}).first()
        value = None if row is None else (str(row[0]), row[1])
        with self._lock:
            self._cache[username] = (now, value)
        return value

    def ensure(self, principal: Principal) -> Principal:
        """The principal, or Unauthenticated when the account no longer matches the token."""
        current = self._current(principal.username)
        if current is None:
            raise Unauthenticated(f"user {principal.username[:64]} is not an active user")
        if current != (principal.role, principal.region):
            raise Unauthenticated("the account's role or region changed: log in again")
        return principal
