"""A token is only as good as the account behind it: deactivating a user or changing their role
ends their access within a second, on HTTP and on the live feed; a dispatcher cannot send
another region's crew."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import websockets
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geodispatch.api.app import create_app
from geodispatch.settings import Settings, _secret_file
from geodispatch.tracking.service import create_unit
from geodispatch.users.service import upsert_user
from tests.helpers import login, running_server

PASSWORD = "correct horse battery"


def _user(engine: Engine, role: str, region: str | None) -> str:
    name = f"acct_{role}_{uuid.uuid4().hex[:6]}"
    with Session(engine) as s, s.begin():
        upsert_user(session=s, username=name, password=PASSWORD, role=role, region=region)
    return name


def _until(predicate, timeout: float = 3.0) -> float:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if predicate():
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_deactivated_or_changed_account_loses_access(settings: Settings, engine: Engine) -> None:
    app = create_app(settings.model_copy(update={"serve_ingest": False}))
    disp = _user(engine, "dispatcher", "KV")
    sup = _user(engine, "supervisor", "KV")
    with running_server(app) as base:
        h_disp, h_sup = login(base, disp, PASSWORD), login(base, sup, PASSWORD)
        assert httpx.get(f"{base}/api/auth/me", headers=h_disp).status_code == 200
        assert httpx.get(f"{base}/api/auth/me", headers=h_sup).status_code == 200
        with engine.begin() as conn:
            conn.execute(text("UPDATE users SET active = false WHERE username = :u"), {"u": disp})
            conn.execute(text("UPDATE users SET role = 'analyst' WHERE username = :u"), {"u": sup})
        waited = _until(lambda: httpx.get(f"{base}/api/auth/me",
                                          headers=h_disp).status_code == 401)
        assert waited < 1.5
        r = httpx.get(f"{base}/api/auth/me", headers=h_sup)
        assert r.status_code == 401 and "log in again" in r.json()["detail"]
        # An unknown user with a well-signed token is refused too.
        from geodispatch.api.security import Principal, issue_token

        ghost = issue_token(Principal("nobody-" + uuid.uuid4().hex, "admin", None), settings)
        assert httpx.get(f"{base}/api/auth/me", headers={
            "Authorization": f"Bearer {ghost}"}).status_code == 401


def test_live_feed_closes_when_the_account_is_deactivated(settings: Settings,
                                                          engine: Engine) -> None:
    app = create_app(settings.model_copy(update={"serve_ingest": False}))
    disp = _user(engine, "dispatcher", "KV")
    with running_server(app) as base:
        token = login(base, disp, PASSWORD)["Authorization"].split()[1]

        async def scenario() -> tuple[int, float]:
            url = base.replace("http", "ws") + "/api/live"
            async with websockets.connect(url) as ws:
                await ws.send(json.dumps({"token": token}))
                first = json.loads(await asyncio.wait_for(ws.recv(), 20))
                assert first["type"] == "snapshot"
                with engine.begin() as conn:
                    conn.execute(text("UPDATE users SET active = false WHERE username = :u"),
                                 {"u": disp})
                t0 = time.monotonic()
                try:
                    while True:
                        await asyncio.wait_for(ws.recv(), 10)
                except websockets.ConnectionClosed as closed:
                    code = closed.rcvd.code if closed.rcvd else -1
                    return code, time.monotonic() - t0

        code, waited = asyncio.run(scenario())
        assert code == 4401 and waited < 3.0


def test_dispatcher_cannot_send_another_regions_crew(settings: Settings,
                                                     engine: Engine) -> None:
    app = create_app(settings.model_copy(update={"serve_ingest": False}))
    ct = _user(engine, "call_taker", "KV")
    disp = _user(engine, "dispatcher", "KV")
    with Session(engine) as s, s.begin():
        other, _ = create_unit(session=s, call_sign=f"LV{uuid.uuid4().hex[:5]}",
                               kind="patrol_car", capabilities=["patrol"], region="LV",
                               status="available")
        other_id = other.id
    with running_server(app) as base:
        inc = httpx.post(f"{base}/api/incidents", headers=login(base, ct, PASSWORD), json={
            "lat": 50.45, "lng": 30.52, "category": "theft",
            "description": "cross-region assignment"}).json()
        r = httpx.post(f"{base}/api/incidents/{inc['id']}/assignments",
                       headers=login(base, disp, PASSWORD),
                       json={"unit_id": other_id, "override_reason": "closest"})
        assert r.status_code == 404, r.text
        with engine.connect() as conn:
            n = conn.execute(text("SELECT count(*) FROM assignments WHERE incident_id = :i"),
                             {"i": inc["id"]}).scalar()
        assert n == 0


def test_jwt_secret_created_once_atomically(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Several processes racing to create the secret all end up with the same one."""
    import subprocess
    import sys

    path = tmp_path / "jwt.secret"
    code = ("import sys; from pathlib import Path; from geodispatch.settings import _secret_file;"
            " print(_secret_file(Path(sys.argv[1])))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                              text=True) for _ in range(8)]
    outs = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(outs) == 1 and len(next(iter(outs))) >= 40
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert _secret_file(path) == next(iter(outs))
