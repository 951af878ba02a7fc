"""NENA EIDO JSON (NENA-STA-021) for incidents, as the official schema defines it.

:func:`build_eido` writes one incident in the standard components: the ``incidentComponent``
(tracking id, type, status, priority, ``dispositionComponent`` with the APCO common code), a
``callComponent`` for the call that opened it, a ``locationComponent`` (PIDF-LO point and the
address as typed), the owning ``agencyComponent``, an ``agentComponent`` per person or crew that
acted, an ``emergencyResourceComponent`` per assigned crew (primary status ``Available`` /
``ConditionallyAvailable`` / ``NotAvailable``), ``notesComponent`` (the description and every
reason given), and ``mergeComponent`` when it was merged into another incident. Every component
carries the prologue (``$id``, ``lastUpdateTimeStamp``, ``updatedByAgencyReference``). No member
is ever ``null``: what is unknown is left out. The one project extra is the signed-log proof
(``geodispatchLog``, named in ``eidoExtensionId``), which the standard has no field for.

:func:`parse_eido` reads any schema-valid EIDO, not only ours, and lists what it could not map.

Status mapping (ours -> EIDO incident status registry):

=============  =====================
registered     Active
queued         Active
assigned       Dispatched
en_route       Enroute
on_scene       OnScene
cleared        Active
closed         Closed
cancelled      Cancelled
merged         Closed (+ ``mergeComponent`` REPLACED by the surviving incident)
=============  =====================

Our own status is always kept in ``incidentStatusInternalText`` so nothing is lost.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from html import escape, unescape
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

EIDO_VERSION = "1.0"
LOG_EXTENSION = "geodispatchLog"
LOG_EXTENSION_ID = "urn:geodispatch:eido:extension:signed-log:1"

INCIDENT_STATUS_TO_EIDO: dict[str, str] = {
    "registered": "Active",
    "queued": "Active",
    "assigned": "Dispatched",
    "en_route": "Enroute",
    "on_scene": "OnScene",
    "cleared": "Active",
    "closed": "Closed",
    "cancelled": "Cancelled",
    "merged": "Closed",
}
EIDO_TO_INCIDENT_STATUS: dict[str, str] = {
    "active": "registered", "dispatched": "assigned", "enroute": "en_route",
    "onscene": "on_scene", "closed": "closed", "cancelled": "cancelled",
    "canceled": "cancelled",
}
OPEN_STATUSES = frozenset({"registered", "queued", "assigned", "en_route", "on_scene", "cleared"})

#: Assignment status -> (primary unit status, secondary unit status registry value).
ASSIGNMENT_TO_UNIT_STATUS: dict[str, tuple[str, str]] = {
    "dispatched": ("NotAvailable", "Dispatched"),
    "acknowledged": ("NotAvailable", "Acknowledged"),
    "en_route": ("NotAvailable", "Enroute"),
    "on_scene": ("NotAvailable", "OnScene"),
    "cleared": ("Available", "Cleared"),
    "cancelled": ("Available", "Cancelled"),
}

#: Components of the standard this system maps on import; any other is reported.
_MAPPED_COMPONENTS = frozenset({
    "$id", "lastUpdateTimeStamp", "updatedByAgencyReference", "updatedByAgentReference",
    "eidoVersion", "eidoExtensionId", "issuingElementIdentification", "incidentComponent",
    "locationComponent", "agencyComponent", "notesComponent", "callComponent",
    "emergencyResourceComponent", "agentComponent", "mergeComponent", "linkComponent",
    LOG_EXTENSION,
})
_MAPPED_INCIDENT = frozenset({
    "$id", "lastUpdateTimeStamp", "updatedByAgencyReference", "updatedByAgentReference",
    "incidentTrackingIdentifier", "internalIncidentId", "incidentTypeCommonRegistryText",
    "incidentTypeInternalCode", "incidentTypeInternalText", "incidentStatusCommonRegistryText",
    "incidentStatusInternalText", "incidentCommonPriorityNumber", "incidentPriorityInternalText",
    "locationReference", "notesReference", "dispositionComponent", "beatOrDispatchGroupText",
    "agentReference",
})


def element_id(centre: str) -> str:
    """The functional element id of a centre (``issuingElementIdentification``)."""
    return f"urn:emergency:uid:elementid:{centre.lower()}.geodispatch"


def agency_id(centre: str) -> str:
    return f"urn:emergency:uid:agencyid:{centre.lower()}.police.geodispatch"


def tracking_id(reference: str, centre: str) -> str:
    """Globally unique incident id, NENA URN form ``urn:emergency:uid:incidentid:ID:DOMAIN``."""
    return f"urn:emergency:uid:incidentid:{reference}:{centre.lower()}.geodispatch"


@lru_cache(maxsize=4)
def apco_codes(standards_dir: Path) -> dict[str, str]:
    """APCO ANS 1.111.2 common disposition codes -> names, from the standards folder."""
    path = standards_dir / "apco_disposition_codes.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        return {row["code"].strip(): row["name"].strip() for row in csv.DictReader(fh)}


def pidf_point(lat: float | None, lng: float | None, address: str | None) -> str:
    """A minimal PIDF-LO document with a GML point (``lat lon`` order, as GML 4326 wants).

    An incident whose place is not known yet has no point: only the address as typed.
    """
    civic = (f"<ca:civicAddress><ca:NAM>{xml_escape(address)}</ca:NAM></ca:civicAddress>"
             if address else "")
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


def _put(d: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` unless the value is unknown (the schema has no nulls)."""
    if value is not None and value != "":
        d[key] = value


