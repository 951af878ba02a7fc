"""The timers a supervisor watches: on scene too long, dispatched but not moving, an assignment
the crew has not acknowledged, GPS stale on a crew in service, an incident unassigned longer than
its priority allows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

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
    alerts: list[Alert] = []
    for r in session.execute(text(
            "SELECT i.id, i.reference, i.region, i.priority, i.received_at FROM incidents i"
            f" WHERE i.status IN ('registered', 'queued') {reg_i}"), params):
        waited = (now - r.received_at).total_seconds()
        limit = cls.unassigned_limit(int(r.priority))
        if waited > limit:
            alerts.append(Alert("unassigned", "high" if r.priority <= 1 else "medium",
                                r.received_at, waited,
                                f"{r.reference} (P{r.priority}) unassigned for {waited:.0f} s "
                                f"(limit {limit:.0f} s)", r.id, r.reference, region=r.region))
    for r in session.execute(text(
            "SELECT a.status, a.dispatched_at, a.acknowledged_at, a.send_count, a.on_scene_at,"
            " a.en_route_at, i.id, i.reference,"
            " i.region, u.id AS unit_id, u.call_sign, l.speed_mps, l.fix_time,"
            " ST_Distance(l.geom::geography, i.location::geography) AS dist"
            " FROM assignments a JOIN incidents i ON i.id = a.incident_id"
            " JOIN units u ON u.id = a.unit_id LEFT JOIN unit_latest l ON l.unit_id = u.id"
            f" WHERE a.status IN ('dispatched', 'acknowledged', 'on_scene') {reg_u}"), params):
        if r.status == "on_scene" and r.on_scene_at is not None:
            t = (now - r.on_scene_at).total_seconds()
            if t > settings.on_scene_alert_s:
                alerts.append(Alert("on_scene_too_long", "medium", r.on_scene_at, t,
                                    f"{r.call_sign} on scene at {r.reference} for {t:.0f} s",
                                    r.id, r.reference, r.unit_id, r.call_sign, r.region))
        elif r.status in ("dispatched", "acknowledged"):
            t = (now - r.dispatched_at).total_seconds()
            if r.acknowledged_at is None and t > settings.assignment_ack_timeout_s:
                alerts.append(Alert("not_acknowledged", "high", r.dispatched_at, t,
                                    f"{r.call_sign} has not acknowledged {r.reference} "
                                    f"({t:.0f} s, sent {r.send_count} times)", r.id,
                                    r.reference, r.unit_id, r.call_sign, r.region))
            moving = r.speed_mps is not None and r.speed_mps > 1.0 and r.fix_time is not None \
                and r.fix_time > r.dispatched_at
            if t > settings.not_moving_alert_s and not moving:
                alerts.append(Alert("dispatched_not_moving", "high", r.dispatched_at, t,
                                    f"{r.call_sign} dispatched to {r.reference} {t:.0f} s ago "
                                    "and not moving", r.id, r.reference, r.unit_id, r.call_sign,
                                    r.region))
    for r in session.execute(text(
            "SELECT u.id, u.call_sign, u.region, u.status, l.fix_time FROM units u"
            " LEFT JOIN unit_latest l ON l.unit_id = u.id"
            " WHERE u.active AND u.status IN ('available', 'dispatched', 'en_route', 'on_scene')"
            f"  AND (l.fix_time IS NULL OR l.fix_time < :cut) {reg_u}"),
            {**params, "cut": now - _seconds(settings.stale_after_s)}):
        since = r.fix_time or now
        t = (now - since).total_seconds()
        alerts.append(Alert("gps_stale", "high" if r.status != "available" else "low", since, t,
                            f"{r.call_sign} ({r.status}) " + (
                                f"last fix {t:.0f} s ago" if r.fix_time else "has no fix"),
                            unit_id=r.id, call_sign=r.call_sign, region=r.region))

    # System health every supervisor must see (partitions, dead letters): no region.
    alerts.extend(Alert(h.kind, h.severity, h.since, h.seconds, h.message)
                  for h in tracking_alerts(session=session, settings=settings, now=now))
    order = {"high": 0, "medium": 1, "low": 2}
    alerts.sort(key=lambda a: (order[a.severity], -a.seconds))
    return alerts


def _seconds(s: float) -> timedelta:
    return timedelta(seconds=s)
