"""EIDO mapping: statuses per DOMAIN.md, location, resources, and the parse of what we build."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from geodispatch.federation.eido import (
    EXTENSION,
    EidoFormatError,
    build_eido,
    eido_status,
    parse_eido,
    tracking_id,
)

T0 = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)


def _incident(**kw: Any) -> dict[str, Any]:
    base = {
        "reference": "KV-2026-000042", "region": "KV", "status": "on_scene", "category": "theft",
        "priority": 2, "received_at": T0, "registered_at": T0, "closed_at": None,
        "lat": 50.4501, "lng": 30.5234, "h3": 617700169958293503, "address": "Khreshchatyk 1 <A&B>",
        "description": "bike stolen", "disposition": None, "sector_code": "KV-D01-S03",
        "district_code": "KV-D01", "caller_lang": "uk", "source": "call",
    }
    base.update(kw)
    return base


EVENTS = [
    {"id": 7, "incident_id": 3, "kind": "registered", "actor": "ct1", "at": T0.isoformat(),
     "data": {"category": "theft"}, "incident_seq": 1, "body": "{}"},
    {"id": 9, "incident_id": 3, "kind": "assigned", "actor": "d1", "at": T0.isoformat(),
     "data": {"unit": "P-12"}, "incident_seq": 2, "body": "{}"},
]


@pytest.mark.parametrize(
    ("ours", "eido"),
    [("registered", "Active"), ("queued", "Active"), ("assigned", "ResourcesAssigned"),
     ("en_route", "ResourcesEnroute"), ("on_scene", "ResourcesOnscene"), ("cleared", "Active"),
     ("closed", "Closed"), ("cancelled", "Cancelled"), ("merged", "Closed")],
)
def test_status_mapping(ours: str, eido: str) -> None:
    """Each of our incident statuses maps to the EIDO status registry value of DOMAIN.md."""
    assert eido_status(ours) == [eido]


def test_reopened_flag_only_while_open() -> None:
    """ReOpened accompanies an open status of a reopened incident, not a closed one."""
    assert eido_status("queued", reopened=True) == ["Active", "ReOpened"]
    assert eido_status("closed", reopened=True) == ["Closed"]


def test_build_carries_incident_location_resources_and_log() -> None:
    """The EIDO has the incident component, a PIDF-LO point, crews and the verbatim event log."""
    doc = build_eido(
        incident=_incident(), events=EVENTS, system="kv-centre",
        resources=[{"call_sign": "P-12", "kind": "patrol_car", "status": "on_scene",
                    "is_lead": True, "dispatched_at": T0}],
    )
    inc = doc["incidentComponent"]
    assert inc["incidentTrackingIdentifier"] == tracking_id("KV-2026-000042", "kv-centre")
    assert inc["incidentTrackingIdentifier"].startswith("urn:emergency:uid:incidentid:")
    assert inc["incidentStatusCommonRegistryText"] == ["ResourcesOnscene"]
    assert inc["incidentStatusInternalText"] == ["on_scene"]
    assert inc["beatOrDispatchGroupText"] == "KV-D01-S03"
    loc = doc["locationComponent"][0]
    assert "<gml:pos>50.4501 30.5234</gml:pos>" in loc["locationByValue"]  # GML: lat lon
    assert "&lt;A&amp;B&gt;" in loc["locationByValue"]
    [crew] = doc["emergencyResourceComponent"]
    assert crew["primaryUnitStatusRegistryText"] == "NotAvailable" and crew["leadIndicator"]
    assert doc[EXTENSION]["eventLog"] == EVENTS
    assert doc["eidoMessageIdentifier"].endswith(":9")
    assert doc["lastUpdateTimeStamp"] == T0.isoformat()


def test_disposition_and_merge() -> None:
    """A closed, merged incident carries its disposition code and the surviving incident."""
    doc = build_eido(incident=_incident(status="merged", disposition="22"), events=EVENTS,
                     system="kv", merged_into="KV-2026-000041")
    disposition = doc["incidentComponent"]["dispositionComponent"][0]
    assert disposition["dispositionCommonRegistryCode"] == "22"
    assert doc["mergeComponent"][0]["incidentTrackingIdentifier"].endswith("KV-2026-000041:kv")


def test_parse_round_trip() -> None:
    """parse_eido recovers the stored fields from build_eido's output."""
    doc = build_eido(incident=_incident(status="closed", disposition="01"), events=EVENTS,
                     system="kv")
    p = parse_eido(doc)
    assert (p["reference"], p["region"], p["status"], p["disposition"]) == (
        "KV-2026-000042", "KV", "closed", "01")
    assert (p["lat"], p["lng"]) == (50.4501, 30.5234)
    assert p["events"] == EVENTS and p["system"] == "kv" and p["category"] == "theft"


def test_parse_rejects_foreign_objects() -> None:
    """Objects without our pieces are refused with a clear error."""
    with pytest.raises(EidoFormatError):
        parse_eido({"incidentComponent": {"incidentTrackingIdentifier": "x"}})
