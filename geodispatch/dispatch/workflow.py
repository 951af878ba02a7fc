"""The dispatch workflow: assign crews, follow their statuses, close the incident.

Every step changes the current state (``assignments``, ``units.status``, ``incidents.status``)
and appends an event to the incident's record in the same transaction. Crew statuses
arrive from the crews themselves (MQTT, HTTP: :func:`crew_status_report`), from dispatchers
(the API) and from GPS arrival detection (:mod:`geodispatch.dispatch.arrivals`). The module
has three neighbours with one job each: the state machine (transitions, derived statuses) is
:mod:`geodispatch.dispatch.states`, what follows a change (terminal messages, caller SMS) is
:mod:`geodispatch.dispatch.effects`, and the supervisor timers are
:mod:`geodispatch.dispatch.alerts`.

**Lock order.** A unit of work locks incident rows first (several: ascending id), then unit rows
(ascending id), then assignment rows. Every function here keeps that order, so two dispatchers,
a crew's terminal and GPS arrival detection working on the same crew and incident wait for each
other instead of deadlocking.

**Late statuses.** A crew status carries the device's time. One older than the last status
applied to the crew, or than the dispatch of its current assignment (a lost acknowledgement
resent, a backlog after an outage), is recorded on the incident it belongs to as a
``late_crew_status`` event and changes nothing: an old "cleared" never clears a new call.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from geodispatch.dispatch.effects import (
    PendingPublish,
    assignment_message,
    note_terminal,
    note_unit_status,
    queue_publish,
    tell_caller,
)
from geodispatch.dispatch.models import Assignment
from geodispatch.dispatch.states import (
    ACTIVE,
    ASSIGNABLE_CREW,
    CREW_STATUSES,
    DELIVERY_STATUSES,
    FINAL_INCIDENT,
    apply_to_assignment,
    check_transition,
    incident_status,
    is_late,
)
from geodispatch.errors import Conflict, InvalidInput, NotFound
from geodispatch.incidents.classification import load_dispositions
from geodispatch.incidents.models import Incident
from geodispatch.incidents.record import append_event, iso_utc
from geodispatch.incidents.service import get_incident
from geodispatch.settings import Settings
from geodispatch.tracking.models import Unit

log = logging.getLogger(__name__)

#: Longest idempotency key a terminal may send with a report.
MAX_KEY = 128


def _set_unit_status(session: Session, unit: Unit, status: str, at: datetime) -> None:
    unit.status = status
    unit.status_changed_at = at
    note_unit_status(session, unit.id, status)



def _unit(session: Session, unit_id: int, *, lock: bool = True) -> Unit:
    q = select(Unit).where(Unit.id == unit_id)
    unit = session.execute(q.with_for_update() if lock else q).scalar_one_or_none()
    if unit is None:
        raise NotFound(f"unit {unit_id} not found")
    return unit


def _lock_units(session: Session, unit_ids: list[int]) -> dict[int, Unit]:
    """Lock several units in ascending id order (see the lock order in the module docstring)."""
    return {u.id: u for u in session.execute(
        select(Unit).where(Unit.id.in_(sorted(set(unit_ids)))).order_by(Unit.id)
        .with_for_update()).scalars()}


def _active_assignment(session: Session, unit_id: int, *, lock: bool = True
                       ) -> Assignment | None:
    q = (select(Assignment).where(Assignment.unit_id == unit_id, Assignment.status.in_(ACTIVE))
         .order_by(Assignment.id.desc()).limit(1))
    return session.execute(q.with_for_update() if lock else q).scalar_one_or_none()


def _derive_status(session: Session, incident: Incident) -> str:
    return incident_status(set(session.execute(
        select(Assignment.status).where(Assignment.incident_id == incident.id)).scalars()))


def _set_incident_status(session: Session, incident: Incident, actor: str, cause: str,
                         at: datetime) -> None:
    if incident.status in FINAL_INCIDENT:
        return
    session.flush()
    new = _derive_status(session, incident)
    if new != incident.status:
        previous = incident.status
        incident.status = new
        append_event(session=session, incident_id=incident.id, kind="status", actor=actor, at=at,
                     data={"from": previous, "to": new, "cause": cause, "set": {"status": new}})


def _latest_recommendation(session: Session, incident_id: int) -> dict[str, Any] | None:
    row = session.execute(text(
        "SELECT data, at FROM incident_events WHERE incident_id = :i AND kind = 'recommended' "
        "ORDER BY id DESC LIMIT 1"), {"i": incident_id}).first()
    if row is None:
        return None
    return {**row[0], "_at": row[1]}


def assign(*, session: Session, incident_id: int, unit_id: int, actor: str,
           override_reason: str | None = None, lead: bool = False) -> Assignment:
    """Send a crew to an incident.

    A crew from the incident's latest recommendation is an accepted suggestion; any other crew is
    an override and needs ``override_reason``. The first crew becomes the lead; ``lead=True``
    moves the lead to this crew. The crew must be available (or just cleared).
    """
    incident = get_incident(session=session, incident_id=incident_id, lock=True)
    if incident.status in FINAL_INCIDENT:
        raise Conflict(f"incident {incident.reference} is {incident.status}")
    unit = _unit(session, unit_id)
    if not unit.active:
        raise Conflict(f"unit {unit.call_sign} is not active")
    if unit.status not in ASSIGNABLE_CREW:
        raise Conflict(f"unit {unit.call_sign} is {unit.status}, not available")
    reco = _latest_recommendation(session, incident_id)
    ranked = {int(r["unit_id"]): r for r in (reco or {}).get("ranked", [])}
    suggested = ranked.get(unit_id)
    reason = (override_reason or "").strip() or None
    if suggested is None and reason is None:
        raise InvalidInput(f"unit {unit.call_sign} was not recommended for this incident: "
                           "give an override reason")
    existing = session.execute(select(Assignment).where(
        Assignment.incident_id == incident_id)).scalars().all()
    if any(a.unit_id == unit_id and a.status in ACTIVE for a in existing):
        raise Conflict(f"unit {unit.call_sign} is already assigned to this incident")
    is_lead = lead or not any(a.is_lead and a.status in ACTIVE for a in existing)
    if is_lead:
        for a in existing:
            a.is_lead = False
    now = datetime.now(UTC)
    assignment = Assignment(
        incident_id=incident_id, unit_id=unit_id, status="dispatched", is_lead=is_lead,
        was_recommended=suggested is not None, override_reason=reason,
        eta_s=(suggested or {}).get("eta_s"), distance_m=(suggested or {}).get("distance_m"),
        created_by=actor, recommended_at=(reco or {}).get("_at") if suggested else None,
        dispatched_at=now,
    )
    session.add(assignment)
    prev_status = unit.status
    _set_unit_status(session, unit, "dispatched", now)
    session.flush()
    append_event(session=session, incident_id=incident_id, kind="assigned", actor=actor, at=now,
                 data={"unit_id": unit_id, "call_sign": unit.call_sign, "lead": is_lead,
                       "recommended": suggested is not None, "override_reason": reason,
                       "eta_s": assignment.eta_s, "distance_m": assignment.distance_m,
                       "unit_status_before": prev_status})
    _set_incident_status(session, incident, actor, "assigned", now)
    # (a crew without an ETA, e.g. an override to one that was not ranked: the text without it)
    eta_min = max(1, round(assignment.eta_s / 60)) if assignment.eta_s else None
    tell_caller(session, incident, "assigned", call_sign=unit.call_sign, eta_min=eta_min)
    queue_publish(session, PendingPublish(unit.device_id, assignment_message(
        session=session, assignment=assignment, incident=incident), assignment.id))
    # The crews already on the call see the new one (and who leads) on their terminals.
    note_terminal(session, unit.id, *(a.unit_id for a in existing if a.status in ACTIVE))
    return assignment


def set_lead(*, session: Session, incident_id: int, unit_id: int, actor: str) -> Assignment:
    """Make the crew with an active assignment on the incident its lead (one lead at a time).

    The crews' terminals get their assignment again (the lead flag is in it); the event names the
    new and the previous lead.
    """
    incident = get_incident(session=session, incident_id=incident_id, lock=True)
    if incident.status in FINAL_INCIDENT:
        raise Conflict(f"incident {incident.reference} is {incident.status}")
    active = session.execute(select(Assignment).where(
        Assignment.incident_id == incident_id, Assignment.status.in_(ACTIVE))
        .order_by(Assignment.unit_id).with_for_update()).scalars().all()
    chosen = next((a for a in active if a.unit_id == unit_id), None)
    if chosen is None:
        raise InvalidInput(f"unit {unit_id} has no active assignment on incident "
                           f"{incident.reference}: only a crew on the incident can lead it")
    previous = next((a for a in active if a.is_lead), None)
    if previous is chosen:
        return chosen
    for a in active:
        a.is_lead = a is chosen
    session.flush()
    units = {u.id: u for u in session.execute(select(Unit).where(
        Unit.id.in_([a.unit_id for a in active]))).scalars()}
    append_event(session=session, incident_id=incident_id, kind="lead_changed", actor=actor,
                 data={"unit_id": unit_id, "call_sign": units[unit_id].call_sign,
                       "previous_unit_id": previous.unit_id if previous else None,
                       "previous_call_sign": units[previous.unit_id].call_sign
                       if previous else None})
    for a in active:  # (not tracked again: their delivery is tracked from the first send)
        queue_publish(session, PendingPublish(units[a.unit_id].device_id, assignment_message(
            session=session, assignment=a, incident=incident)))
    note_terminal(session, *(a.unit_id for a in active))
    return chosen


def _assignment_at(session: Session, unit_id: int, at: datetime) -> Assignment | None:
    """The crew's assignment that was open at ``at`` (the one a late status belongs to)."""
    return session.execute(
        select(Assignment).where(
            Assignment.unit_id == unit_id, Assignment.dispatched_at <= at,
            func.coalesce(Assignment.cleared_at, Assignment.cancelled_at, at) >= at)
        .order_by(Assignment.dispatched_at.desc()).limit(1)
    ).scalar_one_or_none()


