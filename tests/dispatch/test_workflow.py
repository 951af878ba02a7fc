"""The dispatch workflow: assignment, crew statuses, arrival from GPS, closing, alerts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.dispatch.alerts import supervisor_alerts
from geodispatch.dispatch.arrivals import detect_arrivals
from geodispatch.dispatch.effects import take_pending_publishes
from geodispatch.dispatch.recommend import recommend
from geodispatch.dispatch.states import TRANSITIONS
from geodispatch.dispatch.workflow import (
    assign,
    cancel_incident,
    close_incident,
    crew_status_report,
    merge_incident,
    reopen_incident,
)
from geodispatch.errors import Conflict, InvalidInput
from geodispatch.geo import LatLng
from geodispatch.incidents.models import Incident
from geodispatch.settings import Settings
from geodispatch.tracking.fleet import LiveFleet
from tests.dispatch.conftest import KYIV
from tests.helpers import record_findings


def _recommended(db: Session, inc: Incident, fleet: LiveFleet, settings: Settings) -> list[int]:
    reco = recommend(session=db, incident_id=inc.id, fleet=fleet, router=None, zone_index=None,
                     settings=settings, top_n=50)
    return [r.unit_id for r in reco.ranked]


def _templates(db: Session, inc: Incident) -> list[str]:
    return list(db.execute(text("SELECT template FROM sms_outbox WHERE incident_id = :i "
                                "ORDER BY id"), {"i": inc.id}).scalars())


def test_full_lifecycle(db: Session, crew: Callable[..., int], incident: Callable[..., Incident],
                        fleet: Callable[[], LiveFleet], settings: Settings) -> None:
    """available -> dispatched -> en route -> on scene -> cleared -> available; SMS at each step."""
    uid = crew(LatLng(50.452, 30.525))
    inc = incident()
    assert uid in _recommended(db, inc, fleet(), settings)
    a = assign(session=db, incident_id=inc.id, unit_id=uid, actor="d1")
    assert a.was_recommended and a.is_lead and a.eta_s and inc.status == "assigned"
    pub = take_pending_publishes(db)
    assert pub and pub[0].payload and pub[0].payload["reference"] == inc.reference
    for st, inc_status in (("en_route", "en_route"), ("on_scene", "on_scene"),
                           ("cleared", "cleared")):
        crew_status_report(session=db, unit_id=uid, status=st, at=None, source="mqtt:test")
        assert inc.status == inc_status
    crew_status_report(session=db, unit_id=uid, status="available", at=None, source="mqtt:test")
    close_incident(session=db, incident_id=inc.id, actor="d1", disposition="01")
    assert inc.status == "closed" and inc.disposition == "01"
    assert _templates(db, inc) == ["registered", "assigned", "arrived", "closed"]
    times = db.execute(text("SELECT en_route_at, on_scene_at, cleared_at FROM assignments "
                            "WHERE id = :a"), {"a": a.id}).one()
    assert all(times)
    assert record_findings(db, inc.id) == []


def test_override_needs_reason(db: Session, crew: Callable[..., int],
                               incident: Callable[..., Incident]) -> None:
    """A crew that was not recommended needs an override reason."""
    uid = crew()
    inc = incident()
    with pytest.raises(InvalidInput):
        assign(session=db, incident_id=inc.id, unit_id=uid, actor="d1")
    a = assign(session=db, incident_id=inc.id, unit_id=uid, actor="d1",
               override_reason="knows the area")
    assert not a.was_recommended and a.override_reason == "knows the area"


def test_joint_action_has_one_lead(db: Session, crew: Callable[..., int],
                                   incident: Callable[..., Incident]) -> None:
    """Several crews per incident; lead=True moves the lead."""
    u1, u2 = crew(), crew()
    inc = incident()
    a1 = assign(session=db, incident_id=inc.id, unit_id=u1, actor="d", override_reason="r")
    a2 = assign(session=db, incident_id=inc.id, unit_id=u2, actor="d", override_reason="r")
    assert a1.is_lead and not a2.is_lead
    a3_unit = crew()
    a3 = assign(session=db, incident_id=inc.id, unit_id=a3_unit, actor="d", override_reason="r",
                lead=True)
    db.refresh(a1)
    assert a3.is_lead and not a1.is_lead


def test_busy_crew_cannot_be_assigned(db: Session, crew: Callable[..., int],
                                      incident: Callable[..., Incident]) -> None:
    """A dispatched crew is not available for another incident."""
    uid = crew()
    assign(session=db, incident_id=incident().id, unit_id=uid, actor="d", override_reason="r")
    with pytest.raises(Conflict):
        assign(session=db, incident_id=incident().id, unit_id=uid, actor="d",
               override_reason="r")


def test_forbidden_transition_and_unknown_status(db: Session, crew: Callable[..., int]) -> None:
    """The transition table is enforced; repeating a status is a no-op."""
    uid = crew(status="off_duty")
    assert "on_scene" not in TRANSITIONS["off_duty"]
    with pytest.raises(Conflict):
        crew_status_report(session=db, unit_id=uid, status="on_scene", at=None, source="t")
    with pytest.raises(InvalidInput):
        crew_status_report(session=db, unit_id=uid, status="flying", at=None, source="t")
    crew_status_report(session=db, unit_id=uid, status="off_duty", at=None, source="t")
    for st in ("available", "break", "available", "out_of_service", "available"):
        crew_status_report(session=db, unit_id=uid, status=st, at=None, source="t")


def test_arrival_detected_from_gps(db: Session, crew: Callable[..., int],
                                   incident: Callable[..., Incident], settings: Settings) -> None:
    """A crew whose newest fix is within the arrival radius is marked on scene."""
    uid = crew(LatLng(50.46, 30.53))
    inc = incident()
    assign(session=db, incident_id=inc.id, unit_id=uid, actor="d", override_reason="r")
    assert detect_arrivals(session=db, settings=settings) == 0
    db.execute(text("UPDATE unit_latest SET geom = ST_SetSRID(ST_MakePoint(:lng, :lat), 4326),"
                    " fix_time = clock_timestamp() WHERE unit_id = :u"),
               {"u": uid, "lat": KYIV.lat + 0.0003, "lng": KYIV.lng})
    assert detect_arrivals(session=db, settings=settings) == 1
    assert inc.status == "on_scene" and "arrived" in _templates(db, inc)


def test_cancel_releases_crews(db: Session, crew: Callable[..., int],
                               incident: Callable[..., Incident]) -> None:
    """Cancelling frees the crews and is an event; reopening puts the call back in the queue."""
    uid = crew()
    inc = incident()
    assign(session=db, incident_id=inc.id, unit_id=uid, actor="d", override_reason="r")
    cancel_incident(session=db, incident_id=inc.id, actor="d", reason="caller rang back")
    assert inc.status == "cancelled"
    assert db.execute(text("SELECT status FROM units WHERE id = :u"), {"u": uid}).scalar() \
        == "available"
    reopen_incident(session=db, incident_id=inc.id, actor="s", reason="rang again")
    assert inc.status == "queued"
    assert record_findings(db, inc.id) == []


def test_merge_points_to_master(db: Session, incident: Callable[..., Incident]) -> None:
    """A duplicate points to its master; both logs record it."""
    master, dup = incident(), incident()
    merge_incident(session=db, incident_id=dup.id, into_id=master.id, actor="d",
                   reason="same fight")
    assert dup.status == "merged" and dup.merged_into_id == master.id
    kinds = set(db.execute(text("SELECT kind FROM incident_events WHERE incident_id IN (:a, :b)"),
                           {"a": master.id, "b": dup.id}).scalars())
    assert {"duplicate_of", "absorbed"} <= kinds
    with pytest.raises(Conflict):
        close_incident(session=db, incident_id=dup.id, actor="d", disposition="22")


def test_close_needs_known_disposition(db: Session, incident: Callable[..., Incident]) -> None:
    """Only APCO common disposition codes close an incident."""
    inc = incident()
    with pytest.raises(InvalidInput):
        close_incident(session=db, incident_id=inc.id, actor="d", disposition="99")


def test_supervisor_alerts(db: Session, crew: Callable[..., int],
                           incident: Callable[..., Incident], settings: Settings) -> None:
    """Unassigned too long, dispatched but not moving, GPS stale, on scene too long."""
    inc = incident(category="robbery")
    stale = crew(fix_age_s=3600)
    mover = crew()
    assign(session=db, incident_id=inc.id, unit_id=mover, actor="d", override_reason="r")
    later = datetime.now(UTC) + timedelta(hours=2)
    region = "KV"
    kinds = {(a.kind, a.unit_id or a.incident_id) for a in supervisor_alerts(
        session=db, region=region, settings=settings, now=later)}
    assert ("dispatched_not_moving", mover) in kinds
    assert ("gps_stale", stale) in kinds
    inc2 = incident(category="robbery")
    kinds = {(a.kind, a.incident_id) for a in supervisor_alerts(
        session=db, region=region, settings=settings, now=later)}
    assert ("unassigned", inc2.id) in kinds
    crew_status_report(session=db, unit_id=mover, status="on_scene", at=None, source="t")
    kinds2 = {a.kind for a in supervisor_alerts(session=db, region=region, settings=settings,
                                                now=later)}
    assert "on_scene_too_long" in kinds2
    # Region ZZ has no incidents or crews: only system-health alerts (not regional) may show.
    assert not [a for a in supervisor_alerts(session=db, region="ZZ", settings=settings,
                                             now=later) if a.region is not None or a.unit_id]
