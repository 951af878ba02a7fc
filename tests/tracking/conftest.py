"""Tracking fixtures: the real tracker vectors, committed units with tokens, MQTT helpers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geodispatch.settings import Settings
from geodispatch.tracking.models import Unit
from geodispatch.tracking.service import create_unit, rotate_token


@pytest.fixture(scope="session")
def vectors(data_dir: Path) -> list[dict[str, Any]]:
    data = json.loads((data_dir / "protocols" / "tracker_vectors.json").read_text())
    return list(data["vectors"])


def ensure_unit(engine: Engine, settings: Settings, device_id: str, *, region: str = "KV",
                **kw: Any) -> tuple[int, str]:
    """A committed unit for ``device_id`` (reused across runs) with a fresh token and no history."""
    with Session(engine, expire_on_commit=False) as s, s.begin():
        unit = s.query(Unit).filter_by(device_id=device_id).one_or_none()
        if unit is None:
            unit, token = create_unit(session=s, call_sign=device_id[:32], kind="patrol_car",
                                      capabilities=[], region=region, device_id=device_id,
                                      settings=settings, **kw)
        else:
            token = rotate_token(session=s, unit=unit, settings=settings)
        s.execute(text("DELETE FROM positions WHERE unit_id = :u"), {"u": unit.id})
        s.execute(text("DELETE FROM unit_latest WHERE unit_id = :u"), {"u": unit.id})
        return unit.id, token


@pytest.fixture()
def new_unit(engine: Engine, settings: Settings) -> Iterator[Any]:
    """Factory of fresh committed units: ``new_unit(prefix) -> (unit_id, device_id, token)``."""

    def make(prefix: str = "T", **kw: Any) -> tuple[int, str, str]:
        device = f"{prefix}-{uuid.uuid4().hex[:10]}"
        uid, token = ensure_unit(engine, settings, device, **kw)
        return uid, device, token

    yield make


def positions_of(engine: Engine, unit_id: int) -> list[Any]:
    with engine.connect() as c:
        return list(c.execute(text(
            "SELECT fix_time, ST_Y(geom) AS lat, ST_X(geom) AS lng, h3, speed_mps, heading, "
            "accuracy_m, altitude_m, battery, source, attributes FROM positions "
            "WHERE unit_id = :u ORDER BY fix_time"), {"u": unit_id}))


def drops(engine: Engine) -> dict[str, int]:
    with engine.connect() as c:
        return {r: int(n) for r, n in c.execute(text("SELECT reason, count FROM ingest_drops"))}
