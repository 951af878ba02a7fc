"""Real centres on one machine: each its own database, var dir (signing key), API port, with
``geodispatch serve`` and ``geodispatch log sequence`` as subprocesses. Used by the
three-centre tests and by ``bench/federation.py``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from geodispatch.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
JWT_SECRET = "federation-test-secret-" + "x" * 32


def _with_db(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Centre:
    """One running centre."""

    code: str
    db: str
    app_url: str
    admin_url: str
    var: Path
    port: int
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _engine: Engine | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def public_key(self) -> Path:
        return self.var / "keys" / "log-public.pem"

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(self.app_url, pool_size=4)
        return self._engine

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def start(self, timeout: float = 60.0) -> None:
        logs = self.var / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for name, args in (("api", ["serve", "--no-ingest", "--port", str(self.port)]),
                           ("sequencer", ["log", "sequence"])):
            with (logs / f"{name}.log").open("ab") as out:  # the child keeps its own copy
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "geodispatch.cli", *args], env=self.env, cwd=ROOT,
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/openapi.json", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if any(p.poll() is not None for p in self.procs):
                break
            time.sleep(0.2)
        raise RuntimeError(f"centre {self.code} did not start:\n{self.log_tail()}")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        self.procs.clear()

    def log_tail(self, n: int = 3000) -> str:
        out = []
        for f in sorted((self.var / "logs").glob("*.log")):
            out.append(f"--- {self.code} {f.name}\n" + f.read_text(errors="replace")[-n:])
        return "\n".join(out)

    def token(self, role: str = "call_taker") -> dict[str, str]:
        """A console token of a real user of this centre."""
        from sqlalchemy.orm import Session

        from geodispatch.api.security import Principal, issue_token
        from geodispatch.users.service import upsert_user

        username = f"fed_{role}"
        with Session(self.engine) as s, s.begin():
            upsert_user(session=s, username=username, password="test-password-1", role=role,
                        region=self.code)
        settings = Settings(jwt_secret=JWT_SECRET)
        token = issue_token(Principal(username, role, self.code), settings)
        return {"Authorization": f"Bearer {token}"}

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def create_centre(settings: Settings, code: str, root: Path, *, subscribe: bool = False,
                  subscriber_keys: list[Path] | None = None, prefix: str | None = None
                  ) -> Centre:
    """A fresh database (migrated), var dir and key pair for centre ``code``; not started."""
    from geodispatch.ledger.signing import generate_keypair

    base = make_url(settings.database_url).database or "geodispatch"
    name = f"{prefix or base}_{code.lower()}"
    server = create_engine(_with_db(settings.admin_database_url, "postgres"),
                           isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}" OWNER geodispatch'))
    server.dispose()
    admin_url = _with_db(settings.admin_database_url, name)
    eng = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pgrouting"))
    eng.dispose()
    var = root / code.lower()
    var.mkdir(parents=True, exist_ok=True)
    generate_keypair(var / "keys" / "log-signing.pem", var / "keys" / "log-public.pem")
    app_url = _with_db(settings.database_url, name)
    tag = uuid.uuid4().hex[:6]
    env = {
        **os.environ,
        "GEODISPATCH_DATABASE_URL": app_url,
        "GEODISPATCH_ADMIN_DATABASE_URL": admin_url,
        "GEODISPATCH_VAR_DIR": str(var),
        "GEODISPATCH_SERVE_INGEST": "false",
        "GEODISPATCH_DEFAULT_REGION": code,
        "GEODISPATCH_FEDERATION_CENTRE": code,
        "GEODISPATCH_FEDERATION_SUBSCRIBE": "true" if subscribe else "false",
        "GEODISPATCH_FEDERATION_SUBSCRIBER_KEYS": json.dumps(
            [str(p) for p in subscriber_keys or []]),
        "GEODISPATCH_FEDERATION_RECONNECT_MAX_S": "1.0",
        "GEODISPATCH_LOG_SEAL_INTERVAL_S": "0.1",
        "GEODISPATCH_JWT_SECRET": JWT_SECRET,
        "GEODISPATCH_TILE_URL": "",
        "GEODISPATCH_MQTT_CLIENT_ID": f"fed-{code.lower()}-{tag}",
        "GEODISPATCH_MQTT_SHARED_GROUP": f"fed{code.lower()}{tag}",
        "PYTHONUNBUFFERED": "1",
    }
    r = subprocess.run([sys.executable, "-m", "geodispatch.cli", "db", "upgrade"], env=env,
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"migrations failed for {name}: {r.stderr[-2000:]}")
    return Centre(code, name, app_url, admin_url, var, free_port(), env)


def drop_centre(settings: Settings, centre: Centre) -> None:
    centre.stop()
    centre.dispose()
    server = create_engine(_with_db(settings.admin_database_url, "postgres"),
                           isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{centre.db}" WITH (FORCE)'))
    server.dispose()


def register_centre_at(national: Centre, regional: Centre) -> None:
    """``geodispatch federation centre add`` at the national centre, as an operator runs it."""
    r = subprocess.run([sys.executable, "-m", "geodispatch.cli", "federation", "centre", "add",
                        regional.code, "--public-key", str(regional.public_key),
                        "--url", regional.base], env=national.env, cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"centre add failed: {r.stderr}")


def register_incident(http: httpx.Client, centre: Centre, headers: dict[str, str],
                      n: int) -> str:
    """Register one call at ``centre`` through its HTTP API; returns the reference.

    A dropped connection is retried with the same idempotency key (one incident, as the
    console does it)."""
    body = {"lat": 50.45 + n * 1e-4, "lng": 30.52, "category": "theft",
            "description": f"bike stolen #{n}", "idempotency_key": uuid.uuid4().hex}
    for attempt in range(5):
        try:
            r = http.post(f"{centre.base}/api/incidents", headers=headers, json=body)
            break
        except httpx.TransportError:
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))
    r.raise_for_status()
    return str(r.json()["reference"])


def wait_for(check: Callable[[], bool], timeout: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return check()
