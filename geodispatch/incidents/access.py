"""Who may see an incident and what of it, and its API form: shared by the views of intake,
dispatch and notifications (a view imports this, never another domain's views).

Region-scoped: a user sees only incidents of their region (national: every region). The
caller's phone is shown only to call-takers, dispatchers and supervisors of the region.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.errors import NotFound
from geodispatch.incidents import service
from geodispatch.incidents.models import Incident
from geodispatch.users.credentials import CALL_TAKER, DISPATCHER, SUPERVISOR

PHONE_ROLES = frozenset({CALL_TAKER, DISPATCHER, SUPERVISOR})


class Viewer(Protocol):
    """The caller as :class:`geodispatch.api.security.Principal` gives it."""

    @property
    def role(self) -> str: ...

    def can_see_region(self, region: str) -> bool: ...


def sees_phone(principal: Viewer, incident: Incident) -> bool:
    return principal.role in PHONE_ROLES and principal.can_see_region(incident.region)


def visible_incident(session: Session, principal: Viewer, incident_id: int, *,
                     lock: bool = False) -> Incident:
    """The incident, or NotFound when it is outside the caller's region."""
    incident = service.get_incident(session=session, incident_id=incident_id, lock=lock)
    if not principal.can_see_region(incident.region):
        raise NotFound(f"incident {incident_id} not found")
    return incident


def incident_json(session: Session, incident: Incident, principal: Viewer, *,
                  point: tuple[float, float] | None = None, assignments: bool = False,
                  notes: bool = False) -> dict[str, Any]:
    """The API form of an incident (phone only for the regional operations roles)."""
    if point is None:
        where = service.incident_point(session, incident)
        point = None if where is None else (where.lat, where.lng)
    lat, lng = point if point is not None else (None, None)
    out: dict[str, Any] = {
        "id": incident.id, "reference": incident.reference, "region": incident.region,
        "status": incident.status, "category": incident.category,
        "original_category": incident.original_category, "priority": incident.priority,
        "lat": lat, "lng": lng, "location_unknown": point is None,
        "location": None if point is None else {"type": "Point", "coordinates": [lng, lat]},
        "h3": None if incident.h3 is None else format(int(incident.h3), "x"),
        "address": incident.address, "address_resolved": incident.address_resolved,
        "location_precision": incident.location_precision,
        "location_method": incident.location_method,
        "description": incident.description, "received_at": incident.received_at.isoformat(),
        "registered_at": incident.registered_at.isoformat() if incident.registered_at else None,
        "sector_id": incident.sector_id, "district_id": incident.district_id,
        "merged_into_id": incident.merged_into_id, "disposition": incident.disposition,
        "closed_at": incident.closed_at.isoformat() if incident.closed_at else None,
        "caller_lang": incident.caller_lang, "source": incident.source,
        "sms_opt_out": incident.sms_opt_out,
    }
    if sees_phone(principal, incident):
        out["caller_phone"] = incident.caller_phone
    if assignments:
        rows = session.execute(text(
            "SELECT a.id, a.unit_id, u.call_sign, a.status, a.is_lead, a.was_recommended,"
            " a.override_reason, a.eta_s, a.distance_m, a.dispatched_at, a.en_route_at,"
            " a.on_scene_at, a.cleared_at, a.cancelled_at, a.sent_at, a.send_count,"
            " a.delivered_at, a.acknowledged_at FROM assignments a"
            " JOIN units u ON u.id = a.unit_id WHERE a.incident_id = :i ORDER BY a.id"),
            {"i": incident.id}).mappings()
        out["assignments"] = [
            {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
            for r in rows]
    if notes:
        out["notes"] = service.incident_notes(session=session, incident_id=incident.id)
    return out
