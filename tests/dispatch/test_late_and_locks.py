"""Late crew statuses are recorded, not applied; one lock order, so no deadlock under load."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geodispatch.dispatch.workflow import (
    assign,
    close_incident,
    crew_status_report,
)
from geodispatch.incidents.models import Incident
from geodispatch.incidents.schemas import IncidentCreate
from geodispatch.incidents.service import register_incident
from tests.dispatch.conftest import KYIV, add_crew
from tests.helpers import record_findings


def _kinds(db: Session, inc: Incident) -> list[str]:
    return list(db.execute(text("SELECT kind FROM incident_events WHERE incident_id = :i "
                                "ORDER BY incident_seq"), {"i": inc.id}).scalars())


def test_lifecycle_needs_no_amendment(db: Session, crew: Callable[..., int],
                                      incident: Callable[..., Incident]) -> None:
    """Each workflow step changes its rows before it records them: no ``amended`` safety event."""
    uid = crew()
    inc = incident()
    db.commit()
    assign(session=db, incident_id=inc.id, unit_id=uid, actor="d1", override_reason="near")
    db.commit()
    for st in ("en_route", "on_scene", "cleared", "available"):
        crew_status_report(session=db, unit_id=uid, status=st, at=None, source="t")
        db.commit()
    close_incident(session=db, incident_id=inc.id, actor="d1", disposition="01")
    db.commit()
    kinds = _kinds(db, inc)
    assert "amended" not in kinds, kinds
    assert kinds[0] == "registered" and kinds[-1] == "closed"


def test_old_cleared_does_not_clear_the_new_call(db: Session, crew: Callable[..., int],
                                                 incident: Callable[..., Incident]) -> None:
    """A "cleared" from the crew's previous call, arriving late, is recorded there and changes
    nothing on the call the crew is on now."""
    uid = crew()
    first, second = incident(), incident()
    assign(session=db, incident_id=first.id, unit_id=uid, actor="d", override_reason="r")
    t_cleared = datetime.now(UTC)
    crew_status_report(session=db, unit_id=uid, status="cleared", at=t_cleared, source="mqtt:t")
    db.execute(text("UPDATE assignments SET dispatched_at = dispatched_at - interval '10 min',"
                    " cleared_at = :c WHERE incident_id = :i"),
               {"c": t_cleared - timedelta(minutes=1), "i": first.id})
    crew_status_report(session=db, unit_id=uid, status="available", at=None, source="mqtt:t")
    a2 = assign(session=db, incident_id=second.id, unit_id=uid, actor="d", override_reason="r")
    crew_status_report(session=db, unit_id=uid, status="en_route", at=None, source="mqtt:t")
    # The crew's phone resends the old "cleared", stamped during its first call.
    old = t_cleared - timedelta(minutes=2)
    assert crew_status_report(session=db, unit_id=uid, status="cleared", at=old,
                              source="mqtt:t") == "late"
    db.refresh(a2)
    assert a2.status == "en_route" and a2.cleared_at is None
    status = db.execute(text("SELECT status FROM units WHERE id = :u"), {"u": uid}).scalar()
    assert status == "en_route"
    late = db.execute(text(
        "SELECT data FROM incident_events WHERE kind = 'late_crew_status' AND incident_id = :i"),
        {"i": first.id}).scalars().all()
    assert len(late) == 1 and late[0]["status"] == "cleared"
    assert late[0]["current_assignment_id"] == a2.id
    assert "late_crew_status" not in _kinds(db, second)
    assert record_findings(db, first.id) == [] and record_findings(db, second.id) == []


def test_status_older_than_the_last_applied_is_late(db: Session, crew: Callable[..., int],
                                                    incident: Callable[..., Incident]) -> None:
    """Two workers of a shared subscription deliver on_scene before en_route: en_route is late."""
    uid = crew()
    inc = incident()
    a = assign(session=db, incident_id=inc.id, unit_id=uid, actor="d", override_reason="r")
    t0 = datetime.now(UTC) + timedelta(seconds=1)
    assert crew_status_report(session=db, unit_id=uid, status="on_scene",
                              at=t0 + timedelta(seconds=30), source="mqtt:t") == "applied"
    assert crew_status_report(session=db, unit_id=uid, status="en_route", at=t0,
                              source="mqtt:t") == "late"
    db.refresh(a)
    assert a.status == "on_scene" and a.en_route_at is None
    assert _kinds(db, inc).count("late_crew_status") == 1
    # A status before the current assignment was dispatched is late too.
    before = a.dispatched_at - timedelta(seconds=5)
    assert crew_status_report(session=db, unit_id=uid, status="cleared", at=before,
                              source="mqtt:t") == "late"
    db.refresh(a)
    assert a.status == "on_scene"


def _setup(engine: Engine, n: int) -> list[tuple[int, int]]:
    pairs = []
    with Session(engine) as s, s.begin():
        for _ in range(n):
            uid = add_crew(s, KYIV)
            inc = register_incident(session=s, data=IncidentCreate(
                lat=KYIV.lat, lng=KYIV.lng, category="theft",
                idempotency_key=uuid.uuid4().hex), actor="ct")
            pairs.append((inc.id, uid))
    return pairs


def test_status_and_close_concurrently_never_deadlock(engine: Engine) -> None:
    """Crews reporting statuses while dispatchers close the same incidents: both lock paths
    run at once on the same rows; no deadlock, no lost event, every record verifies."""
    pairs = _setup(engine, 150)
    with Session(engine) as s, s.begin():
        for iid, uid in pairs:
            assign(session=s, incident_id=iid, unit_id=uid, actor="d", override_reason="r")
    errors: list[BaseException] = []
    # Both sides start each incident at the same instant, so their locks interleave.
    step = threading.Barrier(2, timeout=60)

    def crews() -> None:
        for _, uid in pairs:
            step.wait()
            for st in ("en_route",):
                try:
                    with Session(engine) as s, s.begin():
                        crew_status_report(session=s, unit_id=uid, status=st, at=None,
                                           source="mqtt:t")
                except Exception as exc:  # noqa: BLE001 - a Conflict (closed already) is fine
                    if type(exc).__name__ != "Conflict":
                        errors.append(exc)

    def dispatcher() -> None:
        for iid, _ in pairs:
            step.wait()
            try:
                with Session(engine) as s, s.begin():
                    s.execute(text("SET LOCAL lock_timeout = '20s'"))
                    close_incident(session=s, incident_id=iid, actor="d", disposition="01")
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=crews), threading.Thread(target=dispatcher)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    assert errors == [], errors
    with Session(engine) as s:
        closed = s.execute(text("SELECT count(*) FROM incidents WHERE id = ANY(:i) "
                                "AND status = 'closed'"), {"i": [i for i, _ in pairs]}).scalar()
        assert closed == len(pairs)
        free = s.execute(text("SELECT count(*) FROM units WHERE id = ANY(:u) AND status IN "
                              "('available', 'on_scene', 'en_route')"),
                         {"u": [u for _, u in pairs]}).scalar()
        assert free == len(pairs)
        for iid, _ in pairs:
            assert record_findings(s, iid) == [], iid