def _record_late(session: Session, unit: Unit, status: str, when: datetime, source: str,
                 applied_at: datetime | None, current: Assignment | None) -> str:
    late_for = _assignment_at(session, unit.id, when) or current
    data = {"unit_id": unit.id, "call_sign": unit.call_sign, "status": status,
            "device_at": iso_utc(when), "crew_status_now": unit.status,
            "last_applied_at": iso_utc(applied_at) if applied_at else None,
            "current_assignment_id": current.id if current else None}
    if late_for is None:
        log.info("late status %s of unit %s (device time %s) belongs to no incident",
                 status, unit.call_sign, when.isoformat())
        return "late"
    if late_for is not current:
        get_incident(session=session, incident_id=late_for.incident_id, lock=True)
    append_event(session=session, incident_id=late_for.incident_id, kind="late_crew_status",
                 actor=source, at=datetime.now(UTC),
                 data={**data, "assignment_id": late_for.id})
    session.flush()
    return "late"


def crew_status_report(*, session: Session, unit_id: int, status: str, at: datetime | None,
                       source: str, key: str | None = None,
                       assignment_id: int | None = None) -> str:
    """Apply a crew status (from the crew's terminal, a dispatcher, or GPS arrival detection).

    Checks :data:`TRANSITIONS`, updates the unit, its active assignment and the incident's
    derived status, appends a ``crew_status`` event to the incident (when the crew is on one)
    and queues the caller's arrival SMS on the first crew on scene. A repeated status is a
    no-op. A status whose device time ``at`` is older than the crew's last applied status or
    than its current assignment's dispatch is recorded as ``late_crew_status`` and not applied.
    Raises InvalidInput for an unknown status and Conflict for a forbidden transition.

    ``delivered`` and ``acknowledged`` (:data:`DELIVERY_STATUSES`) are about the crew's current
    assignment (``assignment_id``, when given, must be it, else the report is late): they set
    its ``delivered_at`` / ``acknowledged_at`` with an ``assignment_delivered`` /
    ``assignment_acknowledged`` event and leave the unit's status alone. A ``key`` (the
    terminal's idempotency key) makes a resent report a no-op: the first one is stored, every
    later one with the same key returns ``duplicate``.

    Returns
    -------
    str
        ``applied``, ``repeated``, ``late`` or ``duplicate``.
    """
    if status not in CREW_STATUSES and status not in DELIVERY_STATUSES:
        raise InvalidInput(f"unknown crew status {status!r}")
    if key is not None and not (0 < len(key) <= MAX_KEY):
        raise InvalidInput(f"an idempotency key has 1 to {MAX_KEY} characters")
    when = (at or datetime.now(UTC)).astimezone(UTC)
    if key is not None:
        fresh = session.execute(text(
            "INSERT INTO crew_report_keys (key, unit_id, status, result) "
            "VALUES (:k, :u, :s, 'pending') ON CONFLICT (key) DO NOTHING RETURNING key"),
            {"k": key, "u": unit_id, "s": status}).first()
        if fresh is None:
            return "duplicate"
        result = _crew_status(session, unit_id, status, at, when, source, assignment_id)
        session.execute(text("UPDATE crew_report_keys SET result = :r WHERE key = :k"),
                        {"r": result, "k": key})
        return result
    return _crew_status(session, unit_id, status, at, when, source, assignment_id)


