"""EIDO as NENA-STA-021 defines it: every document we build validates against the official
schema (read from the standards folder), and any schema-valid EIDO can be read back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from geodispatch.federation.eido import (
    EidoFormatError,
    build_eido,
    element_id,
    parse_eido,
    tracking_id,
)
from geodispatch.federation.schema import eido_errors
from geodispatch.settings import Settings

T0 = "2026-11-29T06:00:00.000000+00:00"
T1 = "2026-11-29T06:09:00.000000+00:00"
CATEGORIES = frozenset({"theft", "assault", "other"})


def _incident(**kw: Any) -> dict[str, Any]:
    base = {
        "reference": "KV-2026-000042", "region": "KV", "status": "on_scene", "category": "theft",
        "priority": 2, "received_at": T0, "registered_at": T0, "closed_at": None,
        "lat": 50.4501, "lng": 30.5234, "address": "Khreshchatyk 1 <A&B>",
        "description": "bike stolen", "disposition": None, "sector_code": "KV-D01-S03",
        "district_code": "KV-D01", "source": "call", "created_by": "ct1",
    }
    base.update(kw)
    return base


EVENTS = [
    {"kind": "registered", "actor": "ct1", "at": T0, "data": {"category": "theft"}},
    {"kind": "reclassified", "actor": "d1", "at": T1, "data": {"reason": "it was a bike"}},
]
CREW = [{"call_sign": "P-12", "kind": "patrol_car", "status": "on_scene", "is_lead": True,
         "capabilities": ["k9"], "updated_at": T1},
        {"call_sign": "P-13", "kind": "patrol_car", "status": "cleared", "is_lead": False,
         "capabilities": [], "updated_at": T1}]


def _build(settings: Settings, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"incident": _incident(), "events": EVENTS, "resources": CREW,
                            "centre": "KV", "standards_dir": settings.standards_dir}
    args.update(kw)
    return json.loads(json.dumps(build_eido(**args)))


def _nulls(node: Any, path: str = "") -> list[str]:
    if node is None:
        return [path]
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _nulls(v, f"{path}/{k}")]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _nulls(v, f"{path}/{i}")]
    return []


@pytest.mark.parametrize("variant", [
    {},
    {"incident": _incident(status="closed", disposition="03", closed_at=T1)},
    {"incident": _incident(lat=None, lng=None, sector_code=None, district_code=None)},
    {"incident": _incident(address=None, description="")},
    {"incident": _incident(status="merged"), "merged_into": "KV-2026-000041"},
    {"resources": []},
    {"events": EVENTS + [{"kind": "reopened", "actor": "s1", "at": T1, "data": {}}]},
], ids=["on_scene", "closed", "no_place", "bare", "merged", "no_crew", "reopened"])
def test_every_document_validates(settings: Settings, variant: dict[str, Any]) -> None:
    """Each kind of incident gives a document without schema violations and without nulls."""
    doc = _build(settings, **variant)
    assert eido_errors(doc, standards_dir=settings.standards_dir) == []
    assert _nulls(doc) == []


def test_standard_fields(settings: Settings) -> None:
    """Root, prologue, notes, resources and the disposition use the standard's members."""
    doc = _build(settings, incident=_incident(status="closed", disposition="03", closed_at=T1))
    assert doc["issuingElementIdentification"] == element_id("KV")
    assert doc["updatedByAgencyReference"] == {"$ref": doc["agencyComponent"][0]["$id"]}
    for name in ("locationComponent", "agencyComponent", "agentComponent", "notesComponent",
                 "emergencyResourceComponent", "callComponent"):
        for comp in doc[name]:
            assert {"$id", "lastUpdateTimeStamp", "updatedByAgencyReference"} <= comp.keys()
    inc = doc["incidentComponent"]
    assert inc["incidentTrackingIdentifier"] == tracking_id("KV-2026-000042", "KV")
    [disp] = inc["dispositionComponent"]
    assert disp["dispositionCommonRegistryCode"] == "03" and disp["$id"]
    assert disp["dispositionDescriptionText"] == "Arrest"
    assert [n["notesActionComments"] for n in doc["notesComponent"]] == [
        "<p>bike stolen</p>", "<p>reclassified: it was a bike</p>"]
    statuses = [r["primaryUnitStatusRegistryText"] for r in doc["emergencyResourceComponent"]]
    assert statuses == ["NotAvailable", "Available"]
    agents = {a["$id"] for a in doc["agentComponent"]}
    for r in doc["emergencyResourceComponent"]:
        assert {a["$ref"] for a in r["agentReference"]} <= agents
        assert r["resourceAttributeRegistryText"] in ([], ["Other"])
        assert r["secondaryUnitStatusRegistryText"]


