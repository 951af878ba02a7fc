"""The API's registrations take their reference number in the commit's own round trip
(``number_at_commit``): the numbers stay gap-free and exactly once, a failed commit gives its
number back, and the record of such an incident verifies."""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geodispatch.incidents.models import Incident
from geodispatch.incidents.record import close_at_commit
from geodispatch.incidents.schemas import IncidentCreate
from geodispatch.incidents.service import register_incident_ex
from geodispatch.notify.models import SmsMessage
from tests.helpers import record_findings


@pytest.fixture()
def region(engine: Engine) -> Iterator[str]:
    """A region of its own, so its counter starts at 1 whatever else ran."""
    code = "Z" + secrets.token_hex(3).upper()
    yield code
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM reference_counters WHERE region = :r"), {"r": code})


def _register(session: Session, region: str, what: str) -> Incident:
    incident, created = register_incident_ex(
        session=session, data=IncidentCreate(description=what, caller_phone="+380671112233",
                                             caller_lang="en", category="theft"),
        actor="ct", region=region, number_at_commit=True)
    assert created
    return incident


def _numbers(engine: Engine, region: str) -> list[int]:
    with engine.connect() as conn:
        refs = conn.execute(text("SELECT reference FROM incidents WHERE region = :r"),
                            {"r": region}).scalars().all()
    return sorted(int(r.rsplit("-", 1)[1]) for r in refs)


def test_the_number_is_taken_by_the_commit_and_the_record_verifies(
        engine: Engine, region: str) -> None:
    with Session(engine, expire_on_commit=False) as s:
        with s.begin():
            incident = _register(s, region, "number at commit")
            assert incident.reference.startswith("~"), "no number before the commit"
        assert re.fullmatch(rf"{region}-\d{{4}}-000001", incident.reference), incident.reference
        iid = incident.id
    with Session(engine) as s:
        row = s.get(Incident, iid)
        assert row is not None and row.reference == incident.reference
        body = s.execute(text("SELECT convert_from(body, 'UTF8') FROM incident_events "
                              "WHERE incident_id = :i AND kind = 'registered'"),
                         {"i": iid}).scalar_one()
        assert incident.reference in body and "~" not in body
        sms = s.execute(text("SELECT body FROM sms_outbox WHERE incident_id = :i"),
                        {"i": iid}).scalars().all()
        assert sms and all(incident.reference in b for b in sms), sms
        assert record_findings(s, iid) == []


def test_a_failed_commit_gives_its_number_back(engine: Engine, region: str) -> None:
    with Session(engine) as s:
        with pytest.raises(Exception, match="division by zero"), s.begin():
            _register(s, region, "this commit fails")
            # a second closing statement fails after the numbering one, in the same trip
            close_at_commit(s, "SELECT 1 / 0", {}, lambda row: None)
        with s.begin():  # the session is usable again, and the counter was not advanced
            _register(s, region, "this one commits")
    with Session(engine) as s, s.begin():
        _register(s, region, "rolled back by hand")
        s.rollback()
    assert _numbers(engine, region) == [1]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sms_outbox o JOIN incidents i "
                                 "ON i.id = o.incident_id WHERE i.region = :r"),
                            {"r": region}).scalar() == 1


def test_concurrent_registrations_are_numbered_gap_free_once_each(
        engine: Engine, region: str) -> None:
    errors: list[BaseException] = []
    refs: list[str] = []

    def writer(w: int) -> None:
        try:
            for i in range(25):
                with Session(engine, expire_on_commit=False) as s:
                    with s.begin():
                        incident = _register(s, region, f"writer {w} call {i}")
                    refs.append(incident.reference)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(set(refs)) == len(refs) == 200
    assert _numbers(engine, region) == list(range(1, 201))
    assert sorted(int(r.rsplit("-", 1)[1]) for r in refs) == list(range(1, 201))


def test_sms_of_an_incident_numbered_at_commit_says_the_number(
        engine: Engine, region: str) -> None:
    with Session(engine, expire_on_commit=False) as s:
        with s.begin():
            incident = _register(s, region, "sms body")
            queued = s.query(SmsMessage).filter_by(incident_id=incident.id).all()
        assert queued and all(incident.reference in m.body for m in queued)
