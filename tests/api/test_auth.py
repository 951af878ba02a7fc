"""Login over real HTTP: a JWT for good credentials, a 401 problem for bad ones."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from geodispatch.users.service import upsert_user
from tests.helpers import login, running_server


def test_login_and_me(settings: Settings, engine: Engine) -> None:
    """A user logs in with the password flow and /me returns their role and region."""
    name = f"disp_{uuid.uuid4().hex[:8]}"
    with Session(engine) as s, s.begin():
        upsert_user(session=s, username=name, password="s3cret!", role="dispatcher", region="KV")
    settings = settings.model_copy(update={"serve_ingest": False})
    with running_server(create_app(settings)) as base:
        headers = login(base, name, "s3cret!")
        me = httpx.get(f"{base}/api/auth/me", headers=headers).json()
        assert me == {"username": name, "role": "dispatcher", "region": "KV"}
        bad = httpx.post(f"{base}/api/auth/token", data={"username": name, "password": "nope"})
        assert bad.status_code == 401
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert httpx.get(f"{base}/api/auth/me").status_code == 401
