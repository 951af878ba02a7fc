"""geodispatch.db helpers against the real database."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geodispatch.db import get_row
from geodispatch.errors import NotFound
from geodispatch.tracking.models import Unit


def test_a_locked_read_sees_the_committed_row_not_the_sessions_old_copy(engine: Engine) -> None:
    sign = "DB-" + secrets.token_hex(3)
    with Session(engine) as s, s.begin():
        s.add(Unit(call_sign=sign, device_id=sign.lower(), kind="patrol_car",
                   status="available", device_token_hash="x", region="KV"))
    with Session(engine, expire_on_commit=False) as mine:
        unit = mine.query(Unit).filter_by(call_sign=sign).one()
        assert unit.status == "available"
        mine.commit()  # keeps the copy, as the factory's sessions do
        with engine.begin() as conn:  # another transaction changes the row meanwhile
            conn.execute(text("UPDATE units SET status = 'busy' WHERE call_sign = :c"),
                         {"c": sign})
        assert get_row(mine, Unit, unit.id, what="unit").status == "available", (
            "an unlocked read may answer from the session's copy")
        locked = get_row(mine, Unit, unit.id, what="unit", lock=True)
        assert locked.status == "busy"
        mine.rollback()
        with pytest.raises(NotFound, match="unit -1 not found"):
            get_row(mine, Unit, -1, what="unit", lock=True)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM units WHERE call_sign = :c"), {"c": sign})