def _crew_status(session: Session, unit_id: int, status: str, at: datetime | None,
                 when: datetime, source: str, assignment_id: int | None) -> str:
    # Lock order: the incident of the crew's current assignment, then the crew, then the
    # assignment. The assignment is found without a lock first and checked again under it.
    for _ in range(3):
        seen = _active_assignment(session, _unit(session, unit_id, lock=False).id, lock=False)
        incident = (get_incident(session=session, incident_id=seen.incident_id, lock=True)
                    if seen is not None else None)
        unit = _unit(session, unit_id)
        assignment = _active_assignment(session, unit_id)
        if (assignment.id if assignment else None) == (seen.id if seen else None):
            break
    else:
        raise Conflict(f"unit {unit_id}: its assignment keeps changing; report again")
    current = unit.status
    applied_at = unit.status_changed_at
    if status in DELIVERY_STATUSES:
        return _delivery_status(session, unit, status, at, when, source, assignment,
                                assignment_id, incident)
    if at is not None and is_late(when, last_applied=applied_at, dispatched_at=(
            assignment.dispatched_at if assignment is not None else None)):
        return _record_late(session, unit, status, when, source, applied_at, assignment)
    if status == current:
        return "repeated"
    check_transition(unit.call_sign, current, status)
    _set_unit_status(session, unit, status, when)
    if assignment is None or incident is None:
        session.flush()
        return "applied"
    first_on_scene = status == "on_scene" and not session.execute(select(Assignment.id).where(
        Assignment.incident_id == incident.id, Assignment.on_scene_at.is_not(None))).first()
    apply_to_assignment(assignment, status, when)
    append_event(session=session, incident_id=incident.id, kind="crew_status", actor=source,
                 at=when, data={"unit_id": unit_id, "call_sign": unit.call_sign, "from": current,
                                "to": status, "assignment_id": assignment.id})
    _set_incident_status(session, incident, source, f"crew {unit.call_sign} {status}", when)
    if first_on_scene:
        tell_caller(session, incident, "arrived", call_sign=unit.call_sign)
    if assignment.status == "cleared":
        queue_publish(session, PendingPublish(unit.device_id, None))
    session.flush()
    return "applied"


