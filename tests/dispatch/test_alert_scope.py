"""Supervisor alerts only for live work: open incidents, active crews, plausible ages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.dispatch.alerts import supervisor_alerts
from geodispatch.dispatch.workflow import assign, crew_status_report
from geodispatch.incidents.models import Incident
from geodispatch.settings import Settings

REGION = "KV"


def _mine(db: Session, settings: Settings, ids: set[int]) -> list[tuple[str, int | None]]:
    return [(a.kind, a.unit_id or a.incident_id) for a in supervisor_alerts(
        session=db, region=REGION, settings=settings)
        if (a.unit_id in ids or a.incident_id in ids)]


def test_no_timers_for_an_inactive_crew_or_a_closed_incident(
    db: Session, crew: Callable[..., int], incident: Callable[..., Incident],
    settings: Settings,
) -> None:
    """A deactivated crew with an old fix and a crew on scene at an incident already closed
    raise nothing; the same crew on an open incident does."""
    gone = crew(fix_age_s=3600)
    db.execute(text("UPDATE units SET active = false WHERE id = :u"), {"u": gone})
    inc = incident(category="robbery")
    busy = crew()
    assign(session=db, incident_id=inc.id, unit_id=busy, actor="d", override_reason="r")
    crew_status_report(session=db, unit_id=busy, status="on_scene", at=None, source="t")
    db.execute(text("UPDATE assignments SET on_scene_at = now() - interval '2 hours'"
                    " WHERE unit_id = :u"), {"u": busy})
    assert ("on_scene_too_long", busy) in _mine(db, settings, {gone, busy})
    assert not [k for k in _mine(db, settings, {gone}) if k[1] == gone]
    db.execute(text("UPDATE incidents SET status = 'closed' WHERE id = :i"), {"i": inc.id})
    assert _mine(db, settings, {busy, inc.id}) == []


def test_absurd_ages_are_counted_not_listed(
    db: Session, crew: Callable[..., int], incident: Callable[..., Incident],
    settings: Settings,
) -> None:
    """An imported crew on scene since 2017 and a crew whose last fix is from 2017 are no
    timers of their own: one 'stale_records' alert counts them."""
    before = [a for a in supervisor_alerts(session=db, region=REGION, settings=settings)
              if a.kind == "stale_records"]
    old_count = before[0].count if before else 0
    silent = crew(fix_age_s=(datetime.now(UTC) - datetime(2017, 3, 1, tzinfo=UTC))
                  .total_seconds())
    inc = incident(category="robbery")
    imported = crew()
    assign(session=db, incident_id=inc.id, unit_id=imported, actor="d", override_reason="r")
    crew_status_report(session=db, unit_id=imported, status="on_scene", at=None, source="t")
    db.execute(text("UPDATE assignments SET on_scene_at = :t WHERE unit_id = :u"),
               {"u": imported, "t": datetime(2017, 3, 1, tzinfo=UTC)})
    alerts = supervisor_alerts(session=db, region=REGION, settings=settings)
    assert not [a for a in alerts if a.unit_id in (silent, imported)]
    assert all(a.seconds <= settings.alerts_max_age_s for a in alerts
               if a.kind != "stale_records")
    stale = [a for a in alerts if a.kind == "stale_records"]
    assert len(stale) == 1 and stale[0].count == (old_count or 0) + 2
    assert "2017" not in stale[0].message and stale[0].region == REGION


def test_alerts_carry_what_a_console_words_them_with(
    db: Session, incident: Callable[..., Incident], settings: Settings,
) -> None:
    """An unassigned P1 carries its priority and the priority's limit."""
    inc = incident(category="robbery")
    later = datetime.now(UTC) + timedelta(minutes=5)
    a = next(a for a in supervisor_alerts(session=db, region=REGION, settings=settings,
                                          now=later)
             if a.kind == "unassigned" and a.incident_id == inc.id)
    assert (a.priority, a.limit_s, a.reference) == (1, 60.0, inc.reference)
    assert 299 < a.seconds < 330
