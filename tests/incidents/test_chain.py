"""The hash chain: tampering as the database superuser is caught and the first broken link named."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from geodispatch.incidents.chain import (
    GENESIS,
    anchor_chain,
    append_event,
    canonical,
    event_dict,
    incident_events,
    link_hash,
    verify_chain,
    verify_event_list,
)
from geodispatch.incidents.models import Incident
from geodispatch.incidents.schemas import IncidentCreate
from geodispatch.incidents.service import reclassify, register_incident


@pytest.fixture()
def tampering(admin_db: Session) -> Iterator[Session]:
    """The superuser's session with the append-only trigger off (rolled back afterwards)."""
    admin_db.execute(text("ALTER TABLE incident_events DISABLE TRIGGER USER"))
    yield admin_db


def _incident(session: Session, n_events: int = 3) -> tuple[Incident, list[int]]:
    inc = register_incident(session=session, data=IncidentCreate(
        lat=50.45, lng=30.52, category="theft", idempotency_key=uuid.uuid4().hex), actor="ct")
    for i in range(n_events - 1):
        append_event(session=session, incident_id=inc.id, kind="note", actor="d1",
                     data={"text": f"note {i}", "ключ": "значення"})
    ids = [e.id for e in incident_events(session=session, incident_id=inc.id)]
    return inc, ids


def test_canonical_form_is_stable() -> None:
    """The same content gives the same bytes whatever time zone or key order."""
    from datetime import timedelta, timezone

    t = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    a = canonical(incident_id=1, kind="k", actor="a", at=t, data={"b": 1, "a": [1, 2]})
    b = canonical(incident_id=1, kind="k", actor="a",
                  at=t.astimezone(timezone(timedelta(hours=2))), data={"a": [1, 2], "b": 1})
    assert a == b
    assert link_hash(GENESIS, a) == link_hash(GENESIS, b)


def test_app_role_cannot_update_or_delete(db: Session) -> None:
    """The application role may only append."""
    inc, ids = _incident(db)
    with pytest.raises(DBAPIError):
        with db.begin_nested():
            db.execute(text("UPDATE incident_events SET actor = 'x' WHERE id = :i"),
                       {"i": ids[0]})
    with pytest.raises(DBAPIError):
        with db.begin_nested():
            db.execute(text("DELETE FROM incident_events WHERE id = :i"), {"i": ids[0]})


def test_untouched_incident_verifies(db: Session) -> None:
    """An incident's stretch of the chain verifies."""
    inc, ids = _incident(db)
    report = verify_chain(session=db, incident_id=inc.id)
    assert report.ok, report
    assert report.checked >= len(ids)


def test_edited_event_is_caught(tampering: Session) -> None:
    """Editing an event's data names that event."""
    inc, ids = _incident(tampering)
    tampering.execute(text("UPDATE incident_events SET data = '{\"text\": \"forged\"}' "
                           "WHERE id = :i"), {"i": ids[1]})
    report = verify_chain(session=tampering, incident_id=inc.id)
    assert not report.ok and report.first_broken_id == ids[1]


def test_edited_actor_and_time_are_caught(tampering: Session) -> None:
    """Changing who or when breaks the hash too."""
    inc, ids = _incident(tampering)
    tampering.execute(text("UPDATE incident_events SET at = at - interval '1 hour' "
                           "WHERE id = :i"), {"i": ids[2]})
    report = verify_chain(session=tampering, incident_id=inc.id)
    assert not report.ok and report.first_broken_id == ids[2]


def test_deleted_event_is_caught(tampering: Session) -> None:
    """Deleting an event breaks the link of the event after it."""
    inc, ids = _incident(tampering, 4)
    tampering.execute(text("DELETE FROM incident_events WHERE id = :i"), {"i": ids[1]})
    report = verify_chain(session=tampering, incident_id=inc.id)
    assert not report.ok and report.first_broken_id == ids[2]


def test_reordered_events_are_caught(tampering: Session) -> None:
    """Swapping two events' places (ids) is caught at the first of them."""
    inc, ids = _incident(tampering, 4)
    a, b = ids[1], ids[2]
    tampering.execute(text("UPDATE incident_events SET id = -id WHERE id IN (:a, :b)"),
                      {"a": a, "b": b})
    tampering.execute(text("UPDATE incident_events SET id = CASE WHEN id = -:a THEN :b "
                           "ELSE :a END WHERE id IN (-:a, -:b)"), {"a": a, "b": b})
    report = verify_chain(session=tampering, incident_id=inc.id)
    assert not report.ok and report.first_broken_id == a


def test_quiet_update_of_the_incident_row_is_caught(admin_db: Session) -> None:
    """Changing incidents.category behind the log's back disagrees with the log."""
    inc, _ids = _incident(admin_db)
    reclassify(session=admin_db, incident_id=inc.id, category="robbery", reason="weapon",
               actor="d")
    assert verify_chain(session=admin_db, incident_id=inc.id).ok
    admin_db.execute(text("UPDATE incidents SET category = 'other' WHERE id = :i"),
                     {"i": inc.id})
    report = verify_chain(session=admin_db, incident_id=inc.id)
    assert not report.ok and "category" in (report.reason or "")


def test_truncation_of_newest_events_is_caught(tampering: Session, tmp_path: Path) -> None:
    """Cutting off the newest events is caught against the latest anchor (table and file)."""
    inc, ids = _incident(tampering, 3)
    path = tmp_path / "anchors.log"
    anchor = anchor_chain(session=tampering, path=path)
    assert anchor is not None and anchor.last_event_id == ids[-1]
    line = json.loads(path.read_text().splitlines()[-1])
    assert line["head_hash"] == anchor.head_hash
    tampering.execute(text("DELETE FROM incident_events WHERE id >= :i"), {"i": ids[-1]})
    report = verify_chain(session=tampering, incident_id=None, anchor_path=path)
    assert not report.ok and "cut off" in (report.reason or "")


def test_truncation_caught_by_file_when_table_anchor_is_removed(tampering: Session,
                                                                tmp_path: Path) -> None:
    """Deleting the anchor rows too still fails against the append-only file."""
    _inc, ids = _incident(tampering, 2)
    path = tmp_path / "anchors.log"
    anchor_chain(session=tampering, path=path)
    tampering.execute(text("DELETE FROM incident_events WHERE id >= :i"), {"i": ids[-1]})
    tampering.execute(text("ALTER TABLE chain_anchors DISABLE TRIGGER USER"))
    tampering.execute(text("DELETE FROM chain_anchors"))
    report = verify_chain(session=tampering, incident_id=None, anchor_path=path)
    assert not report.ok and str(path) in (report.reason or "")


def test_exported_list_verifies_and_tampering_is_named(db: Session) -> None:
    """verify_event_list accepts an export and names the first edited event."""
    _inc, _ids = _incident(db, 3)
    events = [event_dict(e) for e in incident_events(session=db, incident_id=_inc.id)]
    assert verify_event_list(events).ok
    events[1]["data"] = {"text": "forged"}
    report = verify_event_list(events)
    assert not report.ok and report.first_broken_id == events[1]["id"]
    events2 = [event_dict(e) for e in incident_events(session=db, incident_id=_inc.id)]
    events2[0], events2[1] = events2[1], events2[0]
    assert not verify_event_list(events2).ok


def test_verify_log_cli(make_incident: Callable[..., Incident], db: Session) -> None:
    """`geodispatch verify-log --incident REF` parses (the real run is in test_views)."""
    from geodispatch.cli import build_parser

    args = build_parser().parse_args(["verify-log", "--incident", "KV-2026-000001"])
    assert args.incident == "KV-2026-000001"
