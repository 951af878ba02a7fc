"""API fixtures: one console user per role, committed (the server runs in another thread)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session

from geodispatch.api.security import ALL_ROLES
from geodispatch.users.models import User
from geodispatch.users.service import upsert_user

REGION = "KV"
OTHER_REGION = "LV"
PASSWORD = "correct horse battery"
ALL_REGION_ROLES = ("admin", "national")


@dataclass(frozen=True)
class Account:
    username: str
    role: str
    region: str | None
    password: str = PASSWORD


@pytest.fixture(scope="module")
def accounts(engine: Engine) -> Iterator[dict[str, Account]]:
    """One account per role in region KV (admin and national: every region), plus a dispatcher
    of another region under the key ``other_dispatcher``."""
    tag = uuid.uuid4().hex[:6]
    out = {
        role: Account(f"{role}_{tag}", role, None if role in ALL_REGION_ROLES else REGION)
        for role in ALL_ROLES
    }
    out["other_dispatcher"] = Account(f"otherdisp_{tag}", "dispatcher", OTHER_REGION)
    with Session(engine) as s, s.begin():
        for a in out.values():
            upsert_user(session=s, username=a.username, password=a.password, role=a.role,
                        region=a.region)
    yield out
    with Session(engine) as s, s.begin():
        s.execute(delete(User).where(User.username.in_([a.username for a in out.values()])))
