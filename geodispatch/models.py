"""Import every domain's models so ``Base.metadata`` is complete (Alembic, tests)."""

from geodispatch.analytics.models import ResponseInterval
from geodispatch.calls.models import Call, CallCallback, CallLocation, CallLocationReject
from geodispatch.crew.models import CrewShift, UnitRoster
from geodispatch.db import Base
from geodispatch.dispatch.models import Assignment, CrewReportKey
from geodispatch.federation.models import (
    FederationCentre,
    FederationEvent,
    FederationHead,
    FederationNotification,
    FederationRefusal,
)
from geodispatch.geocoding.models import GeocodeFeature, GeocodeName, GeocodeStreet
from geodispatch.incidents.models import Incident, IncidentEvent, ReferenceCounter
from geodispatch.ledger.models import LogLeaf, LogPending, TreeHeadRecord
from geodispatch.notify.models import SmsMessage, SmsOptOut
from geodispatch.routing.models import RoadEdge
from geodispatch.tracking.models import IngestDrop, Position, Unit, UnitLatest
from geodispatch.users.models import User
from geodispatch.zones.models import Zone, ZoneCell, ZoneMembershipChange

__all__ = [
    "Assignment",
    "CrewReportKey",
    "CrewShift",
    "Base",
    "Call",
    "CallCallback",
    "CallLocation",
    "CallLocationReject",
    "FederationCentre",
    "FederationEvent",
    "FederationHead",
    "FederationNotification",
    "FederationRefusal",
    "GeocodeFeature",
    "GeocodeName",
    "GeocodeStreet",
    "Incident",
    "IncidentEvent",
    "IngestDrop",
    "LogLeaf",
    "LogPending",
    "Position",
    "ReferenceCounter",
    "ResponseInterval",
    "RoadEdge",
    "SmsMessage",
    "SmsOptOut",
    "TreeHeadRecord",
    "Unit",
    "UnitLatest",
    "UnitRoster",
    "User",
    "Zone",
    "ZoneCell",
    "ZoneMembershipChange",
]