def _cid(kind: str, ref: str, *parts: object) -> str:
    tail = ":".join(str(p) for p in parts)
    return f"urn:geodispatch:{kind}:{ref}" + (f":{tail}" if tail else "")


def _agent_id(ref: str, actor: str) -> str:
    return _cid("agent", ref, hashlib.sha256(actor.encode()).hexdigest()[:12])


def _agent_role(actor: str) -> str:
    if actor.startswith("unit:"):
        return "Responder"
    if actor in ("system", "migration", "eido-import"):
        return "Automaton"
    return "Telecommunicator"


def build_eido(
    *,
    incident: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    resources: Sequence[Mapping[str, Any]] = (),
    centre: str,
    standards_dir: Path,
    merged_into: str | None = None,
) -> dict[str, Any]:
    """One incident, its calls, crews and notes as a schema-valid EIDO JSON object.

    Parameters
    ----------
    incident : mapping
        ``reference, region, status, category, priority, received_at, registered_at,
        closed_at, lat, lng, address, description, disposition, sector_code, district_code,
        created_by, source``; times ISO-8601 strings.
    events : sequence of mapping
        The incident's events in order, each with ``kind, actor, at, data``.
    resources : sequence of mapping
        Assigned crews: ``call_sign, kind, status, is_lead, capabilities, updated_at``.
    centre : str
        The sending centre's code (agency and element identifiers).
    standards_dir : Path
        Where the APCO disposition code list is read from (names of the codes).
    merged_into : str, optional
        Reference of the incident this one was merged into.
    """
    ref = str(incident["reference"])
    updated = str(events[-1]["at"]) if events else str(incident["registered_at"])
    agency = agency_id(centre)
    by = {"$ref": agency}

    def prologue(cid: str, at: str | None = None) -> dict[str, Any]:
        return {"$id": cid, "lastUpdateTimeStamp": at or updated, "updatedByAgencyReference": by}

    agents: dict[str, dict[str, Any]] = {}

    def agent(actor: str, at: str) -> dict[str, str]:
        aid = _agent_id(ref, actor)
        a = agents.get(aid)
        if a is None:
            a = agents[aid] = {**prologue(aid, at), "agentRoleRegistryText": [_agent_role(actor)],
                               "agencyReference": by,
                               "agentWorkstationPositionIdentification": actor}
        a["lastUpdateTimeStamp"] = max(a["lastUpdateTimeStamp"], at)
        return {"$ref": aid}

    status = str(incident["status"])
    reopened = any(e["kind"] == "reopened" for e in events)
    eido_status = [INCIDENT_STATUS_TO_EIDO.get(status, "Active")]
    if reopened and status in OPEN_STATUSES:
        eido_status.append("ReOpened")
    loc_id = _cid("location", ref)
    desc_note = _cid("note", ref, "description")
    notes: list[dict[str, Any]] = []
    first_at = str(incident.get("received_at") or updated)
    creator = str(incident.get("created_by") or (events[0]["actor"] if events else "system"))
    if incident.get("description"):
        notes.append({**prologue(desc_note, first_at),
                      "notesActionComments": f"<p>{escape(str(incident['description']))}</p>",
                      "agentReference": agent(creator, first_at)})
    for n, e in enumerate(events, 1):
        data = e.get("data") or {}
        reason = data.get("reason") or data.get("note")
        if isinstance(reason, str) and reason.strip():
            notes.append({**prologue(_cid("note", ref, n), str(e["at"])),
                          "notesActionComments": f"<p>{escape(e['kind'])}: {escape(reason)}</p>",
                          "agentReference": agent(str(e["actor"]), str(e["at"]))})
        else:
            agent(str(e["actor"]), str(e["at"]))

    inc: dict[str, Any] = {
        **prologue(_cid("incident", ref)),
        "incidentTrackingIdentifier": tracking_id(ref, centre),
        "internalIncidentId": ref,
        "incidentTypeCommonRegistryText": "Law Enforcement",
        "incidentTypeInternalCode": str(incident["category"]),
        "incidentTypeInternalText": str(incident["category"]),
        "incidentStatusCommonRegistryText": eido_status,
        "incidentStatusInternalText": [status],
        "incidentCommonPriorityNumber": int(incident["priority"]),
        "incidentPriorityInternalText": str(incident["priority"]),
        "locationReference": [{"$ref": loc_id}],
        "agentReference": [{"$ref": aid} for aid in agents],
    }
    _put(inc, "beatOrDispatchGroupText",
         incident.get("sector_code") or incident.get("district_code"))
    if notes:
        inc["notesReference"] = [{"$ref": n["$id"]} for n in notes]
    if incident.get("disposition"):
        code = str(incident["disposition"])
        disp: dict[str, Any] = {
            **prologue(_cid("disposition", ref, code), str(incident.get("closed_at") or updated)),
            "dispositionCommonRegistryCode": code,
            "dispositionPrimaryIndicator": True,
        }
        _put(disp, "dispositionDescriptionText", apco_codes(standards_dir).get(code))
        inc["dispositionComponent"] = [disp]

    location: dict[str, Any] = {
        **prologue(loc_id),
        "locationTypeDescriptionRegistryText": "IncidentLocation",
        "locationByValue": pidf_point(incident.get("lat"), incident.get("lng"),
                                      incident.get("address")),
    }
    _put(location, "locationDescriptionText", incident.get("address"))

    res_components = []
    for i, r in enumerate(resources, 1):
        primary, secondary = ASSIGNMENT_TO_UNIT_STATUS.get(str(r["status"]),
                                                           ("NotAvailable", "Dispatched"))
        at = str(r.get("updated_at") or updated)
        caps = [str(c) for c in (r.get("capabilities") or [])]
        comp: dict[str, Any] = {
            **prologue(_cid("resource", ref, i), at),
            "agentReference": [agent(f"unit:{r['call_sign']}", at)],
            "emergencyResourceTypeCommonRegistryText": "Law Enforcement Unit",
            "resourceAttributeRegistryText": ["Other"] if caps else [],
            "primaryUnitStatusRegistryText": primary,
            "secondaryUnitStatusRegistryText": [secondary],
            "emergencyResourceName": str(r["call_sign"]),
            "unitStatusInternal": [str(r["status"])],
            "activeOnIncidentId": tracking_id(ref, centre),
        }
        if caps:
            comp["resourceAttributeInternalText"] = caps
        _put(comp, "emergencyResourceTypeInternalText", r.get("kind"))
        res_components.append(comp)

    call: dict[str, Any] = {
        **prologue(_cid("call", ref), first_at),
        "callStateRegistryText": "Ended",
        "standardPrimaryCallType": "Emergency",
        "direction": "incoming",
        "callStartTimestamp": first_at,
        "localCallType": str(incident.get("source") or "call"),
        "locationReference": [{"$ref": loc_id}],
        "agentReference": [agent(creator, first_at)],
    }
    if incident.get("description"):
        call["notesReference"] = [{"$ref": desc_note}]

    doc: dict[str, Any] = {
        **prologue(_cid("eido", ref, len(events))),
        "eidoVersion": EIDO_VERSION,
        "issuingElementIdentification": element_id(centre),
        "incidentComponent": inc,
        "callComponent": [call],
        "locationComponent": [location],
        "agencyComponent": [{
            **prologue(agency),
            "agencyRoleDescriptionRegistryText": ["IncidentOwner"],
            "agencyType": ["police"],
            "incidentOwningAgencyIndicator": True,
        }],
        "agentComponent": list(agents.values()),
    }
    if notes:
        doc["notesComponent"] = notes
    if res_components:
        doc["emergencyResourceComponent"] = res_components
    if merged_into:
        doc["mergeComponent"] = [{
            **prologue(_cid("merge", ref)),
            "incidentTrackingIdentifier": tracking_id(merged_into, centre),
            "incidentMergeDirectionCode": "REPLACED",
        }]
    return doc


