"""Response intervals per incident, computed from incidents and assignments and materialised.

Definitions (all in seconds; NULL when a step never happened, or the clocks put it before the
step it is measured from or more than a day (:data:`MAX_INTERVAL_S`) after it, which only data
errors do; such an interval is left out, never averaged):

==================  ==============================================================================
registration_s      call received -> incident registered (``received_at -> registered_at``)
queue_s             registered -> first crew dispatched (the incident waiting for a crew)
call_processing_s   received -> first crew dispatched (NFPA 1221's call processing; = the two above)
turnout_s           dispatched -> en route of the *first-arriving* crew (of the first-dispatched
                    crew when none arrived)
travel_s            en route -> on scene of the first-arriving crew; from dispatched when that crew
                    never reported en route
total_response_s    call received -> first crew on scene (any crew)
on_scene_s          first crew on scene -> last crew cleared
==================  ==============================================================================

Crews whose assignment was later cancelled still count as dispatched (the call left the queue).
Incidents merged into another are left out (the surviving incident carries the response).
``hour`` and ``dow`` (0 = Monday) are the centre's local time (``settings.analytics_timezone``).

Materialisation: :func:`refresh_intervals` upserts ``response_intervals`` with one SQL statement
and then rebuilds the quantile sketches of ``response_sketches`` (:mod:`.sketch`) for every day it
touched (and their months), so percentiles over years never have to sort a year of rows.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

from h3.api import basic_int as h3i
from sqlalchemy import Result, text
from sqlalchemy.orm import Session

from geodispatch.analytics.sketch import rebuild_sketches
from geodispatch.settings import get_settings

log = logging.getLogger(__name__)

RESOLUTIONS = (7, 8, 9)
"""H3 resolutions materialised with every interval row (and in ``response_sketches``)."""

def rowcount(result: Result[Any]) -> int:
    """Rows affected by a DML statement (SQLAlchemy types ``execute`` as a plain Result)."""
    return int(getattr(result, "rowcount", 0) or 0)


MAX_INTERVAL_S = 86_400
"""An interval longer than a day is a data error (a clock or a forgotten status), not a
response time: like a negative one it is left out (NULL), never averaged."""

UNDISPATCHED = "import-undispatched"
"""``created_by`` of an imported assignment whose source has no dispatch time: its
``dispatched_at`` holds the call's received time only because the column is NOT NULL; here it
counts as unknown (no queue, call processing, turnout; travel only from en route)."""

_DISPATCHED = f"(CASE WHEN a.created_by <> '{UNDISPATCHED}' THEN a.dispatched_at END)"


def _nonneg(expr: str) -> str:
    return f"(CASE WHEN ({expr}) BETWEEN 0 AND {MAX_INTERVAL_S} THEN ({expr}) END)"


def _epoch(a: str, b: str) -> str:
    return _nonneg(f"extract(epoch FROM ({b}) - ({a}))::float8")


_TARGET_ALL = "TRUE"
_TARGET_SINCE = """(
    i.received_at >= :since OR i.closed_at >= :since OR EXISTS (
        SELECT 1 FROM assignments a2 WHERE a2.incident_id = i.id AND greatest(
            a2.dispatched_at, a2.acknowledged_at, a2.en_route_at, a2.on_scene_at,
            a2.cleared_at, a2.cancelled_at) >= :since))"""


def _upsert_sql(target: str) -> str:
    cells = ", ".join(f"fx.h3_{r}" for r in RESOLUTIONS)
    cols = (
        "registration_s, queue_s, call_processing_s, turnout_s, travel_s, total_response_s, "
        "on_scene_s, crews"
    )
    updates = ", ".join(
        f"{c} = excluded.{c}"
        for c in (
            ["received_at", "region", "category", "priority", "sector_id", "h3_7", "h3_8",
             "h3_9", "hour", "dow"]
            + [c.strip() for c in cols.split(",")]
        )
    )
    return f"""
    INSERT INTO response_intervals (incident_id, received_at, region, category, priority,
        sector_id, h3_7, h3_8, h3_9, hour, dow, {cols})
    SELECT i.id, i.received_at, i.region, i.category, i.priority, i.sector_id, {cells},
        extract(hour FROM i.received_at AT TIME ZONE :tz)::smallint,
        (extract(isodow FROM i.received_at AT TIME ZONE :tz) - 1)::smallint,
        {_epoch("i.received_at", "i.registered_at")},
        {_epoch("i.registered_at", "f.first_dispatched")},
        {_epoch("i.received_at", "f.first_dispatched")},
        {_epoch("c.dispatched_at", "c.en_route_at")},
        {_epoch("coalesce(c.en_route_at, c.dispatched_at)", "c.on_scene_at")},
        {_epoch("i.received_at", "f.first_on_scene")},
        {_epoch("f.first_on_scene", "f.last_cleared")},
        coalesce(f.crews, 0)
    FROM incidents i
    JOIN _ri_h3 fx ON fx.incident_id = i.id
    LEFT JOIN LATERAL (
        SELECT min({_DISPATCHED}) AS first_dispatched, min(a.on_scene_at) AS first_on_scene,
               max(a.cleared_at) AS last_cleared, count(*) AS crews
        FROM assignments a WHERE a.incident_id = i.id) f ON TRUE
    LEFT JOIN LATERAL (
        SELECT {_DISPATCHED} AS dispatched_at, a.en_route_at, a.on_scene_at
        FROM assignments a WHERE a.incident_id = i.id
        ORDER BY a.on_scene_at NULLS LAST, a.dispatched_at, a.id LIMIT 1) c ON TRUE
    WHERE i.status <> 'merged' AND {target}
    ON CONFLICT (incident_id) DO UPDATE SET {updates}
    """


def _stage_cells(session: Session, target: str, params: dict[str, object]) -> int:
    """Put the H3 cells (res 7, 8, 9) of every target incident into the temp table ``_ri_h3``.

    Each resolution is computed from the location with ``h3.latlng_to_cell``, not derived from
    a finer cell: H3 children do not tile their parent exactly, so the parent of a point's res-9
    cell is not always the res-8 cell that contains the point.
    """
    cols = ", ".join(f"h3_{r} bigint" for r in RESOLUTIONS)
    session.execute(text(
        f"CREATE TEMP TABLE IF NOT EXISTS _ri_h3 (incident_id int PRIMARY KEY, {cols}) "
        "ON COMMIT DROP"))
    session.execute(text("TRUNCATE _ri_h3"))
    rows = session.execute(
        text(f"SELECT i.id, ST_Y(i.location), ST_X(i.location) FROM incidents i WHERE {target}"),
        params,
    ).all()
    if not rows:
        return 0
    to_cell = h3i.latlng_to_cell
    raw = session.connection().connection.driver_connection
    assert raw is not None
    names = ", ".join(f"h3_{r}" for r in RESOLUTIONS)
    with raw.cursor() as cur, cur.copy(f"COPY _ri_h3 (incident_id, {names}) FROM STDIN") as copy:
        for incident_id, lat, lng in rows:
            # An incident whose place is still unknown has no cells and no interval row yet;
            # placing it on the map is an event, which brings it into the next refresh.
            if lat is not None:
                copy.write_row((incident_id, *(to_cell(lat, lng, r) for r in RESOLUTIONS)))
    return len(rows)


def _days_of(session: Session, target: str, params: dict[str, object]) -> set[date]:
    sql = (
        "SELECT DISTINCT (r.received_at AT TIME ZONE 'UTC')::date FROM response_intervals r "
        f"JOIN incidents i ON i.id = r.incident_id WHERE {target}"
    )
    return {d for (d,) in session.execute(text(sql), params)}


def refresh_intervals(
    *, session: Session, since: datetime | None = None, tz: str | None = None
) -> int:
    """Recompute the response intervals of every incident that changed since ``since``.

    An incident is refreshed when it was received or closed, or one of its assignments had any
    step, at or after ``since``; ``None`` refreshes everything. The per-cell-day arrays of every
    touched day are rebuilt afterwards.

    Parameters
    ----------
    session : Session
        The caller's unit of work (flushed, not committed).
    since : datetime, optional
        Only incidents with activity at or after this instant (timezone-aware).
    tz : str, optional
        IANA zone of ``hour``/``dow``; default ``settings.analytics_timezone``.

    Returns
    -------
    int
        Number of incidents whose interval row was inserted or updated.
    """
    tz = tz or get_settings().analytics_timezone
    session.flush()
    # One refresher at a time: two would rebuild the same cell-day rows and collide on their key.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('geodispatch.analytics.refresh'))"))
    params: dict[str, object] = {"tz": tz}
    target = _TARGET_ALL
    if since is not None:
        # Decide once which incidents changed; every later statement joins this small set.
        session.execute(text(
            "CREATE TEMP TABLE IF NOT EXISTS _ri_target (incident_id int PRIMARY KEY) "
            "ON COMMIT DROP"))
        session.execute(text("TRUNCATE _ri_target"))
        session.execute(text(
            f"INSERT INTO _ri_target SELECT i.id FROM incidents i WHERE {_TARGET_SINCE}"),
            {"since": since})
        session.execute(text("ANALYZE _ri_target"))
        target = "i.id IN (SELECT incident_id FROM _ri_target)"
    _stage_cells(session, target, params)
    days_before = _days_of(session, target, params) if since is not None else set()
    merged = session.execute(
        text(
            "DELETE FROM response_intervals r USING incidents i WHERE i.id = r.incident_id "
            f"AND i.status = 'merged' AND {target}"
        ),
        params,
    )
    count = rowcount(session.execute(text(_upsert_sql(target)), params))
    if since is None:
        rebuild_sketches(session=session, days=None)
    else:
        rebuild_sketches(session=session, days=days_before | _days_of(session, target, params))
    log.info("response intervals: %d incidents refreshed, %d merged removed", count,
             rowcount(merged))
    return count


__all__ = ["MAX_INTERVAL_S", "RESOLUTIONS", "UNDISPATCHED", "refresh_intervals", "rowcount"]
