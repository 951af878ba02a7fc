"""File import on the national side: a registered centre's EIDO is verified against its signed
log and witnessed; forged changes are refused and kept with the reason; an EIDO of any other
system is mapped and what could not be mapped is reported.

Regional and national side share the test database here (committed data: the sequencer seals
it), so the national copy gets a suffixed reference.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import rfc8785
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from geodispatch.db import session_factory, transaction
from geodispatch.federation.eido import LOG_EXTENSION, element_id
from geodispatch.federation.national import register_centre
from geodispatch.federation.service import export_incidents, import_documents
from geodispatch.incidents.record import append_event
from geodispatch.ledger.signing import TreeHead
from geodispatch.settings import Settings
from tests.federation.conftest import T0, insert_incident
from tests.federation.test_eido import FOREIGN

CENTRE = "ADX"


@pytest.fixture()
def regional(settings: Settings) -> Settings:
    return settings.model_copy(update={"federation_centre": CENTRE})


@pytest.fixture()
def committed(engine: Engine, regional: Settings, sequencer: Any) -> Iterator[Callable[[], str]]:
    """Make a closed incident with three committed, sealed events; the centre is registered."""
    factory = session_factory(engine)
    with transaction(factory) as s:
        register_centre(session=s, code=CENTRE, url=None,
                        public_key_pem=regional.resolved_log_public_key.read_bytes())

    def make() -> str:
        with transaction(factory) as s:
            iid, ref = insert_incident(s, region=CENTRE, status="registered")
            append_event(session=s, incident_id=iid, kind="registered", actor="ct1",
                         data={"category": "theft"}, at=T0)
            s.execute(text("UPDATE incidents SET status = 'closed', disposition = '01', "
                           "closed_at = :t WHERE id = :i"), {"t": T0 + timedelta(minutes=9),
                                                             "i": iid})
            append_event(session=s, incident_id=iid, kind="closed", actor="d1",
                         data={"reason": "report taken"}, at=T0 + timedelta(minutes=9))
        sequencer.drain()  # type: ignore[attr-defined]
        return ref

    yield make


def _export(engine: Engine, regional: Settings, ref: str) -> dict[str, Any]:
    with session_factory(engine)() as s:
        [doc] = export_incidents(session=s, settings=regional, references=[ref])
    return json.loads(json.dumps(doc))


def _import(engine: Engine, settings: Settings, doc: Any) -> Any:
    with transaction(session_factory(engine)) as s:
        [r] = import_documents(session=s, docs=[doc], settings=settings)
    return r


def test_verified_import_is_witnessed_and_idempotent(
        engine: Engine, regional: Settings, committed: Callable[[], str]) -> None:
    """Import verifies every event against the signed head; again, nothing new is added."""
    ref = committed()
    doc = _export(engine, regional, ref)
    first = _import(engine, regional, doc)
    assert first.accepted, first.detail
    assert (first.events_new, first.events_seen) == (2, 0)
    again = _import(engine, regional, doc)
    assert again.accepted and again.events_new == 0 and again.incident_id == first.incident_id
    with session_factory(engine)() as s:
        row = s.execute(text("SELECT status, disposition, source, external_ref FROM incidents "
                             "WHERE id = :i"), {"i": first.incident_id}).one()
        heads = s.execute(text("SELECT max(tree_size) FROM federation_heads "
                               "WHERE centre_code = :c"), {"c": CENTRE}).scalar()
    assert tuple(row) == ("closed", "01", "eido", f"{CENTRE}:{ref}")
    assert heads == doc[LOG_EXTENSION]["treeHead"]["tree_size"]


def _body(doc: dict[str, Any], n: int) -> dict[str, Any]:
    return json.loads(doc[LOG_EXTENSION]["events"][n]["body"])


def _forge_category(doc: dict[str, Any]) -> None:
    doc["incidentComponent"]["incidentTypeInternalCode"] = "murder"


def _forge_description(doc: dict[str, Any]) -> None:
    doc["notesComponent"][0]["notesActionComments"] = "<p>nothing happened</p>"


def _recompute_event(doc: dict[str, Any]) -> None:
    # Edit the sealed state and re-spell the body canonically, as the project's code would.
    body = _body(doc, 1)
    body["state"]["incidents"][0]["category"] = "murder"
    doc[LOG_EXTENSION]["events"][1]["body"] = rfc8785.dumps(body).decode()
    doc["incidentComponent"]["incidentTypeInternalCode"] = "murder"


def _drop_event(doc: dict[str, Any]) -> None:
    doc[LOG_EXTENSION]["events"].pop(0)


def _own_head(doc: dict[str, Any]) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    head = TreeHead.from_dict(doc[LOG_EXTENSION]["treeHead"])
    forged = TreeHead(head.log_id, head.tree_size, "00" * 32, head.timestamp_ms)
    doc[LOG_EXTENSION]["treeHead"] = forged.sign(Ed25519PrivateKey.generate()).as_dict()


@pytest.mark.parametrize("forge", [_forge_category, _forge_description, _recompute_event,
                                   _drop_event, _own_head],
                         ids=["category", "description", "recomputed", "removed", "own_head"])
def test_forged_file_refused(engine: Engine, regional: Settings, committed: Callable[[], str],
                             forge: Callable[[dict[str, Any]], None]) -> None:
    """A changed body, a re-spelt event, a removed event or a self-signed head: refused and
    kept with the reason; nothing is imported."""
    ref = committed()
    doc = copy.deepcopy(_export(engine, regional, ref))
    forge(doc)
    r = _import(engine, regional, doc)
    assert not r.accepted and r.reason == "tampered", r
    with session_factory(engine)() as s:
        stored = s.execute(text("SELECT count(*) FROM incidents WHERE external_ref = :x"),
                           {"x": f"{CENTRE}:{ref}"}).scalar_one()
        kept = s.execute(text("SELECT reason, detail, document FROM federation_refusals "
                              "ORDER BY id DESC LIMIT 1")).one()
    assert stored == 0
    assert kept.reason == "tampered" and kept.detail == r.detail and ref in kept.document


def test_invented_incident_under_a_real_centre_refused(
        engine: Engine, regional: Settings, committed: Callable[[], str]) -> None:
    """A well-formed EIDO naming a registered centre as issuer but without its signed log."""
    committed()
    doc = copy.deepcopy(FOREIGN)
    doc["issuingElementIdentification"] = element_id(CENTRE)
    r = _import(engine, regional, doc)
    assert not r.accepted and r.reason == "tampered" and "proof" in r.detail


def test_foreign_eido_imported_with_report(engine: Engine, settings: Settings) -> None:
    """Another system's EIDO becomes an unverified incident; unmapped parts are reported."""
    r = _import(engine, settings, FOREIGN)
    assert r.accepted and r.centre is None
    assert any("personComponent" in u for u in r.unmapped)
    again = _import(engine, settings, FOREIGN)
    assert again.incident_id == r.incident_id
    with session_factory(engine)() as s:
        row = s.execute(text("SELECT category, status, priority, description, source, "
                             "ST_Y(location) AS lat FROM incidents WHERE id = :i"),
                        {"i": r.incident_id}).one()
        ev = s.execute(text("SELECT data FROM incident_events WHERE incident_id = :i "
                            "ORDER BY id DESC LIMIT 1"), {"i": r.incident_id}).scalar_one()
    assert (row.category, row.status, row.priority, row.source) == (
        "other", "assigned", 4, "eido")
    assert row.lat == pytest.approx(50.41) and "Window broken" in row.description
    assert ev["verified"] is False and ev["unmapped"] == r.unmapped


