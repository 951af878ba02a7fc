"""EIDO round trip: a regional export imported on the national side with every hash verified;
a tampered export is rejected and nothing is stored.

Regional and national side share the test database here; the imported copy therefore gets a
system-suffixed reference (as it would when a centre already used the regional one).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.errors import InvalidInput
from geodispatch.federation.eido import EXTENSION
from geodispatch.federation.service import export_incidents, import_eido
from geodispatch.settings import Settings
from geodispatch.incidents.record import append_event
from tests.federation.conftest import T0
from tests.helpers import record_findings


SYSTEM = "ad-regional"


def _regional(db: Session, make_incident: Callable[..., tuple[int, str]]) -> tuple[int, str]:
    iid, ref = make_incident(status="closed")
    steps = [("registered", {"category": "theft"}), ("assigned", {"unit": "P-12"}),
             ("closed", {"disposition": "01"})]
    for minute, (kind, data) in enumerate(steps):
        append_event(session=db, incident_id=iid, kind=kind, actor="d1", data=data,
                           at=T0 + timedelta(minutes=minute))
    db.flush()
    return iid, ref


def _export(db: Session, ref: str) -> dict[str, Any]:
    [doc] = export_incidents(session=db, references=[ref], system=SYSTEM)
    return json.loads(json.dumps(doc))  # exactly what travels between centres


def test_round_trip_verifies_and_stores(
    db: Session, settings: Settings, make_incident: Callable[..., tuple[int, str]]
) -> None:
    """Import verifies all events, stores a read-only copy and appends to the national chain."""
    _, ref = _regional(db, make_incident)
    doc = _export(db, ref)
    result = import_eido(session=db, doc=doc, settings=settings)
    assert result.created and result.events_checked == 3 and result.events_added == 3
    row = db.execute(
        text("SELECT reference, source, external_ref, status, region FROM incidents WHERE id = :i"),
        {"i": result.incident_id},
    ).one()
    assert row.source == "eido" and row.external_ref == f"{SYSTEM}:{ref}"
    assert row.status == "closed" and row.region == "ADX" and row.reference.startswith(ref)
    origins = db.execute(
        text("SELECT data->'_origin'->>'incident_seq' FROM incident_events "
             "WHERE incident_id = :i ORDER BY id"), {"i": result.incident_id},
    ).scalars().all()
    assert origins == [str(e["incident_seq"]) for e in doc[EXTENSION]["eventLog"]]
    assert record_findings(db, result.incident_id) == []


def test_reimport_adds_only_new_events(
    db: Session, settings: Settings, make_incident: Callable[..., tuple[int, str]]
) -> None:
    """Importing the same incident again is idempotent; a later export adds only new events."""
    iid, ref = _regional(db, make_incident)
    first = import_eido(session=db, doc=_export(db, ref), settings=settings)
    again = import_eido(session=db, doc=_export(db, ref), settings=settings)
    assert not again.created and again.events_added == 0 and again.incident_id == first.incident_id
    append_event(session=db, incident_id=iid, kind="reopened", actor="s1",
                       data={"reason": "caller rang back"}, at=T0 + timedelta(minutes=30))
    db.flush()
    later = import_eido(session=db, doc=_export(db, ref), settings=settings)
    assert later.events_added == 1 and later.events_checked == 4


@pytest.mark.parametrize(
    "tamper",
    [
        lambda log: log[1]["data"].update(unit="P-99"),
        lambda log: log[0].update(actor="someone-else"),
        lambda log: log[2].update(at=(T0 + timedelta(hours=5)).isoformat()),
        lambda log: log[1].update(body=log[1]["body"].replace("P-12", "P-99")),
        lambda log: log.reverse(),
        lambda log: log.pop(1),
    ],
    ids=["data", "actor", "time", "body", "order", "removed"],
)
def test_tampered_export_rejected(
    db: Session, settings: Settings, make_incident: Callable[..., tuple[int, str]],
    tamper: Callable[[list[dict[str, Any]]], None],
) -> None:
    """Any edit to the exported log fails verification; nothing is imported."""
    _, ref = _regional(db, make_incident)
    doc = _export(db, ref)
    bad = copy.deepcopy(doc)
    tamper(bad[EXTENSION]["eventLog"])
    with pytest.raises(InvalidInput, match="event log rejected"):
        import_eido(session=db, doc=bad, settings=settings)
    stored = db.execute(text("SELECT count(*) FROM incidents WHERE external_ref = :x"),
                        {"x": f"{SYSTEM}:{ref}"}).scalar_one()
    assert stored == 0
