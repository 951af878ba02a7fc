"""The console script: help lists the commands; bad configuration gives one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from geodispatch.settings import Settings


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "geodispatch.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_lists_commands() -> None:
    """`geodispatch --help` names the command families."""
    r = run_cli("--help")
    assert r.returncode == 0
    for cmd in ("db", "broker"):
        assert cmd in r.stdout


def _one_clear_line(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("geodispatch:")]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0]


def test_unreachable_database_is_one_line(settings: Settings) -> None:
    """A database on a closed port: one line saying it is unreachable and what to do."""
    url = make_url(settings.database_url).set(port=1).render_as_string(hide_password=False)
    r = run_cli("db", "check", GEODISPATCH_DATABASE_URL=url)
    _one_clear_line(r, "not reachable", "make services")


def test_wrong_password_is_one_line(settings: Settings) -> None:
    """A wrong password is named as such."""
    url = make_url(settings.database_url).set(password="wrong").render_as_string(hide_password=False)
    r = run_cli("db", "check", GEODISPATCH_DATABASE_URL=url)
    _one_clear_line(r, "password")
    assert "wrong" not in r.stderr.split("--")[0].split("@")[0].split("//")[-1]


def test_missing_postgis_is_one_line(settings: Settings, admin_engine: Engine) -> None:
    """A database without the PostGIS extension: one line with the fix."""
    name = f"gd_nopostgis_{uuid.uuid4().hex[:8]}"
    ac = admin_engine.execution_options(isolation_level="AUTOCOMMIT")
    with ac.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        url = make_url(settings.admin_database_url).set(database=name)
        r = run_cli("db", "upgrade", GEODISPATCH_ADMIN_DATABASE_URL=url.render_as_string(False))
        _one_clear_line(r, "PostGIS", "CREATE EXTENSION postgis")
    finally:
        with ac.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.mark.parametrize("missing", ["nosuchdb"])
def test_missing_database_is_one_line(settings: Settings, missing: str) -> None:
    """A database that does not exist: one line pointing at `make services`."""
    url = make_url(settings.database_url).set(database=missing).render_as_string(False)
    r = run_cli("db", "check", GEODISPATCH_DATABASE_URL=url)
    _one_clear_line(r, "does not exist")