def _delivery_status(session: Session, unit: Unit, status: str, at: datetime | None,
                     when: datetime, source: str, assignment: Assignment | None,
                     assignment_id: int | None, incident: Incident | None) -> str:
    """``delivered`` / ``acknowledged`` of the crew's current assignment (see the caller)."""
    if assignment_id is not None and (assignment is None or assignment.id != assignment_id):
        old = session.execute(select(Assignment).where(
            Assignment.id == assignment_id, Assignment.unit_id == unit.id)).scalar_one_or_none()
        if old is None:
            raise NotFound(f"unit {unit.call_sign} has no assignment {assignment_id}")
        get_incident(session=session, incident_id=old.incident_id, lock=True)
        append_event(session=session, incident_id=old.incident_id, kind="late_crew_status",
                     actor=source, at=datetime.now(UTC),
                     data={"unit_id": unit.id, "call_sign": unit.call_sign, "status": status,
                           "device_at": iso_utc(when), "crew_status_now": unit.status,
                           "assignment_id": old.id,
                           "current_assignment_id": assignment.id if assignment else None})
        session.flush()
        return "late"
    if assignment is None or incident is None:
        raise Conflict(f"unit {unit.call_sign} has no assignment to report {status} for")
    if at is not None and when < assignment.dispatched_at:
        return _record_late(session, unit, status, when, source, unit.status_changed_at,
                            assignment)
    column = "acknowledged_at" if status == "acknowledged" else "delivered_at"
    if getattr(assignment, column) is not None:
        return "repeated"
    setattr(assignment, column, when)
    if status == "acknowledged":
        assignment.delivered_at = assignment.delivered_at or when
        if assignment.status == "dispatched":
            assignment.status = "acknowledged"
    note_terminal(session, unit.id)
    session.flush()
    append_event(session=session, incident_id=incident.id, kind=f"assignment_{status}",
                 actor=source, at=when,
                 data={"unit_id": unit.id, "call_sign": unit.call_sign,
                       "assignment_id": assignment.id, "device_at": iso_utc(when)})
    session.flush()
    return "applied"


