"""Open incidents that may be the same event: the one duplicate check behind both the call-taker's
list (``GET /api/calls/{id}/nearby``: attach the call as an additional caller) and the
dispatcher's merge candidates (``GET /api/incidents/{id}/nearby``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, literal, or_, select
from sqlalchemy.orm import Session

from geodispatch.errors import InvalidInput
from geodispatch.incidents.models import Incident

#: Incidents still open to a second report or a merge.
OPEN_STATUSES = ("registered", "queued", "assigned", "en_route", "on_scene", "cleared")


@dataclass(frozen=True)
class NearbyIncident:
    id: int
    reference: str
    category: str
    status: str
    priority: int
    received_at: datetime
    caller_phone: str | None
    address: str | None
    lat: float | None
    lng: float | None
    distance_m: float | None
    same_number: bool
    same_category: bool

    def as_dict(self) -> dict[str, Any]:
        """For the API: the caller's number is left out (``same_number`` says what matters;
        who may see a number is the incident view's business)."""
        out = dict(self.__dict__)
        out.pop("caller_phone")
        out["received_at"] = self.received_at.isoformat()
        return out


def nearby_open_incidents(*, session: Session, lat: float | None, lng: float | None,
                          phone: str | None, radius_m: float, category: str | None = None,
                          region: str | None = None, since: datetime | None = None,
                          exclude_id: int | None = None,
                          statuses: Sequence[str] = OPEN_STATUSES,
                          limit: int = 20) -> list[NearbyIncident]:
    """Open incidents (``statuses``) that came from the same number ``phone`` wherever they
    are, or lie within ``radius_m`` metres of ``lat``/``lng`` (and, when ``category`` is given,
    are of that category). Same number first, then nearest, then newest.

    Parameters
    ----------
    region
        Only this region's incidents (None: every region).
    since
        Only incidents received at or after this time (None: any time).
    exclude_id
        Leave this incident out (the one whose merge candidates are listed).
    """
    if (lat is None) != (lng is None):
        raise InvalidInput("give both lat and lng, or neither")
    if lat is not None and lng is not None and not (-90 <= lat <= 90 and -180 <= lng <= 180):
        raise InvalidInput("lat must be in -90..90 and lng in -180..180")
    conds = []
    dist: Any = None
    if lat is not None and lng is not None:
        here = func.Geography(func.ST_SetSRID(func.ST_MakePoint(lng, lat), 4326))
        dist = func.ST_Distance(func.Geography(Incident.location), here)
        near = func.ST_DWithin(func.Geography(Incident.location), here, radius_m)
        conds.append(and_(near, Incident.category == category) if category else near)
    if phone:
        conds.append(Incident.caller_phone == phone)
    if not conds:
        return []
    stmt = select(Incident, Incident.location.ST_Y(), Incident.location.ST_X(),
                  dist if dist is not None else literal(None)).where(
        Incident.status.in_(list(statuses)), or_(*conds))
    if since is not None:
        stmt = stmt.where(Incident.received_at >= since)
    if region is not None:
        stmt = stmt.where(Incident.region == region)
    if exclude_id is not None:
        stmt = stmt.where(Incident.id != exclude_id)
    rows = session.execute(stmt.limit(200)).all()
    out = [NearbyIncident(
        id=i.id, reference=i.reference, category=i.category, status=i.status,
        priority=i.priority, received_at=i.received_at, caller_phone=i.caller_phone,
        address=i.address or i.address_resolved, lat=None if y is None else float(y),
        lng=None if x is None else float(x), distance_m=None if d is None else round(float(d), 1),
        same_number=phone is not None and i.caller_phone == phone,
        same_category=category is not None and i.category == category)
        for i, y, x, d in rows]
    out.sort(key=lambda n: (not n.same_number, n.distance_m if n.distance_m is not None
                            else float("inf"), -n.received_at.timestamp()))
    return out[:limit]
