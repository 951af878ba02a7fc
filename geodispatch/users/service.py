"""Creating and finding console users."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from geodispatch.api.security import ALL_ROLES, hash_password
from geodispatch.errors import InvalidInput
from geodispatch.users.models import User


def upsert_user(
    *, session: Session, username: str, password: str, role: str, region: str | None,
    full_name: str = "", language: str = "uk",
) -> User:
    """Create the user, or reset its password, role and region if it exists."""
    if role not in ALL_ROLES:
        raise InvalidInput(f"unknown role {role!r}; one of {', '.join(ALL_ROLES)}")
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
