"""NENA EIDO JSON for incidents, so regional centres can feed a national centre.

The Emergency Incident Data Object (NENA-STA-021) is the JSON object CAD systems exchange about
one incident. We fill the parts another centre needs: the ``incidentComponent`` (tracking id,
type, status, priority, disposition), a ``locationComponent`` (PIDF-LO point and address), the
owning ``agencyComponent``, ``emergencyResourceComponent`` per assigned crew, and the
description as a ``notesComponent``. The incident's full event record (each event with its canonical
body, the leaf of the signed log) travels unchanged in a
vendor extension member, ``geodispatchExtension`` (EIDO consumers ignore members they do not
know), so the receiving side can verify every event.

Status mapping (DOMAIN.md; EIDO incident status registry values):

=============  =====================
ours           EIDO
=============  =====================
registered     Active
queued         Active
assigned       ResourcesAssigned
en_route       ResourcesEnroute
on_scene       ResourcesOnscene
cleared        Active (crews gone, incident not yet closed)
closed         Closed
cancelled      Cancelled
merged         Closed (+ ``mergeComponent`` naming the surviving incident)
=============  =====================

``ReOpened`` is added while an incident that was reopened is open again. Crew statuses reduce to
the EIDO primary unit status ``Available`` / ``ConditionallyAvailable`` / ``NotAvailable``. Our own
status is always kept in the ``...InternalText`` members, so nothing is lost in the mapping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

EXTENSION = "geodispatchExtension"
EXTENSION_VERSION = 1
EIDO_VERSION = "1.0"

INCIDENT_STATUS_TO_EIDO: dict[str, str] = {
    "registered": "Active",
    "queued": "Active",
    "assigned": "ResourcesAssigned",
    "en_route": "ResourcesEnroute",
    "on_scene": "ResourcesOnscene",
    "cleared": "Active",
    "closed": "Closed",
    "cancelled": "Cancelled",
    "merged": "Closed",
}
OPEN_STATUSES = frozenset({"registered", "queued", "assigned", "en_route", "on_scene", "cleared"})

#: Assignment status -> (EIDO primary unit status, secondary/internal status).
ASSIGNMENT_TO_UNIT_STATUS: dict[str, str] = {
    "dispatched": "NotAvailable",
    "acknowledged": "NotAvailable",
    "en_route": "NotAvailable",
    "on_scene": "NotAvailable",
    "cleared": "Available",
    "cancelled": "Available",
}

EVENT_FIELDS = ("id", "incident_id", "incident_seq", "kind", "actor", "at", "data", "body")


def tracking_id(reference: str, system: str) -> str:
    """Globally unique incident id, NENA URN form ``urn:emergency:uid:incidentid:ID:DOMAIN``."""
    return f"urn:emergency:uid:incidentid:{reference}:{system}"


def eido_status(status: str, *, reopened: bool = False) -> list[str]:
    """EIDO incident status values for one of our incident statuses."""
    out = [INCIDENT_STATUS_TO_EIDO.get(status, "Active")]
    if reopened and status in OPEN_STATUSES:
        out.append("ReOpened")
    return out


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def pidf_point(lat: float | None, lng: float | None, address: str | None) -> str:
    """A minimal PIDF-LO document with a GML point (``lat lon`` order, as GML 4326 wants).

    An incident whose place is not known yet has no point: only the address as typed.
    """
    civic = (
        f"<ca:civicAddress><ca:NAM>{escape(address)}</ca:NAM></ca:civicAddress>" if address else ""
    )
    point = "" if lat is None or lng is None else (
        '<gml:Point srsName="urn:ogc:def:crs:EPSG::4326">'
        f"<gml:pos>{lat!r} {lng!r}</gml:pos></gml:Point>")
    return (
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" '
        'xmlns:gml="http://www.opengis.net/gml" '
        'xmlns:ca="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr">'
        "<gp:geopriv><gp:location-info>"
        f"{point}{civic}</gp:location-info></gp:geopriv></presence>"
    )


def build_eido(
    *,
    incident: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    resources: Sequence[Mapping[str, Any]] = (),
    system: str,
    merged_into: str | None = None,
) -> dict[str, Any]:
    """One incident, its crews and its complete event log as an EIDO JSON object.

    Parameters
    ----------
    incident : mapping
        Incident fields: ``reference, region, status, category, priority, received_at,
        registered_at, closed_at, lat, lng, h3, address, description, disposition, sector_code,
        district_code, caller_lang, source``.
    events : sequence of mapping
        The incident's events in log order, each with :data:`EVENT_FIELDS`; ``at`` ISO-8601.
    resources : sequence of mapping
        Assigned crews: ``call_sign, kind, status, is_lead, dispatched_at``.
    system : str
        Identifier of the sending system (the regional centre), part of the tracking id.
    merged_into : str, optional
        Reference of the incident this one was merged into.

    Returns
    -------
    dict
        JSON-serialisable EIDO; ``geodispatchExtension.eventLog`` holds the events verbatim.
    """
    ref = str(incident["reference"])
    last_event = events[-1] if events else None
    updated = str(last_event["at"]) if last_event else _iso(incident.get("registered_at"))
    msg_id = f"urn:geodispatch:eido:{system}:{ref}:{last_event['id'] if last_event else 0}"
    inc_id = f"inc-{ref}"
    loc_id = f"loc-{ref}"
    agency_id = f"agency-{system}"
    note_id = f"note-{ref}"
    reopened = any(e["kind"] == "reopened" for e in events)
    status = str(incident["status"])
    incident_component: dict[str, Any] = {
        "$id": inc_id,
        "componentIdentifier": inc_id,
        "lastUpdateTimeStamp": updated,
        "updatedByAgencyReference": {"$ref": agency_id},
        "incidentTrackingIdentifier": tracking_id(ref, system),
        "internalIncidentId": ref,
        "incidentTypeCommonRegistryText": "Law Enforcement",
        "incidentTypeInternalCode": incident["category"],
        "incidentTypeInternalText": incident["category"],
        "incidentStatusCommonRegistryText": eido_status(status, reopened=reopened),
        "incidentStatusInternalText": [status],
        "incidentCommonPriorityNumber": int(incident["priority"]),
        "incidentPriorityInternalText": str(incident["priority"]),
        "beatOrDispatchGroupText": incident.get("sector_code") or incident.get("district_code"),
        "locationReference": [{"$ref": loc_id}],
        "notesReference": [{"$ref": note_id}],
    }
    if incident.get("disposition"):
        incident_component["dispositionComponent"] = [
            {
                "dispositionCommonRegistryCode": incident["disposition"],
                "dispositionPrimaryIndicator": True,
            }
        ]
    doc: dict[str, Any] = {
        "$id": msg_id,
        "eidoMessageIdentifier": msg_id,
        "eidoVersion": EIDO_VERSION,
        "lastUpdateTimeStamp": updated,
        "sendingSystemIdentifier": system,
        "incidentComponent": incident_component,
        "locationComponent": [
            {
                "$id": loc_id,
                "locationTypeDescriptionRegistryText": "IncidentLocation",
                "locationByValue": pidf_point(
                    None if incident["lat"] is None else float(incident["lat"]),
                    None if incident["lng"] is None else float(incident["lng"]),
                    incident.get("address"),
                ),
                "locationDescriptionText": incident.get("address"),
            }
        ],
        "agencyComponent": [
            {
                "$id": agency_id,
                "agencyRoleDescriptionRegistryText": ["IncidentOwner"],
                "agencyType": ["urn:emergency:service:responder.police"],
                "incidentOwningAgencyIndicator": True,
                "agencyName": f"{system} ({incident['region']})",
            }
        ],
        "emergencyResourceComponent": [
            {
                "$id": f"res-{ref}-{i}",
                "emergencyResourceName": r["call_sign"],
                "emergencyResourceTypeCommonRegistryText": "Law Enforcement Unit",
                "emergencyResourceTypeInternalText": r.get("kind"),
                "primaryUnitStatusRegistryText": ASSIGNMENT_TO_UNIT_STATUS.get(
                    str(r["status"]), "NotAvailable"
                ),
                "unitStatusInternal": [r["status"]],
                "leadIndicator": bool(r.get("is_lead")),
            }
            for i, r in enumerate(resources, start=1)
        ],
        "notesComponent": [
            {
                "$id": note_id,
                "noteDateTimeStamp": _iso(incident.get("received_at")),
                "noteText": incident.get("description") or "",
            }
        ],
        EXTENSION: {
            "version": EXTENSION_VERSION,
            "region": incident["region"],
            "h3": incident.get("h3"),
            "receivedAt": _iso(incident.get("received_at")),
            "closedAt": _iso(incident.get("closed_at")),
            "sector": incident.get("sector_code"),
            "district": incident.get("district_code"),
            "callerLanguage": incident.get("caller_lang"),
            "source": incident.get("source"),
            "eventLog": [{k: e[k] for k in EVENT_FIELDS} for e in events],
        },
    }
    if merged_into:
        doc["mergeComponent"] = [
            {
                "incidentTrackingIdentifier": tracking_id(merged_into, system),
                "incidentMergeDirectionCode": "MERGED_INTO",
            }
        ]
    return doc


class EidoFormatError(ValueError):
    """The object is not an EIDO this system can import."""


def parse_eido(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Pull what the national side stores out of an EIDO built by :func:`build_eido`.

    Raises
    ------
    EidoFormatError
        When a required member is missing or malformed.
    """
    try:
        inc = doc["incidentComponent"]
        if isinstance(inc, list):  # some producers send a one-element list
            inc = inc[0]
        ext = doc[EXTENSION]
        events = list(ext["eventLog"])
        loc = doc["locationComponent"][0]["locationByValue"]
        lat: float | None = None
        lng: float | None = None
        if "<gml:pos>" in loc:  # no point: the place is not known yet
            pos = loc.split("<gml:pos>", 1)[1].split("</gml:pos>", 1)[0].split()
            lat, lng = float(pos[0]), float(pos[1])
        status_internal = inc.get("incidentStatusInternalText") or []
        disposition = None
        if inc.get("dispositionComponent"):
            disposition = inc["dispositionComponent"][0].get("dispositionCommonRegistryCode")
        notes = doc.get("notesComponent") or [{}]
        return {
            "tracking_id": str(inc["incidentTrackingIdentifier"]),
            "reference": str(inc["internalIncidentId"]),
            "system": str(doc.get("sendingSystemIdentifier") or ""),
            "category": str(
                inc.get("incidentTypeInternalCode") or inc["incidentTypeCommonRegistryText"]
            ),
            "priority": int(inc.get("incidentCommonPriorityNumber") or 3),
            "status": str(status_internal[0]) if status_internal else None,
            "eido_status": list(inc.get("incidentStatusCommonRegistryText") or []),
            "disposition": disposition,
            "lat": lat,
            "lng": lng,
            "address": doc["locationComponent"][0].get("locationDescriptionText"),
            "description": notes[0].get("noteText") or "",
            "region": str(ext["region"]),
            "h3": ext.get("h3"),
            "received_at": ext.get("receivedAt"),
            "closed_at": ext.get("closedAt"),
            "caller_lang": ext.get("callerLanguage") or "uk",
            "events": events,
        }
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise EidoFormatError(f"not an importable EIDO: {exc!r}") from None
