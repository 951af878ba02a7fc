"""Notes: a ``note`` event on the incident's record, replayed by verification like any other."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.dispatch.workflow import close_incident
from geodispatch.errors import InvalidInput, NotFound
from geodispatch.federation.eido import build_eido
from geodispatch.incidents.models import Incident
from geodispatch.incidents.record import event_dict, incident_events
from geodispatch.incidents.service import add_note, incident_notes
from geodispatch.settings import Settings
from tests.helpers import record_findings


def test_note_is_an_event_and_verifies(db: Session, make_incident: Callable[..., Incident]
                                       ) -> None:
    """Two notes are two ``note`` events in order; the incident's record still verifies."""
    inc = make_incident()
    first = add_note(session=db, incident_id=inc.id, text="  caller: the man has a knife ",
                     actor="ct1")
    second = add_note(session=db, incident_id=inc.id, text="сусіди чули постріли", actor="d1")
    assert first["text"] == "caller: the man has a knife" and first["actor"] == "ct1"
    notes = incident_notes(session=db, incident_id=inc.id)
    assert [(n["id"], n["actor"], n["text"]) for n in notes] == [
        (first["id"], "ct1", "caller: the man has a knife"),
        (second["id"], "d1", "сусіди чули постріли")]
    events = [event_dict(e) for e in incident_events(session=db, incident_id=inc.id)]
    assert [e["kind"] for e in events][-2:] == ["note", "note"]
    assert events[-1]["data"] == {"note": "сусіди чули постріли"}
    body = db.execute(text("SELECT convert_from(body, 'UTF8') FROM incident_events "
                           "WHERE id = :i"), {"i": second["id"]}).scalar_one()
    assert '"kind":"note"' in body and "сусіди чули постріли" in body
    assert record_findings(db, inc.id) == []


def test_note_on_a_closed_incident(db: Session, make_incident: Callable[..., Incident],
                                   settings: Settings) -> None:
    """A remark after closing is still recorded (and changes nothing else)."""
    inc = make_incident()
    close_incident(session=db, incident_id=inc.id, actor="d1", disposition="02",
                   settings=settings)
    add_note(session=db, incident_id=inc.id, text="caller rang to say thanks", actor="d1")
    assert inc.status == "closed" and inc.disposition == "02"
    assert record_findings(db, inc.id) == []


@pytest.mark.parametrize("note", ["", "   ", "x" * 2001])
def test_empty_or_long_note_is_refused(db: Session, make_incident: Callable[..., Incident],
                                       note: str) -> None:
    """No text, or more than 2,000 characters: refused, nothing recorded."""
    inc = make_incident()
    before = inc.event_count
    with pytest.raises(InvalidInput):
        add_note(session=db, incident_id=inc.id, text=note, actor="d1")
    assert inc.event_count == before


def test_note_on_a_missing_incident(db: Session) -> None:
    with pytest.raises(NotFound):
        add_note(session=db, incident_id=987654321, text="hello", actor="d1")


def test_notes_travel_in_the_eido(db: Session, make_incident: Callable[..., Incident],
                                  settings: Settings) -> None:
    """Federation describes a note as an EIDO note of its own."""
    inc = make_incident()
    add_note(session=db, incident_id=inc.id, text="second caller confirms <smoke>", actor="d1")
    events = [event_dict(e) for e in incident_events(session=db, incident_id=inc.id)]
    doc = build_eido(
        incident={"reference": inc.reference, "region": inc.region, "status": inc.status,
                  "category": inc.category, "priority": inc.priority,
                  "received_at": inc.received_at.isoformat(),
                  "registered_at": inc.received_at.isoformat(), "closed_at": None,
                  "lat": 50.45, "lng": 30.52, "address": None, "description": "test",
                  "disposition": None, "sector_code": None, "district_code": None,
                  "source": "call", "created_by": "ct1"},
        events=events, centre="KV", standards_dir=settings.standards_dir)
    texts = [n["notesActionComments"] for n in doc["notesComponent"]]
    assert "<p>note: second caller confirms &lt;smoke&gt;</p>" in texts
