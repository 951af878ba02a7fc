"""The timers a supervisor watches: on scene too long, dispatched but not moving, an assignment
the crew has not acknowledged, GPS stale on a crew in service, an incident unassigned longer than
its priority allows.

Only live work raises a timer: open incidents, active crews, assignments still running on an open
incident. A timer older than ``alerts_max_age_s`` (an imported crew on scene since 2017, a unit
silent for weeks) is no shift's work but an old record: such timers are counted in one
``stale_records`` alert, not listed one by one with absurd ages.

Each alert carries what a console needs to word it in its own language (kind, seconds,
``limit_s``, reference, call sign, ``priority``, ``status``); ``message`` is the English text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.dispatch.states import FINAL_INCIDENT
from geodispatch.incidents.classification import load_classification
from geodispatch.settings import Settings, get_settings
from geodispatch.tracking.scheduled import tracking_alerts


@dataclass(frozen=True)
class Alert:
    """One supervisor alert."""

    kind: str
    severity: str
    since: datetime
    seconds: float
    message: str
    incident_id: int | None = None
    reference: str | None = None
    unit_id: int | None = None
    call_sign: str | None = None
    region: str | None = None
    limit_s: float | None = None
    priority: int | None = None
    status: str | None = None
    count: int | None = None


def supervisor_alerts(*, session: Session, region: str | None, settings: Settings | None = None,
                      now: datetime | None = None) -> list[Alert]:
    """Timers a supervisor watches: on scene too long, dispatched but not moving, GPS stale on
    a crew in service, incident unassigned longer than its priority allows."""
    settings = settings or get_settings()
    now = now or datetime.now(UTC)
    cls = load_classification(settings)
    params: dict[str, Any] = {"region": region}
    reg_i = "AND (CAST(:region AS text) IS NULL OR i.region = :region)"
    reg_u = "AND (CAST(:region AS text) IS NULL OR u.region = :region)"
    final = ", ".join(f"'{x}'" for x in FINAL_INCIDENT)
    max_age = settings.alerts_max_age_s
    alerts: list[Alert] = []
    old = 0  # timers older than max_age: counted, not listed

    def add(alert: Alert) -> None:
        nonlocal old
        if alert.seconds > max_age:
            old += 1
        else:
            alerts.append(alert)

    for r in session.execute(text(
            "SELECT i.id, i.reference, i.region, i.priority, i.received_at FROM incidents i"
            f" WHERE i.status IN ('registered', 'queued') {reg_i}"), params):
        waited = (now - r.received_at).total_seconds()
        limit = cls.unassigned_limit(int(r.priority))
        if waited > limit:
            add(Alert("unassigned", "high" if r.priority <= 1 else "medium",
                      r.received_at, waited,
                      f"{r.reference} (P{r.priority}) unassigned for {waited:.0f} s "
                      f"(limit {limit:.0f} s)", r.id, r.reference, region=r.region,
                      limit_s=limit, priority=int(r.priority)))
    for r in session.execute(text(
            "SELECT a.status, a.dispatched_at, a.acknowledged_at, a.send_count, a.on_scene_at,"
            " a.en_route_at, i.id, i.reference, i.priority,"
            " i.region, u.id AS unit_id, u.call_sign, l.speed_mps, l.fix_time,"
            " ST_Distance(l.geom::geography, i.location::geography) AS dist"
            " FROM assignments a JOIN incidents i ON i.id = a.incident_id"
            " JOIN units u ON u.id = a.unit_id LEFT JOIN unit_latest l ON l.unit_id = u.id"
            " WHERE a.status IN ('dispatched', 'acknowledged', 'on_scene') AND u.active"
            f" AND i.status NOT IN ({final}) {reg_u}"), params):
        prio = int(r.priority)
        if r.status == "on_scene" and r.on_scene_at is not None:
            t = (now - r.on_scene_at).total_seconds()
            if t > settings.on_scene_alert_s:
                add(Alert("on_scene_too_long", "medium", r.on_scene_at, t,
                          f"{r.call_sign} on scene at {r.reference} for {t:.0f} s",
                          r.id, r.reference, r.unit_id, r.call_sign, r.region,
                          limit_s=settings.on_scene_alert_s, priority=prio))
        elif r.status in ("dispatched", "acknowledged"):
            t = (now - r.dispatched_at).total_seconds()
            if r.acknowledged_at is None and t > settings.assignment_ack_timeout_s:
                add(Alert("not_acknowledged", "high", r.dispatched_at, t,
                          f"{r.call_sign} has not acknowledged {r.reference} "
                          f"({t:.0f} s, sent {r.send_count} times)", r.id,
                          r.reference, r.unit_id, r.call_sign, r.region,
                          limit_s=settings.assignment_ack_timeout_s, priority=prio,
                          count=int(r.send_count or 0)))
            moving = r.speed_mps is not None and r.speed_mps > 1.0 and r.fix_time is not None \
                and r.fix_time > r.dispatched_at
            if t > settings.not_moving_alert_s and not moving:
                add(Alert("dispatched_not_moving", "high", r.dispatched_at, t,
                          f"{r.call_sign} dispatched to {r.reference} {t:.0f} s ago "
                          "and not moving", r.id, r.reference, r.unit_id, r.call_sign,
                          r.region, limit_s=settings.not_moving_alert_s, priority=prio))
    for r in session.execute(text(
            "SELECT u.id, u.call_sign, u.region, u.status, l.fix_time FROM units u"
            " LEFT JOIN unit_latest l ON l.unit_id = u.id"
            " WHERE u.active AND u.status IN ('available', 'dispatched', 'en_route', 'on_scene')"
            f"  AND (l.fix_time IS NULL OR l.fix_time < :cut) {reg_u}"),
            {**params, "cut": now - _seconds(settings.stale_after_s)}):
        since = r.fix_time or now
        t = (now - since).total_seconds()
        add(Alert("gps_stale", "high" if r.status != "available" else "low", since, t,
                  f"{r.call_sign} ({r.status}) " + (
                      f"last fix {t:.0f} s ago" if r.fix_time else "has no fix"),
                  unit_id=r.id, call_sign=r.call_sign, region=r.region,
                  limit_s=settings.stale_after_s, status=r.status))
    if old:
        alerts.append(Alert("stale_records", "low", now, max_age,
                            f"{old} timers older than {max_age:.0f} s left out (imported or "
                            "never-closed records, crews silent for days): check them",
                            region=region, limit_s=max_age, count=old))

    # System health every supervisor must see (partitions, dead letters): no region.
    alerts.extend(Alert(h.kind, h.severity, h.since, h.seconds, h.message)
                  for h in tracking_alerts(session=session, settings=settings, now=now))
    order = {"high": 0, "medium": 1, "low": 2}
    alerts.sort(key=lambda a: (order[a.severity], -a.seconds))
    return alerts


def _seconds(s: float) -> timedelta:
    return timedelta(seconds=s)
