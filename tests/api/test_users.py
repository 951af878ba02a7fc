"""Console users: demo seeding gives one account per role with working passwords."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from geodispatch.api.security import ALL_ROLES, verify_password
from geodispatch.users.models import User
from geodispatch.users.service import seed_demo_users


def test_seed_demo_users_one_per_role(db: Session) -> None:
    """Every role gets a user; regional roles get the region, admin and national see all."""
    seeded = seed_demo_users(db, "KV")
    assert sorted(role for _, _, role in seeded) == sorted(ALL_ROLES)
    for username, password, role in seeded:
        user = db.scalar(select(User).where(User.username == username))
        assert user is not None and user.role == role
        assert user.region == (None if role in ("admin", "national") else "KV")
        assert verify_password(password, user.password_hash)
    again = seed_demo_users(db, "KV")
    assert {p for _, p, _ in again}.isdisjoint({p for _, p, _ in seeded}), "new passwords"
