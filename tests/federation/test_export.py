"""EIDO export from the database: region and time filters, crews, the full event log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.orm import Session

from geodispatch.federation.eido import EXTENSION
from geodispatch.federation.service import export_incidents
from tests.federation.conftest import T0, insert_assignment, insert_raw_event


def test_export_region_filter_and_log(db: Session,
                                      make_incident: Callable[..., tuple[int, str]]) -> None:
    """Only the asked region is exported, with every event in log order and the crew."""
    iid, ref = make_incident(region="ADX", status="on_scene")
    other, other_ref = make_incident(region="KV")
    for k, m in (("registered", 0), ("assigned", 2), ("on_scene", 9)):
        insert_raw_event(db, iid, k, m)
    insert_raw_event(db, other, "registered", 1)
    sign = insert_assignment(db, iid)
    docs = export_incidents(session=db, region="ADX", system="ad-centre")
    refs = [d["incidentComponent"]["internalIncidentId"] for d in docs]
    assert ref in refs and other_ref not in refs
    doc = docs[refs.index(ref)]
    log = doc[EXTENSION]["eventLog"]
    assert [e["kind"] for e in log] == ["registered", "assigned", "on_scene"]
    assert [e["id"] for e in log] == sorted(e["id"] for e in log)
    assert set(log[0]) == {"id", "incident_id", "incident_seq", "kind", "actor", "at", "data", "body"}
    assert doc["incidentComponent"]["incidentStatusCommonRegistryText"] == ["ResourcesOnscene"]
    assert doc["emergencyResourceComponent"][0]["emergencyResourceName"] == sign
    assert doc[EXTENSION]["region"] == "ADX"


def test_export_since_keeps_whole_log(db: Session,
                                      make_incident: Callable[..., tuple[int, str]]) -> None:
    """`since` selects incidents changed since then, but each carries its whole log."""
    old, old_ref = make_incident()
    new, new_ref = make_incident()
    insert_raw_event(db, old, "registered", 0)
    insert_raw_event(db, new, "registered", 0)
    insert_raw_event(db, new, "assigned", 30)
    docs = export_incidents(session=db, region="ADX", since=T0 + timedelta(minutes=10))
    refs = [d["incidentComponent"]["internalIncidentId"] for d in docs]
    assert new_ref in refs and old_ref not in refs
    assert len(docs[refs.index(new_ref)][EXTENSION]["eventLog"]) == 2
    assert export_incidents(session=db, region="ADX", since=T0 + timedelta(days=1)) == []
