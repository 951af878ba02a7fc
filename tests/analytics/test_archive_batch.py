"""An archive import is one batch in the signed record: one event with the file's sha256, the
counts and a hash over the imported rows; verification recomputes it and names a changed row's
batch."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.analytics.importer import import_sf_calls
from geodispatch.incidents.archive import batch_digest
from geodispatch.incidents.verify import verify_record
from geodispatch.ledger.service import public_key
from geodispatch.settings import get_settings
from tests.analytics.conftest import SF_REGION, SF_TZ


def _batch_findings(session: Session) -> list[str]:
    report = verify_record(session=session, public_key=public_key(get_settings()))
    return [f.what for f in report.findings if "import batch" in f.what]


def test_one_event_per_file_carrying_its_hashes(admin_db: Session, sf_calls_file: Path) -> None:
    """3,560 incidents and 7,704 assignments: one ``archive_imported`` event, none per incident;
    the event's figures are the file's sha256 and the rows as stored; the record verifies."""
    result = import_sf_calls(session=admin_db, path=sf_calls_file, region=SF_REGION, tz=SF_TZ)
    assert result.batch_id is not None and result.new_incidents == 3560
    events = admin_db.execute(text(
        "SELECT kind, data FROM incident_events WHERE import_batch_id = :b"),
        {"b": result.batch_id}).all()
    assert len(events) == 1 and events[0][0] == "archive_imported"
    data = events[0][1]
    assert data["file_sha256"] == hashlib.sha256(sf_calls_file.read_bytes()).hexdigest()
    assert (data["incidents"], data["assignments"], data["source_rows"]) == (3560, 7704, 7704)
    assert data["rows_sha256"] == result.rows_sha256 == \
        batch_digest(admin_db, result.batch_id).rows_sha256
    per_incident = admin_db.execute(text(
        "SELECT count(*) FROM incident_events e JOIN incidents i ON i.id = e.incident_id "
        "WHERE i.import_batch_id = :b"), {"b": result.batch_id}).scalar()
    assert per_incident == 0
    assert _batch_findings(admin_db) == []
    report = verify_record(session=admin_db, public_key=public_key(get_settings()))
    assert not [f for f in report.findings if f.what.endswith("inserted outside the record")]

    # A repeated import inserts nothing: no second batch, no second event.
    again = import_sf_calls(session=admin_db, path=sf_calls_file, region=SF_REGION, tz=SF_TZ)
    assert (again.new_incidents, again.new_assignments, again.batch_id) == (0, 0, None)
    assert admin_db.execute(text(
        "SELECT count(*) FROM incident_events WHERE import_batch_id IS NOT NULL "
        "AND data->>'file' = :f"), {"f": sf_calls_file.name}).scalar() == 1


def test_an_altered_imported_row_is_named_with_its_batch(admin_db: Session,
                                                         sf_calls_file: Path) -> None:
    """A superuser's quiet UPDATE of one imported incident's priority, or a deleted imported
    assignment, makes the batch's rows differ from what its sealed event says."""
    result = import_sf_calls(session=admin_db, path=sf_calls_file, region=SF_REGION, tz=SF_TZ)
    b = result.batch_id
    admin_db.execute(text(
        "UPDATE incidents SET priority = priority % 4 + 1 WHERE id = (SELECT min(id) FROM "
        "incidents WHERE import_batch_id = :b)"), {"b": b})
    found = _batch_findings(admin_db)
    assert len(found) == 1
    assert f"import batch {b} ({sf_calls_file.name})" in found[0]
    assert "a value was changed" in found[0]
    admin_db.execute(text(
        "DELETE FROM assignments WHERE id = (SELECT max(id) FROM assignments "
        "WHERE import_batch_id = :b)"), {"b": b})
    found = _batch_findings(admin_db)
    assert len(found) == 1 and "7703 assignments where 7704 were imported" in found[0]


def test_a_batch_without_its_event_is_named(admin_db: Session) -> None:
    """Rows claiming to be an archive batch that has no sealed event are outside the record."""
    bid = admin_db.execute(text(
        "INSERT INTO import_batches (region, file_name, file_sha256, mapping) "
        "VALUES ('X', 'forged.csv', repeat('0', 64), 'sf') RETURNING id")).scalar_one()
    found = _batch_findings(admin_db)
    assert any(f"import batch {bid} (forged.csv) has no event" in x for x in found), found