def record_sent(*, session: Session, assignment_id: int, at: datetime, actor: str) -> bool:
    """The crew terminal's message for the assignment reached the broker (PUBACK): note the
    first time and count every send, with an ``assignment_sent`` event. False (nothing stored)
    when the assignment is no longer active."""
    found = session.execute(select(Assignment.incident_id).where(
        Assignment.id == assignment_id)).scalar_one_or_none()
    if found is None:
        return False
    get_incident(session=session, incident_id=found, lock=True)
    # populate_existing: the delivery pass loaded this assignment before taking the lock; its
    # status must be the one read under the lock (a close meanwhile ends it), not that copy.
    a = session.execute(select(Assignment).where(Assignment.id == assignment_id)
                        .with_for_update().execution_options(populate_existing=True)
                        ).scalar_one()
    if a.status not in ACTIVE:
        return False
    a.sent_at = a.sent_at or at
    a.send_count = (a.send_count or 0) + 1
    session.flush()
    append_event(session=session, incident_id=a.incident_id, kind="assignment_sent", actor=actor,
                 at=at, data={"unit_id": a.unit_id, "assignment_id": a.id,
                              "attempt": a.send_count})
    session.flush()
    return True


def due_for_sending(*, session: Session, now: datetime, ack_timeout_s: float,
                    limit: int = 500) -> list[Assignment]:
    """Active assignments whose message must be sent (again): never sent, or dispatched and not
    acknowledged for another ``ack_timeout_s`` since the last send."""
    return list(session.execute(
        select(Assignment).where(
            Assignment.status.in_(ACTIVE),
            (Assignment.sent_at.is_(None)) | (
                (Assignment.status == "dispatched") & Assignment.acknowledged_at.is_(None)
                & (Assignment.dispatched_at < now - func.make_interval(
                    0, 0, 0, 0, 0, 0, ack_timeout_s * Assignment.send_count))))
        .order_by(Assignment.incident_id, Assignment.id).limit(limit)).scalars())


def _release(session: Session, incident: Incident, actor: str, now: datetime, *,
             final_status: str) -> list[int]:
    """End every active assignment of the incident; crews become available again."""
    released = []
    active = session.execute(select(Assignment.unit_id).where(
        Assignment.incident_id == incident.id, Assignment.status.in_(ACTIVE))).scalars().all()
    units = _lock_units(session, list(active))
    for a in session.execute(select(Assignment).where(
            Assignment.incident_id == incident.id, Assignment.status.in_(ACTIVE))
            .order_by(Assignment.unit_id).with_for_update()).scalars():
        a.status = final_status
        if final_status == "cancelled":
            a.cancelled_at = now
        else:
            a.cleared_at = a.cleared_at or now
        unit = units.get(a.unit_id) or _unit(session, a.unit_id)
        if unit.status in ("dispatched", "en_route", "on_scene", "transporting", "cleared"):
            _set_unit_status(session, unit, "available", now)
        queue_publish(session, PendingPublish(unit.device_id, None))
        note_terminal(session, a.unit_id)
        released.append(a.unit_id)
    return released