def test_invalid_document_is_reported(settings: Settings) -> None:
    """The validator names each violation (it really checks)."""
    doc = _build(settings)
    del doc["issuingElementIdentification"]
    doc["notesComponent"][0].pop("notesActionComments")
    doc["incidentComponent"]["incidentCommonPriorityNumber"] = "high"
    errors = eido_errors(doc, standards_dir=settings.standards_dir)
    assert any("issuingElementIdentification" in e for e in errors)
    assert any(e.startswith("notesComponent/0") and "notesActionComments" in e for e in errors)
    assert any(e.startswith("incidentComponent/incidentCommonPriorityNumber") for e in errors)


FOREIGN: dict[str, Any] = {
    "$id": "urn:other-cad:eido:99",
    "lastUpdateTimeStamp": "2026-11-29T08:00:00Z",
    "updatedByAgencyReference": {"$ref": "agency-1"},
    "eidoVersion": "1.0",
    "issuingElementIdentification": "urn:emergency:uid:elementid:cad.other.example",
    "agencyComponent": [{"$id": "agency-1", "lastUpdateTimeStamp": "2026-11-29T08:00:00Z",
                         "updatedByAgencyReference": {"$ref": "agency-1"},
                         "agencyRoleDescriptionRegistryText": ["IncidentOwner"],
                         "agencyType": ["police.municipal"]}],
    "incidentComponent": {
        "$id": "inc-1", "lastUpdateTimeStamp": "2026-11-29T08:00:00Z",
        "updatedByAgencyReference": {"$ref": "agency-1"},
        "incidentTrackingIdentifier": "urn:emergency:uid:incidentid:77:cad.other.example",
        "incidentTypeCommonRegistryText": "Law Enforcement",
        "incidentTypeInternalCode": "BURGLARY-RES",
        "incidentStatusCommonRegistryText": ["Dispatched"],
        "incidentCommonPriorityNumber": 9,
        "locationReference": [{"$ref": "loc-1"}],
        "notesReference": [{"$ref": "note-1"}],
        "reportNumberType": "case",
        "dispositionComponent": [{"$id": "d-1", "lastUpdateTimeStamp": "2026-11-29T08:00:00Z",
                                  "updatedByAgencyReference": {"$ref": "agency-1"},
                                  "dispositionCommonRegistryCode": "L-77"}],
    },
    "locationComponent": [{
        "$id": "loc-1", "lastUpdateTimeStamp": "2026-11-29T08:00:00Z",
        "updatedByAgencyReference": {"$ref": "agency-1"},
        "locationTypeDescriptionRegistryText": "IncidentLocation",
        "locationByValue": "<presence xmlns='urn:ietf:params:xml:ns:pidf'><gml:Point "
                           "xmlns:gml='http://www.opengis.net/gml'><gml:pos>50.41 30.62"
                           "</gml:pos></gml:Point></presence>"}],
    "notesComponent": [{"$id": "note-1", "lastUpdateTimeStamp": "2026-11-29T08:00:00Z",
                        "updatedByAgencyReference": {"$ref": "agency-1"},
                        "notesActionComments": "<b>Window broken</b> &amp; door open"}],
    "personComponent": [{"$id": "p-1", "lastUpdateTimeStamp": "2026-11-29T08:00:00Z",
                         "updatedByAgencyReference": {"$ref": "agency-1"},
                         "personIncidentRoleRegistryText": ["Witness"]}],
}


def test_foreign_eido_is_valid_and_read(settings: Settings) -> None:
    """A hand-made EIDO of another CAD validates and maps; what did not map is named."""
    assert eido_errors(FOREIGN, standards_dir=settings.standards_dir) == []
    m = parse_eido(FOREIGN, categories=CATEGORIES, standards_dir=settings.standards_dir)
    assert (m.category, m.status, m.priority) == ("other", "assigned", 4)
    assert (m.lat, m.lng) == (50.41, 30.62)
    assert m.description == "Window broken & door open"
    assert m.disposition is None and m.reference is None
    assert m.tracking_id == FOREIGN["incidentComponent"]["incidentTrackingIdentifier"]
    joined = " | ".join(m.unmapped)
    for what in ("personComponent", "incidentComponent.reportNumberType", "BURGLARY-RES",
                 "L-77"):
        assert what in joined


def test_our_document_reads_back(settings: Settings) -> None:
    """What we build parses to the same incident."""
    doc = _build(settings, incident=_incident(status="closed", disposition="03", closed_at=T1))
    m = parse_eido(doc, categories=CATEGORIES, standards_dir=settings.standards_dir)
    assert (m.reference, m.category, m.status, m.priority, m.disposition) == (
        "KV-2026-000042", "theft", "closed", 2, "03")
    assert m.address == "Khreshchatyk 1 <A&B>" and m.description.startswith("bike stolen")


def test_no_incident_component(settings: Settings) -> None:
    with pytest.raises(EidoFormatError, match="incidentComponent"):
        parse_eido({k: v for k, v in FOREIGN.items() if k != "incidentComponent"},
                   categories=CATEGORIES, standards_dir=settings.standards_dir)
