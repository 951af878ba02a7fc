"""What the crew stream reads and is told, on the real PostGIS (each test rolled back): the
screens of several units in one pass, and which units' screens a dispatch step changes."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from geodispatch.crew.service import crew_views
from geodispatch.dispatch.effects import take_terminal_units
from geodispatch.dispatch.workflow import assign, crew_status_report
from geodispatch.incidents.schemas import IncidentCreate
from geodispatch.incidents.service import register_incident
from geodispatch.tracking.models import Unit
from tests.dispatch.conftest import KYIV, add_crew


def _incident(db: Session, notes: str) -> int:
    return register_incident(session=db, data=IncidentCreate(
        lat=KYIV.lat, lng=KYIV.lng, category="theft", description=notes,
        idempotency_key=uuid.uuid4().hex), actor="ct").id


def test_screens_of_several_units_at_once(db: Session) -> None:
    """Two crews on one call and one idle crew: each gets its own screen, the call's crews
    listed on both (self marked, lead on the first), nothing for the idle one."""
    u1, u2, idle = (add_crew(db, KYIV) for _ in range(3))
    inc = _incident(db, "gate code 42")
    a1 = assign(session=db, incident_id=inc, unit_id=u1, actor="d", override_reason="r")
    a2 = assign(session=db, incident_id=inc, unit_id=u2, actor="d", override_reason="r")
    units = [db.get(Unit, u) for u in (u1, u2, idle)]
    views = crew_views(session=db, units=[u for u in units if u is not None])
    assert set(views) == {u1, u2, idle}
    assert views[idle]["assignment"] is None
    for uid, aid in ((u1, a1.id), (u2, a2.id)):
        a = views[uid]["assignment"]
        assert a["id"] == aid and a["incident"]["notes"] == "gate code 42"
        assert abs(a["incident"]["lat"] - KYIV.lat) < 1e-9
        assert [c["self"] for c in a["crews"]] == [uid == u1, uid == u2]
        assert [c["is_lead"] for c in a["crews"]] == [True, False]


def test_dispatch_steps_name_the_terminals_they_change(db: Session) -> None:
    """Assigning a second crew changes both crews' screens; an acknowledgement only its own."""
    u1, u2 = add_crew(db, KYIV), add_crew(db, KYIV)
    inc = _incident(db, "")
    assign(session=db, incident_id=inc, unit_id=u1, actor="d", override_reason="r")
    assert take_terminal_units(db) == {u1}
    a2 = assign(session=db, incident_id=inc, unit_id=u2, actor="d", override_reason="r")
    assert take_terminal_units(db) == {u1, u2}
    assert crew_status_report(session=db, unit_id=u2, status="acknowledged", at=None,
                              source="crew", assignment_id=a2.id) == "applied"
    assert take_terminal_units(db) == {u2}
    crew_status_report(session=db, unit_id=u1, status="en_route", at=None, source="crew")
    assert take_terminal_units(db) == {u1}