def cancel_incident(*, session: Session, incident_id: int, actor: str, reason: str) -> Incident:
    """Cancel a call (e.g. the caller rang back); crews on it are released."""
    if not reason.strip():
        raise InvalidInput("a cancellation needs a reason")
    incident = get_incident(session=session, incident_id=incident_id, lock=True)
    if incident.status in FINAL_INCIDENT:
        raise Conflict(f"incident {incident.reference} is already {incident.status}")
    now = datetime.now(UTC)
    released = _release(session, incident, actor, now, final_status="cancelled")
    incident.status = "cancelled"
    incident.closed_at = now
    append_event(session=session, incident_id=incident.id, kind="cancelled", actor=actor, at=now,
                 data={"reason": reason.strip(), "released_units": released,
                       "set": {"status": "cancelled"}})
    tell_caller(session, incident, "cancelled")
    session.flush()
    return incident


def merge_incident(*, session: Session, incident_id: int, into_id: int, actor: str,
                   reason: str = "", duplicate: bool = True) -> Incident:
    """Mark ``incident_id`` as a duplicate of (merged into) ``into_id``; it points to the master."""
    if incident_id == into_id:
        raise InvalidInput("an incident cannot be merged into itself")
    # Both incidents, in ascending id order (the lock order).
    first, second = sorted((incident_id, into_id))
    locked = {i: get_incident(session=session, incident_id=i, lock=True) for i in (first, second)}
    incident, master = locked[incident_id], locked[into_id]
    if incident.status in FINAL_INCIDENT:
        raise Conflict(f"incident {incident.reference} is already {incident.status}")
    if master.status in FINAL_INCIDENT:
        raise Conflict(f"master incident {master.reference} is {master.status}")
    now = datetime.now(UTC)
    released = _release(session, incident, actor, now, final_status="cancelled")
    kind = "duplicate_of" if duplicate else "merged"
    incident.status = "merged"
    incident.merged_into_id = master.id
    incident.closed_at = now
    append_event(session=session, incident_id=incident.id, kind=kind, actor=actor, at=now,
                 data={"master_id": master.id, "master_reference": master.reference,
                       "reason": reason, "released_units": released,
                       "set": {"status": "merged", "merged_into_id": master.id}})
    append_event(session=session, incident_id=master.id, kind="absorbed", actor=actor, at=now,
                 data={"duplicate_id": incident.id, "duplicate_reference": incident.reference,
                       "reason": reason})
    tell_caller(session, incident, "merged", master_reference=master.reference)
    session.flush()
    return incident


def close_incident(*, session: Session, incident_id: int, actor: str, disposition: str,
                   note: str = "", settings: Settings | None = None) -> Incident:
    """Close with a disposition: an APCO common code or a local code mapped onto one (the
    incident keeps the APCO code); crews still on it are cleared."""
    chosen = load_dispositions(settings).resolve(disposition)
    code = chosen.apco
    incident = get_incident(session=session, incident_id=incident_id, lock=True)
    if incident.status in FINAL_INCIDENT:
        raise Conflict(f"incident {incident.reference} is already {incident.status}")
    now = datetime.now(UTC)
    released = _release(session, incident, actor, now, final_status="cleared")
    incident.status = "closed"
    incident.disposition = code
    incident.closed_at = now
    append_event(session=session, incident_id=incident.id, kind="closed", actor=actor, at=now,
                 data={"disposition": code, "disposition_name": chosen.name,
                       "local_disposition": chosen.local, "note": note,
                       "released_units": released,
                       "set": {"status": "closed", "disposition": code}})
    tell_caller(session, incident, "closed")
    session.flush()
    return incident


def reopen_incident(*, session: Session, incident_id: int, actor: str, reason: str) -> Incident:
    """Reopen a closed or cancelled incident (it goes back to the queue)."""
    if not reason.strip():
        raise InvalidInput("reopening needs a reason")
    incident = get_incident(session=session, incident_id=incident_id, lock=True)
    if incident.status not in ("closed", "cancelled"):
        raise Conflict(f"incident {incident.reference} is {incident.status}, not closed")
    now = datetime.now(UTC)
    previous = incident.status
    incident.status = "queued"
    incident.disposition = None
    incident.closed_at = None
    append_event(session=session, incident_id=incident.id, kind="reopened", actor=actor, at=now,
                 data={"reason": reason.strip(), "previous_status": previous,
                       "set": {"status": "queued", "disposition": None}})
    session.flush()
    return incident