def test_schema_invalid_refused(engine: Engine, settings: Settings, db: Session) -> None:
    """A document that is not a valid EIDO is refused with the schema's words."""
    bad = {k: v for k, v in FOREIGN.items() if k != "agencyComponent"}
    r = _import(engine, settings, bad)
    assert not r.accepted and r.reason == "schema" and "agencyComponent" in r.detail


def test_batch_in_one_transaction(engine: Engine, regional: Settings,
                                  committed: Callable[[], str]) -> None:
    """Documents received in one transaction (as an STA-024 event message is): a refused one
    between them keeps the centre locked and the witnessed head right; the next is accepted,
    a repeat adds nothing, and the newest head is recorded once."""
    first, second = committed(), committed()
    factory = session_factory(engine)
    with factory() as s:  # proofs from what this centre witnessed before (earlier tests)
        since = s.execute(text("SELECT coalesce(max(tree_size), 0) FROM federation_heads "
                               "WHERE centre_code = :c"), {"c": CENTRE}).scalar_one()
        a, b = (json.loads(json.dumps(d)) for d in export_incidents(
            session=s, settings=regional, references=[first, second], from_size=since))
    assert a[LOG_EXTENSION]["treeHead"]["tree_size"] == b[LOG_EXTENSION]["treeHead"]["tree_size"]
    forged = copy.deepcopy(b)
    _forge_category(forged)
    with transaction(factory) as s:
        results = import_documents(session=s, docs=[forged], settings=regional)
        # the refusal's rollback did not release the lock
        with engine.connect() as other, pytest.raises(OperationalError,
                                                      match="could not obtain lock"):
            other.execute(text("SELECT 1 FROM federation_centres WHERE code = :c "
                               "FOR UPDATE NOWAIT"), {"c": CENTRE})
        results += import_documents(session=s, docs=[a, forged, b, a], settings=regional)
    assert [(r.accepted, r.reason) for r in results] == [
        (False, "tampered"), (True, ""), (False, "tampered"), (True, ""), (True, "")]
    assert [r.events_new for r in results if r.accepted] == [2, 2, 0]
    with factory() as s:
        heads = s.execute(text("SELECT tree_size FROM federation_heads WHERE centre_code = :c "
                               "ORDER BY tree_size"), {"c": CENTRE}).scalars().all()
        stored = s.execute(text("SELECT count(*) FROM incidents WHERE external_ref IN (:x, :y)"),
                           {"x": f"{CENTRE}:{first}", "y": f"{CENTRE}:{second}"}).scalar_one()
    assert heads[-1] == b[LOG_EXTENSION]["treeHead"]["tree_size"] and since < heads[-1]
    assert len(heads) == len(set(heads))
    assert stored == 2