# --- reading any EIDO ---------------------------------------------------------------------------


@dataclass
class MappedIncident:
    """What this system takes from an EIDO; ``unmapped`` names everything else it carried."""

    tracking_id: str
    reference: str | None
    category: str
    status: str
    priority: int
    description: str
    address: str | None
    lat: float | None
    lng: float | None
    disposition: str | None
    received_at: datetime | None
    issuer: str
    unmapped: list[str] = field(default_factory=list)


class EidoFormatError(ValueError):
    """The object is not an EIDO this system can read."""


_POS = re.compile(r"<(?:\w+:)?pos>\s*([-+0-9.eE]+)\s+([-+0-9.eE]+)")
_TAGS = re.compile(r"<[^>]+>")


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


def parse_eido(doc: Mapping[str, Any], *, categories: frozenset[str],
               standards_dir: Path) -> MappedIncident:
    """Map a (schema-valid) EIDO from any system to an incident of this one.

    Unknown categories become ``other`` and unknown statuses ``registered``, like a call; a
    disposition that is not an APCO common code is dropped. Every component, member or value
    not used is named in ``unmapped``.

    Raises
    ------
    EidoFormatError
        When there is no ``incidentComponent`` to read.
    """
    unmapped = [f"{k}" for k in doc if k not in _MAPPED_COMPONENTS]
    inc = doc.get("incidentComponent")
    if isinstance(inc, list):  # some producers send a one-element list
        inc = inc[0] if inc else None
    if not isinstance(inc, Mapping):
        raise EidoFormatError("the EIDO has no incidentComponent: nothing to import")
    unmapped += [f"incidentComponent.{k}" for k in inc if k not in _MAPPED_INCIDENT]
    tid = str(inc.get("incidentTrackingIdentifier") or inc.get("$id") or doc.get("$id"))

    given = str(inc.get("incidentTypeInternalCode") or inc.get("incidentTypeInternalText")
                or "").strip()
    raw_cat = given.lower()
    category = raw_cat if raw_cat in categories else "other"
    if raw_cat and category == "other" and raw_cat != "other":
        unmapped.append(f"incidentComponent.incidentTypeInternalCode={given!r} (as other)")

    status = "registered"
    internal = inc.get("incidentStatusInternalText") or []
    common = inc.get("incidentStatusCommonRegistryText") or []
    if internal and str(internal[0]) in INCIDENT_STATUS_TO_EIDO:
        status = str(internal[0])
    elif common:
        status = EIDO_TO_INCIDENT_STATUS.get(str(common[0]).replace(" ", "").lower(), "")
        if not status:
            unmapped.append(f"incidentStatusCommonRegistryText={common[0]!r} (as registered)")
            status = "registered"

    prio = inc.get("incidentCommonPriorityNumber")
    priority = min(max(int(prio), 1), 4) if isinstance(prio, int) else 3

    notes = {str(n.get("$id")): n for n in doc.get("notesComponent") or []
             if isinstance(n, Mapping)}
    wanted = [str(r.get("$ref")) for r in inc.get("notesReference") or []
              if isinstance(r, Mapping)]
    texts = [notes[r].get("notesActionComments", "") for r in wanted if r in notes] or [
        n.get("notesActionComments", "") for n in notes.values()]
    description = "\n".join(unescape(_TAGS.sub("", str(t))).strip() for t in texts if t)

    lat = lng = None
    address = None
    locs = [x for x in doc.get("locationComponent") or [] if isinstance(x, Mapping)]
    if locs:
        by_id = {str(x.get("$id")): x for x in locs}
        refs = [str(r.get("$ref")) for r in inc.get("locationReference") or []
                if isinstance(r, Mapping)]
        loc = next((by_id[r] for r in refs if r in by_id), locs[0])
        m = _POS.search(str(loc.get("locationByValue") or ""))
        if m:
            la, ln = float(m.group(1)), float(m.group(2))
            if -90 <= la <= 90 and -180 <= ln <= 180:
                lat, lng = la, ln
        if loc.get("locationDescriptionText"):
            address = str(loc["locationDescriptionText"])
        elif "NAM>" in str(loc.get("locationByValue") or ""):
            address = unescape(str(loc["locationByValue"]).split("NAM>", 1)[1].split("<", 1)[0])
        if loc.get("locationByReferenceUrl") and lat is None:
            unmapped.append("locationComponent.locationByReferenceUrl (not dereferenced)")

    disposition = None
    codes = apco_codes(standards_dir)
    disps = [d for d in inc.get("dispositionComponent") or [] if isinstance(d, Mapping)]
    disps.sort(key=lambda d: not d.get("dispositionPrimaryIndicator"))
    for d in disps:
        code = str(d.get("dispositionCommonRegistryCode", "")).strip().zfill(2)
        if code in codes and disposition is None:
            disposition = code
        else:
            unmapped.append(f"dispositionCommonRegistryCode={d.get('dispositionCommonRegistryCode')!r}")

    received = None
    for c in doc.get("callComponent") or []:
        if isinstance(c, Mapping):
            t = _time(c.get("callStartTimestamp"))
            if t and (received is None or t < received):
                received = t
    received = received or _time(inc.get("lastUpdateTimeStamp")) or _time(
        doc.get("lastUpdateTimeStamp"))
    if doc.get("emergencyResourceComponent"):
        unmapped.append("emergencyResourceComponent (crews of another system are not "
                        "dispatchable here)")
    if doc.get("linkComponent"):
        unmapped.append("linkComponent")
    return MappedIncident(
        tracking_id=tid, reference=str(inc["internalIncidentId"]) if inc.get(
            "internalIncidentId") else None,
        category=category, status=status, priority=priority, description=description,
        address=address, lat=lat, lng=lng, disposition=disposition, received_at=received,
        issuer=str(doc.get("issuingElementIdentification") or ""), unmapped=unmapped)
