"""The dispatch state machine, with no database and no side effects: crew statuses and the
transitions between them, assignment and incident statuses, and how a crew's status moves its
assignment and its incident. :mod:`geodispatch.dispatch.workflow` applies it in transactions;
:mod:`geodispatch.dispatch.effects` holds what follows a change (terminal messages, caller SMS).

Incident status is derived from its assignments: any crew on scene -> ``on_scene``; else any
en route -> ``en_route``; else any dispatched (or acknowledged) -> ``assigned``; else all
cleared -> ``cleared``; no crew -> ``queued``.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from geodispatch.errors import Conflict

CREW_STATUSES = ("off_duty", "available", "dispatched", "en_route", "on_scene", "transporting",
                 "cleared", "out_of_service", "break")
#: Allowed crew status transitions (a repeated status is always accepted as a no-op).
TRANSITIONS: dict[str, frozenset[str]] = {
    "off_duty": frozenset({"available", "out_of_service", "break"}),
    "available": frozenset({"dispatched", "en_route", "on_scene", "out_of_service", "break",
                            "off_duty"}),
    "dispatched": frozenset({"en_route", "on_scene", "cleared", "available", "out_of_service"}),
    "en_route": frozenset({"on_scene", "dispatched", "cleared", "available", "out_of_service"}),
    "on_scene": frozenset({"transporting", "cleared", "out_of_service"}),
    "transporting": frozenset({"on_scene", "cleared", "out_of_service"}),
    "cleared": frozenset({"available", "dispatched", "off_duty", "out_of_service", "break"}),
    "out_of_service": frozenset({"available", "off_duty", "break"}),
    "break": frozenset({"available", "off_duty", "out_of_service"}),
}
ACTIVE = ("dispatched", "acknowledged", "en_route", "on_scene")
OPEN_INCIDENT = ("registered", "queued", "assigned", "en_route", "on_scene", "cleared")
FINAL_INCIDENT = ("closed", "cancelled", "merged")
ASSIGNABLE_CREW = ("available", "cleared")

#: Statuses a crew reports about its assignment rather than about itself (the unit's status
#: does not change): the terminal received it, the crew pressed "acknowledge".
DELIVERY_STATUSES = ("delivered", "acknowledged")


class AssignmentTimes(Protocol):
    """The columns of an assignment a crew status sets (:class:`~geodispatch.dispatch.models.
    Assignment`)."""

    status: str
    en_route_at: datetime | None
    on_scene_at: datetime | None
    cleared_at: datetime | None


def check_transition(call_sign: str, current: str, status: str) -> None:
    """Conflict unless a crew may go from ``current`` to ``status`` (see :data:`TRANSITIONS`)."""
    if status not in TRANSITIONS.get(current, frozenset()):
        raise Conflict(f"unit {call_sign}: {current} -> {status} is not allowed")


def incident_status(assignment_statuses: Collection[str]) -> str:
    """The status an open incident has with assignments in these statuses."""
    for assignment_status, status in (("on_scene", "on_scene"), ("en_route", "en_route"),
                                      ("dispatched", "assigned"), ("acknowledged", "assigned")):
        if assignment_status in assignment_statuses:
            return status
    if "cleared" in assignment_statuses:
        return "cleared"
    return "queued"


def is_late(when: datetime, *, last_applied: datetime | None,
            dispatched_at: datetime | None) -> bool:
    """A status stamped before the crew's last applied one, or before its current assignment's
    dispatch, is late: recorded, never applied."""
    return (last_applied is not None and when < last_applied) or (
        dispatched_at is not None and when < dispatched_at)


def apply_to_assignment(a: AssignmentTimes, status: str, at: datetime) -> None:
    """Move the crew's assignment with its status (the first en route / on scene time stays)."""
    if status == "en_route" and a.en_route_at is None:
        a.en_route_at = at
        a.status = "en_route"
    elif status == "on_scene":
        a.on_scene_at = a.on_scene_at or at
        a.status = "on_scene"
    elif status in ("cleared", "available", "out_of_service", "off_duty", "break"):
        a.cleared_at = a.cleared_at or at
        a.status = "cleared"
    elif status == "dispatched":
        a.status = "dispatched"
