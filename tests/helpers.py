"""Test helpers shared across domains: a real uvicorn server in a thread, free ports."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import httpx
import uvicorn
from fastapi import FastAPI


def free_port() -> int:
    """A port the OS says is free for TCP and UDP both (SIP runs over UDP), so parallel
    checkouts running the SIP tests never share one."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


@contextmanager
def running_server(app: FastAPI, *, timeout: float = 30.0, port: int | None = None
                   ) -> Iterator[str]:
    """Serve ``app`` with a real uvicorn on ``port`` (default: a free one); yield its base URL."""
    port = port or free_port()
    # Open streams (the crew app's SSE) never finish by themselves: cut them 5 s into shutdown.
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def login(base: str, username: str, password: str) -> dict[str, str]:
    r = httpx.post(f"{base}/api/auth/token", data={"username": username, "password": password})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def record_findings(session: object, incident_id: int) -> list[str]:
    """What the record verification finds about one incident (empty when it verifies)."""
    from sqlalchemy.orm import Session

    from geodispatch.incidents.verify import verify_record
    from geodispatch.ledger.service import public_key
    from geodispatch.settings import get_settings

    assert isinstance(session, Session)
    report = verify_record(session=session, public_key=public_key(get_settings()),
                           incident_id=incident_id)
    return [f.what for f in report.findings if f.incident_id == incident_id]


def bearer(role: str, region: str | None) -> dict[str, str]:
    """An Authorization header for a real, active user of ``role`` in ``region`` (created or
    reset here, committed: the server checks every token against the users table)."""
    from sqlalchemy.orm import Session

    from geodispatch.api.security import Principal, issue_token
    from geodispatch.db import app_engine
    from geodispatch.settings import get_settings
    from geodispatch.users.service import upsert_user

    settings = get_settings()
    username = f"t_{role}_{region or 'all'}"
    engine = app_engine(settings)
    try:
        with Session(engine) as s, s.begin():
            upsert_user(session=s, username=username, password="test-password-1",
                        role=role, region=region)
    finally:
        engine.dispose()
    token = issue_token(Principal(username, role, region), settings)
    return {"Authorization": f"Bearer {token}"}


@cache
def account_check() -> object:
    """The account check a bare test app needs (``app.state.accounts``), on committed data
    (one engine for the whole test session)."""
    from sqlalchemy.orm import sessionmaker

    from geodispatch.api.security import AccountCheck
    from geodispatch.db import app_engine
    from geodispatch.settings import get_settings

    return AccountCheck(sessionmaker(app_engine(get_settings())))


def index_street(session: object, name: str, wkt: str,
                 houses: tuple[tuple[str, float, float], ...] = ()) -> int:
    """Put one street (and its houses as ``(number, lng, lat)``) in the address index, in the
    caller's (rolled-back) transaction, as the importer would key them; returns its id."""
    import secrets

    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from geodispatch.geocoding.text import core_key, housenumber_key, housenumber_value

    assert isinstance(session, Session)
    sid = -secrets.randbelow(2**40) - 1
    session.execute(text(
        "INSERT INTO geocode_streets (id, name, source, geom) "
        "VALUES (:id, :n, 'road', ST_GeomFromText(:w, 4326))"), {"id": sid, "n": name, "w": wkt})
    session.execute(text("INSERT INTO geocode_names (id, street_id, name, key) "
                         "VALUES (:id, :s, :n, :k)"),
                    {"id": sid, "s": sid, "n": name, "k": core_key(name)})
    for n, (hn, lng, lat) in enumerate(houses):
        session.execute(text(
            "INSERT INTO geocode_features (id, kind, street_id, housenumber, hn_key, hn_value,"
            " label, geom) VALUES (:id, 'house', :s, :hn, :hk, :hv, :l,"
            " ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
            {"id": sid - n - 1_000_000_000_000, "s": sid, "hn": hn, "hk": housenumber_key(hn),
             "hv": housenumber_value(hn), "l": f"{name}, {hn}", "x": lng, "y": lat})
    return sid


def require_sip_tools() -> None:
    """Kamailio and SIPp are part of the project's services (``make services`` installs them):
    a test that needs them fails, rather than skips, when they are missing."""
    missing = [b for b in ("kamailio", "sipp") if shutil.which(b) is None]
    assert not missing, (f"{' and '.join(missing)} not installed: `make services` installs the "
                         "Debian packages kamailio and sip-tester")
