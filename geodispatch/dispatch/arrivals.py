"""GPS arrival detection, run every ``monitor_interval_s`` by the dispatch lifespan: a crew whose
newest fix is within ``arrival_radius_m`` of its incident is put on scene, as if it had said so.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.dispatch.workflow import crew_status_report
from geodispatch.errors import Conflict, InvalidInput, NotFound
from geodispatch.settings import Settings, get_settings

log = logging.getLogger(__name__)


def detect_arrivals(*, session: Session, settings: Settings | None = None) -> int:
    """Mark crews on scene whose newest fix is within ``arrival_radius_m`` of their incident."""
    settings = settings or get_settings()
    rows = session.execute(text(
        "SELECT a.unit_id, l.fix_time FROM assignments a"
        " JOIN incidents i ON i.id = a.incident_id JOIN unit_latest l ON l.unit_id = a.unit_id"
        " JOIN units u ON u.id = a.unit_id"
        " WHERE a.status IN ('dispatched', 'acknowledged', 'en_route')"
        "   AND u.status IN ('dispatched', 'en_route') AND l.fix_time >= a.dispatched_at"
        "   AND (u.status_changed_at IS NULL OR l.fix_time >= u.status_changed_at)"
        "   AND ST_DWithin(l.geom::geography, i.location::geography, :r)"),
        {"r": settings.arrival_radius_m}).all()
    done = 0
    for unit_id, fix_time in rows:
        try:
            with session.begin_nested():
                crew_status_report(session=session, unit_id=int(unit_id), status="on_scene",
                                   at=fix_time, source="gps")
            done += 1
        except (Conflict, InvalidInput, NotFound) as exc:
            log.info("arrival of unit %s not applied: %s", unit_id, exc)
    return done
