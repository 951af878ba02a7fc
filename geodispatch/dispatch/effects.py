"""What follows a dispatch change, queued in the unit of work and carried out by the edge after
the commit or by a worker: the crew terminal's assignment message (published after commit, see
:mod:`geodispatch.dispatch.publish`), the unit statuses to mirror into the live fleet, the units
whose crew-app screens changed (pushed to their open streams), and the caller's SMS (queued in
the same transaction, sent by the SMS worker).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.dispatch.models import Assignment
from geodispatch.incidents.classification import load_classification
from geodispatch.incidents.models import Incident
from geodispatch.notify.outbox import enqueue_sms
from geodispatch.settings import get_settings


@dataclass
class PendingPublish:
    """An assignment message for a crew terminal, sent after the transaction commits."""

    device_id: str
    payload: dict[str, Any] | None
    assignment_id: int | None = None


def queue_publish(session: Session, message: PendingPublish) -> None:
    """Publish ``message`` to the crew's terminal once this unit of work commits."""
    _pending(session).append(message)


def _pending(session: Session) -> list[PendingPublish]:
    out: list[PendingPublish] = session.info.setdefault("dispatch_publish", [])
    return out


def take_pending_publishes(session: Session) -> list[PendingPublish]:
    """Messages queued by this unit of work (the edge publishes them after commit)."""
    out: list[PendingPublish] = session.info.pop("dispatch_publish", [])
    return out


def take_unit_statuses(session: Session) -> dict[int, str]:
    """Unit statuses changed by this unit of work (the edge mirrors them into the live fleet)."""
    out: dict[int, str] = session.info.pop("dispatch_units", {})
    return out


def note_unit_status(session: Session, unit_id: int, status: str) -> None:
    """Mirror the crew's new status into the live fleet once this unit of work commits."""
    session.info.setdefault("dispatch_units", {})[unit_id] = status
    note_terminal(session, unit_id)


def note_terminal(session: Session, *unit_ids: int) -> None:
    """These units' crew-app screens change with this unit of work (their assignment, its
    delivery state, the crews beside them, their status): their open streams are told after
    the commit."""
    session.info.setdefault("dispatch_terminals", set()).update(unit_ids)


def take_terminal_units(session: Session) -> set[int]:
    """Units whose crew-app screens this unit of work changed (see :func:`note_terminal`)."""
    out: set[int] = session.info.pop("dispatch_terminals", set())
    return out


def assignment_message(*, session: Session, assignment: Assignment,
                       incident: Incident | None = None) -> dict[str, Any]:
    """The retained message a crew terminal gets for ``assignment`` (also what is sent again)."""
    incident = incident or session.get(Incident, assignment.incident_id)
    assert incident is not None
    point = session.execute(text("SELECT ST_Y(location), ST_X(location) FROM incidents "
                                 "WHERE id = :i"), {"i": incident.id}).one()
    return {"id": assignment.id, "assignment_id": assignment.id, "incident_id": incident.id,
            "reference": incident.reference, "category": incident.category,
            "priority": incident.priority,
            "lat": None if point[0] is None else float(point[0]),
            "lng": None if point[1] is None else float(point[1]),
            "address": incident.address, "lead": assignment.is_lead,
            "at": assignment.dispatched_at.isoformat()}


def tell_caller(session: Session, incident: Incident, stage: str, **fields: object) -> None:
    """Queue the caller's SMS for ``stage`` (``assigned``, ``arrived``, ``closed``,
    ``cancelled``, ``merged``) when the incident has a caller's number (the outbox skips numbers
    that opted out, stages the category does not notify and stages already told)."""
    if incident.caller_phone and load_classification(get_settings()).notifies(
            incident.category, stage):
        text_fields: dict[str, Any] = dict(fields)
        enqueue_sms(session=session, incident=incident, template=stage, **text_fields)
