"""The roles a console user can hold and their passwords (argon2), with no HTTP in sight."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError

_hasher = PasswordHasher()

CALL_TAKER = "call_taker"
DISPATCHER = "dispatcher"
SUPERVISOR = "supervisor"
ANALYST = "analyst"
ADMIN = "admin"
NATIONAL = "national"
#: The console roles (every ``require_roles(*ALL_ROLES)`` endpoint is open to them).
ALL_ROLES = (CALL_TAKER, DISPATCHER, SUPERVISOR, ANALYST, ADMIN, NATIONAL)
#: A patrol officer: signs in on the crew app (``/crew``) bound to a unit for the shift, never
#: on the console (not in :data:`ALL_ROLES`, so no console endpoint lets an officer in).
OFFICER = "officer"
#: Every role a user may hold.
USER_ROLES = (*ALL_ROLES, OFFICER)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, hashed: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerifyMismatchError, InvalidHashError):
        return False
