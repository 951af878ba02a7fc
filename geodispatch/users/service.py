"""Creating and finding console users."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from geodispatch.errors import InvalidInput
from geodispatch.users.credentials import USER_ROLES, hash_password
from geodispatch.users.models import User


def upsert_user(
    *, session: Session, username: str, password: str, role: str, region: str | None,
    full_name: str = "", language: str = "uk",
) -> User:
    """Create the user, or reset its password, role and region if it exists."""
    if role not in USER_ROLES:
        raise InvalidInput(f"unknown role {role!r}; one of {', '.join(USER_ROLES)}")
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username, password_hash="", role=role)
        session.add(user)
    user.password_hash = hash_password(password)
    user.role = role
    user.region = region
    user.full_name = full_name
    user.language = language
    user.active = True
    session.flush()
    return user


DEMO_USERS = (
    ("calltaker", "call_taker", True),
    ("dispatcher", "dispatcher", True),
    ("supervisor", "supervisor", True),
    ("analyst", "analyst", True),
    ("admin", "admin", False),
    ("national", "national", False),
)


def seed_demo_users(
    session: Session, region: str, *, password: str | None = None
) -> list[tuple[str, str, str]]:
    """Create (or reset) one demo user per role and return ``(username, password, role)`` each.

    Regional roles get ``region``; admin and national see every region. Passwords are random
    (printed once by the demo) unless ``password`` is given.
    """
    out: list[tuple[str, str, str]] = []
    for username, role, regional in DEMO_USERS:
        pw = password or secrets.token_urlsafe(9)
        upsert_user(session=session, username=username, password=pw, role=role,
                    region=region if regional else None, full_name=f"Demo {role.replace('_', ' ')}")
        out.append((username, pw, role))
    return out
