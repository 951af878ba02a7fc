"""Passwords (argon2), access tokens (JWT, HS256) and the roles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError

from geodispatch.errors import PermissionDenied, Unauthenticated
from geodispatch.settings import Settings

_hasher = PasswordHasher()

CALL_TAKER = "call_taker"
DISPATCHER = "dispatcher"
SUPERVISOR = "supervisor"
ANALYST = "analyst"
ADMIN = "admin"
NATIONAL = "national"
ALL_ROLES = (CALL_TAKER, DISPATCHER, SUPERVISOR, ANALYST, ADMIN, NATIONAL)


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


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, hashed: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerifyMismatchError, InvalidHashError):
        return False


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
    try:
        claims = jwt.decode(token, settings.resolved_jwt_secret, algorithms=["HS256"])
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"invalid token: {exc}") from None
    return Principal(username=claims["sub"], role=claims["role"], region=claims.get("region"))
