"""The record against the database superuser: every tamper is found and named.

The module runs on a database of its own (migrated from empty by the real migrations), so the
untouched record must verify exactly, and each tamper is judged by what the verification names.
Most tampers run in a superuser transaction that is rolled back afterwards; the truncate-and-
re-forge attack commits, with the sequencer and a fresh tree-head file, and runs last.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from geodispatch.db import admin_engine as make_admin_engine
from geodispatch.db import app_engine as make_app_engine
from geodispatch.dispatch.models import Assignment
from geodispatch.incidents.models import Incident
from geodispatch.incidents.record import append_event
from geodispatch.incidents.schemas import IncidentCreate
from geodispatch.incidents.service import register_incident
from geodispatch.incidents.verify import RecordReport, verify_record
from geodispatch.ledger.merkle import MerkleTree, verify_consistency, verify_inclusion
from geodispatch.ledger.offline import verify_export
from geodispatch.ledger.sequencer import LogInconsistent, Sequencer
from geodispatch.ledger.service import (
    centre_sequencer,
    consistency,
    export_lines,
    inclusion,
    public_key,
    witnesses,
)
from geodispatch.ledger.signing import generate_keypair, load_private_key
from geodispatch.migrate import upgrade
from geodispatch.settings import Settings
from geodispatch.tracking.models import Unit


@dataclass
class RecordDB:
    settings: Settings
    app: Engine
    admin: Engine
    incidents: dict[str, int]
    assignment_id: int

    def verify(self, session: Session | None = None, incident: str | None = None
               ) -> RecordReport:
        key = public_key(self.settings)
        iid = None if incident is None else self.incidents[incident]
        if session is not None:
            return verify_record(session=session, public_key=key,
                                 witnesses=witnesses(self.settings, key), incident_id=iid)
        with Session(self.app) as s:
            return verify_record(session=s, public_key=key,
                                 witnesses=witnesses(self.settings, key), incident_id=iid)

    def sequencer(self) -> Sequencer:
        return centre_sequencer(self.settings, self.admin)

    def seal(self) -> int:
        seq = self.sequencer()
        seq.open()
        try:
            return seq.drain()
        finally:
            seq.close()


def _url(base: str, name: str) -> str:
    return make_url(base).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def record_db(settings: Settings, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[RecordDB]:
    name = f"gd_record_{uuid.uuid4().hex[:8]}"
    tmp = tmp_path_factory.mktemp("record")
    root = create_engine(settings.admin_database_url, isolation_level="AUTOCOMMIT")
    with root.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    s = Settings(database_url=_url(settings.database_url, name),
                 admin_database_url=_url(settings.admin_database_url, name),
                 log_signing_key=tmp / "keys" / "log.pem", log_public_key=tmp / "keys" / "pub.pem",
                 log_tree_head_file=tmp / "centre" / "heads.jsonl",
                 log_witnesses=[f"file:{tmp / 'elsewhere' / 'witness.jsonl'}"])
    try:
        e = create_engine(s.admin_database_url)
        with e.begin() as conn:
            conn.execute(text("CREATE EXTENSION postgis"))
        e.dispose()
        upgrade(s)
        generate_keypair(s.resolved_log_signing_key, s.resolved_log_public_key)
        app, admin = make_app_engine(s), make_admin_engine(s)
        incidents: dict[str, int] = {}
        with Session(app) as session:
            unit = Unit(call_sign=f"P-{uuid.uuid4().hex[:6]}", region="KV", device_id=uuid.uuid4().hex,
                        device_token_hash="x")
            session.add(unit)
            for label in ("A", "B", "C"):
                inc = register_incident(session=session, settings=s, actor="ct1", data=IncidentCreate(
                    lat=50.45, lng=30.52, category="theft", caller_phone="+380671112233",
                    description=f"call {label}", idempotency_key=uuid.uuid4().hex))
                incidents[label] = inc.id
            session.commit()
            # Interleave: A, B, C, A, B, C, ... so each incident's events sit between the others'.
            for i in range(3):
                for label in ("A", "B", "C"):
                    append_event(session=session, incident_id=incidents[label], kind="note",
                                 actor="d1", data={"text": f"note {i}", "ключ": "значення"})
                    session.commit()
            a = Assignment(incident_id=incidents["A"], unit_id=unit.id, created_by="d1",
                           eta_s=120.0, distance_m=900.0, is_lead=True)
            session.add(a)
            session.flush()
            a.en_route_at = datetime.now(UTC)
            a.on_scene_at = datetime.now(UTC) + timedelta(minutes=4)
            append_event(session=session, incident_id=incidents["A"], kind="assigned",
                         actor="d1", data={"unit": unit.call_sign})
            session.commit()
            assignment_id = a.id
        db = RecordDB(s, app, admin, incidents, assignment_id)
        db.seal()
        yield db
        app.dispose()
        admin.dispose()
    finally:
        with root.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        root.dispose()


@pytest.fixture()
def attacker(record_db: RecordDB) -> Iterator[Session]:
    """The superuser with triggers and foreign keys off; everything is rolled back after."""
    with record_db.admin.connect() as conn:
        tx = conn.begin()
        session = Session(bind=conn)
        session.execute(text("SET LOCAL session_replication_role = replica"))
        try:
            yield session
        finally:
            session.close()
            tx.rollback()


def _names(report: RecordReport, incident_id: int | None = None) -> list[str]:
    return [f.what for f in report.findings
            if incident_id is None or f.incident_id == incident_id]


def test_the_untouched_record_verifies(record_db: RecordDB) -> None:
    report = record_db.verify()
    assert report.ok, report.findings
    assert report.pending == 0 and report.sealed == report.events == report.tree_size
    assert report.heads_checked >= 3  # the database's heads, the centre's file, the witness


def test_the_database_spells_every_row_as_the_record_does(record_db: RecordDB,
                                                          attacker: Session) -> None:
    """The fast comparison's state, written by SQL, is byte for byte the RFC 8785 form of
    :func:`project`'s, also for awkward values (otherwise every incident would take the slow
    path); a float SQL spells otherwise still verifies, through the exact path."""
    import rfc8785

    from geodispatch.incidents.record import project
    from geodispatch.incidents.verify import _canonical_states, _fast_projection

    a, b = record_db.incidents["A"], record_db.incidents["B"]
    attacker.execute(text(
        "UPDATE incidents SET description = E'кв. 5 \"ліворуч\"\\n\\t\\\\\x01\x7f\U0001F6A8 \uE000', "
        "address = NULL, h3 = 9007199254740993, priority = -3, closed_at = "
        "'0999-01-02 03:04:05.000001+00', location = ST_SetSRID(ST_MakePoint(-0.5, 1e-7), 4326) "
        "WHERE id = :i"), {"i": b})
    attacker.execute(text(
        "UPDATE assignments SET eta_s = 0.1 + 0.2, distance_m = 1e300, override_reason = '', "
        "cancelled_at = now() WHERE incident_id = :i"), {"i": a})
    fast = _fast_projection(attacker, None)
    assert fast is not None
    states = list(_canonical_states(attacker, fast))
    exact = project(attacker, [iid for iid, _s, _r in states])
    assert len(states) >= 3
    for iid, canonical, reference in states:
        assert canonical == rfc8785.dumps(exact[iid]), iid
        assert reference == exact[iid]["incidents"][0]["reference"]
    # 1e16: RFC 8785 writes 10000000000000000, PostgreSQL 1e+16. The exact path agrees.
    attacker.execute(text("UPDATE assignments SET eta_s = 1e16 WHERE incident_id = :i"), {"i": a})
    attacker.execute(text("SET LOCAL session_replication_role = DEFAULT"))  # the queue trigger
    append_event(session=Session(bind=attacker.connection()), incident_id=a, kind="note",
                 actor="d1", data={"text": "a far crew"})
    report = record_db.verify(attacker, "A")
    assert report.ok, report.findings


def test_verification_without_copy_reports_the_same(record_db: RecordDB) -> None:
    """With a driver that has no COPY stream (psycopg2) the same rows are read by queries."""
    url = make_url(record_db.settings.database_url).set(drivername="postgresql+psycopg2")
    eng = create_engine(url)
    try:
        with Session(eng) as s:
            slow = record_db.verify(s)
            assert s.execute(text("SELECT 1")).scalar() == 1  # the session is left as it was
    finally:
        eng.dispose()
    fast = record_db.verify()
    assert slow.ok and fast.ok, (slow.findings, fast.findings)
    assert (slow.events, slow.sealed, slow.tree_size) == (fast.events, fast.sealed, fast.tree_size)


def test_every_incident_column_is_covered(record_db: RecordDB, attacker: Session) -> None:
    iid = record_db.incidents["B"]
    cols = attacker.execute(text(
        "SELECT column_name, udt_name FROM information_schema.columns "
        "WHERE table_name = 'incidents' AND column_name <> 'id' ORDER BY ordinal_position")).all()
    assert len(cols) > 20
    for col, udt in cols:
        attacker.execute(text("SAVEPOINT t"))
        attacker.execute(text(f"UPDATE incidents SET {col} = {_changed(col, udt)} WHERE id = :i"),
                         {"i": iid})
        report = record_db.verify(attacker, "B")
        found = [w for w in _names(report, iid) if f"incidents.{col} " in w]
        assert found, f"changing incidents.{col} was not detected: {report.findings}"
        attacker.execute(text("ROLLBACK TO SAVEPOINT t"))


def test_every_assignment_column_is_covered(record_db: RecordDB, attacker: Session) -> None:
    iid = record_db.incidents["A"]
    cols = attacker.execute(text(
        "SELECT column_name, udt_name FROM information_schema.columns "
        "WHERE table_name = 'assignments' AND column_name NOT IN ('id', 'incident_id') "
        "ORDER BY ordinal_position")).all()
    for col, udt in cols:
        attacker.execute(text("SAVEPOINT t"))
        attacker.execute(text(f"UPDATE assignments SET {col} = {_changed(col, udt)} "
                              "WHERE id = :a"), {"a": record_db.assignment_id})
        report = record_db.verify(attacker, "A")
        assert any(f"assignments.{col} " in w for w in _names(report, iid)), \
            f"changing assignments.{col} was not detected: {report.findings}"
        attacker.execute(text("ROLLBACK TO SAVEPOINT t"))
    # Moving the assignment to another incident is named on both.
    attacker.execute(text("UPDATE assignments SET incident_id = :b WHERE id = :a"),
                     {"b": record_db.incidents["B"], "a": record_db.assignment_id})
    report = record_db.verify(attacker)
    assert _names(report, iid) and _names(report, record_db.incidents["B"])


def _changed(col: str, udt: str) -> str:
    """An SQL expression giving ``col`` a different value of its own type."""
    if udt in ("int4", "int8", "int2"):
        return f"coalesce({col}, 0) + 1"
    if udt in ("float8", "float4", "numeric"):
        return f"coalesce({col}, 0) + 1.5"
    if udt == "bool":
        return f"NOT coalesce({col}, false)"
    if udt == "timestamptz":
        return f"coalesce({col}, now()) + interval '25 minutes'"
    if udt == "geometry":
        return "ST_SetSRID(ST_MakePoint(30.8, 50.45), 4326)"  # about 20 km east
    if udt == "jsonb":
        return "'{\"forged\": true}'::jsonb"
    if udt == "_varchar":
        return "ARRAY['forged']::varchar[]"
    if udt in ("varchar", "text"):
        return f"left('X' || coalesce({col}, ''), 5)"
    raise AssertionError(f"no tamper for type {udt} ({col})")


@pytest.mark.parametrize("column,expr", [
    ("kind", "'closed'"), ("actor", "'someone_else'"), ("at", "at - interval '25 minutes'"),
    ("data", "'{\"text\": \"forged\"}'::jsonb"), ("incident_seq", "incident_seq + 100"),
])
def test_an_edited_event_column_is_named(record_db: RecordDB, attacker: Session, column: str,
                                         expr: str) -> None:
    iid = record_db.incidents["B"]
    attacker.execute(text(f"UPDATE incident_events SET {column} = {expr} WHERE id = "
                          "(SELECT id FROM incident_events WHERE incident_id = :i "
                          "AND incident_seq = 2)"), {"i": iid})
    report = record_db.verify(attacker)
    assert any(f"column {column} is" in w for w in _names(report, iid)), report.findings


def test_an_edited_sealed_body_is_caught(record_db: RecordDB, attacker: Session) -> None:
    iid = record_db.incidents["C"]
    attacker.execute(text(
        "UPDATE incident_events SET body = convert_to(replace(convert_from(body, 'UTF8'), "
        "'\"theft\"', '\"lost_property\"'), 'UTF8') WHERE incident_id = :i AND incident_seq = 1"),
        {"i": iid})
    assert any("body was changed after it was sealed" in w
               for w in _names(record_db.verify(attacker), iid))


@pytest.mark.parametrize("which", ["first", "middle", "last"])
def test_a_deleted_event_is_named_on_its_own_incident(record_db: RecordDB, attacker: Session,
                                                      which: str) -> None:
    iid = record_db.incidents["B"]
    n = attacker.execute(text("SELECT max(incident_seq) FROM incident_events "
                              "WHERE incident_id = :i"), {"i": iid}).scalar_one()
    seq = {"first": 1, "middle": 2, "last": n}[which]
    eid = attacker.execute(text("SELECT id FROM incident_events WHERE incident_id = :i "
                                "AND incident_seq = :s"), {"i": iid, "s": seq}).scalar_one()
    attacker.execute(text("DELETE FROM log_leaves WHERE event_id = :e"), {"e": eid})
    attacker.execute(text("DELETE FROM incident_events WHERE id = :e"), {"e": eid})
    report = record_db.verify(attacker)
    mine = _names(report, iid)
    assert any(f"#{seq} of" in w for w in mine), report.findings
    # Nobody else is blamed for it.
    for other in ("A", "C"):
        assert not _names(report, record_db.incidents[other]), report.findings
    # And the log itself shows the hole (a missing leaf breaks the signed root).
    assert any("missing from the log" in w or "signed root" in w for w in _names(report))


def test_a_deleted_event_whose_leaf_stays_is_named(record_db: RecordDB,
                                                   attacker: Session) -> None:
    iid = record_db.incidents["A"]
    attacker.execute(text("DELETE FROM incident_events WHERE incident_id = :i "
                          "AND incident_seq = 1"), {"i": iid})
    report = record_db.verify(attacker)
    assert any("was deleted" in w for w in _names(report))
    assert any("#1 of" in w for w in _names(report, iid))


def test_reordered_leaves_are_caught(record_db: RecordDB, attacker: Session) -> None:
    attacker.execute(text("UPDATE log_leaves SET seq = -1 WHERE seq = 2"))
    attacker.execute(text("UPDATE log_leaves SET seq = 2 WHERE seq = 3"))
    attacker.execute(text("UPDATE log_leaves SET seq = 3 WHERE seq = -1"))
    report = record_db.verify(attacker)
    assert any("signed root" in w for w in _names(report)), report.findings


def test_reordered_event_bodies_are_caught(record_db: RecordDB, attacker: Session) -> None:
    iid = record_db.incidents["C"]
    attacker.execute(text(
        "UPDATE incident_events e SET body = o.body FROM incident_events o "
        "WHERE e.incident_id = :i AND o.incident_id = :i AND e.incident_seq = 2 "
        "AND o.incident_seq = 3"), {"i": iid})
    assert _names(record_db.verify(attacker), iid)


def test_a_quiet_row_change_shows_both_values(record_db: RecordDB, attacker: Session) -> None:
    iid = record_db.incidents["A"]
    attacker.execute(text("UPDATE incidents SET category = 'lost_property' WHERE id = :i"),
                     {"i": iid})
    report = record_db.verify(attacker, "A")
    (what,) = [w for w in _names(report, iid) if "incidents.category" in w]
    assert "'lost_property'" in what and "'theft'" in what
    assert report.findings[0].reference and report.findings[0].reference.startswith("KV-")


def test_an_incident_without_events_and_a_hidden_report(record_db: RecordDB,
                                                        attacker: Session) -> None:
    # A row inserted outside the record ...
    attacker.execute(text(
        "INSERT INTO incidents (reference, region, received_at, location, h3, category, "
        "original_category, priority, status, description, created_by, caller_lang, "
        "sms_opt_out, source) SELECT 'KV-1999-000001', region, received_at, location, h3, "
        "category, original_category, priority, status, description, created_by, caller_lang, "
        "sms_opt_out, source FROM incidents WHERE id = :i"), {"i": record_db.incidents["A"]})
    # ... and a report made to disappear: its rows, its events and its leaves.
    b = record_db.incidents["B"]
    ref = attacker.execute(text("SELECT reference FROM incidents WHERE id = :i"),
                           {"i": b}).scalar_one()
    attacker.execute(text("DELETE FROM log_leaves WHERE event_id IN "
                          "(SELECT id FROM incident_events WHERE incident_id = :i)"), {"i": b})
    attacker.execute(text("DELETE FROM incident_events WHERE incident_id = :i"), {"i": b})
    attacker.execute(text("DELETE FROM incidents WHERE id = :i"), {"i": b})
    report = record_db.verify(attacker)
    names = _names(report)
    assert any("inserted outside the record" in w for w in names)
    assert any(f"reference {ref} was issued but no incident has it" in w for w in names), names


def test_the_owner_disabling_the_queue_trigger_is_caught(record_db: RecordDB) -> None:
    iid = record_db.incidents["C"]
    with record_db.admin.connect() as conn:
        tx = conn.begin()
        session = Session(bind=conn)
        session.execute(text("ALTER TABLE incident_events DISABLE TRIGGER incident_events_queue"))
        append_event(session=session, incident_id=iid, kind="note", actor="owner",
                     data={"text": "slipped in"})
        report = record_db.verify(session)
        session.close()
        tx.rollback()
    assert any("neither sealed nor queued" in w for w in _names(report, iid)), report.findings


def test_app_role_cannot_write_the_sealed_log(record_db: RecordDB) -> None:
    for sql in ("INSERT INTO tree_heads VALUES (999999, 'x', 0, 'x', 'x')",
                "DELETE FROM log_leaves", "DELETE FROM log_pending",
                "UPDATE incident_events SET actor = 'x'"):
        with record_db.app.connect() as conn, pytest.raises(DBAPIError, match="permission denied"):
            conn.execute(text(sql))


def test_inclusion_proofs_and_the_standalone_verifier(record_db: RecordDB, tmp_path: Path
                                                      ) -> None:
    key = public_key(record_db.settings)
    out = tmp_path / "log.jsonl"
    with Session(record_db.app) as s:
        out.write_bytes(b"".join(export_lines(session=s, key=key)))
        eid = s.execute(text("SELECT max(event_id) FROM log_leaves")).scalar_one()
        proof = inclusion(session=s, event_id=int(eid))
    assert proof["proof"] and proof["tree_head"]["tree_size"] > proof["seq"]
    rep = verify_export(out, key)
    assert rep.ok, rep.problems
    assert rep.events == rep.tree_size > 10

    # Through the command line, in a process that must not load the database layer.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    code = ("import sys; from geodispatch.cli import main; rc = main(['verify-log', '--export', "
            f"{str(out)!r}, '--public-key', {str(record_db.settings.resolved_log_public_key)!r}]);"
            "import json; print('LOADED', json.dumps(sorted(m for m in sys.modules "
            "if m.startswith(('sqlalchemy', 'psycopg', 'geodispatch.incidents.models'))))); "
            "sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "exported log OK" in r.stdout
    loaded = r.stdout.split("LOADED", 1)[1]
    assert "psycopg" not in loaded and "geodispatch.incidents.models" not in loaded

    # Any single altered byte fails: try one in the header, in a body, and in the spacing.
    data = out.read_bytes()
    body_at = data.index(b'theft') + 1
    for pos, new in ((20, None), (body_at, None), (data.index(b'{"body"') + 8, b" ")):
        forged = bytearray(data)
        forged[pos] = (forged[pos] ^ 0x01) if new is None else new[0]
        bad = tmp_path / f"bad{pos}.jsonl"
        bad.write_bytes(bytes(forged))
        assert not verify_export(bad, key).ok, pos
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(data[: data.rindex(b"\n", 0, len(data) - 1) + 1])
    assert not verify_export(cut, key).ok


def test_proofs_read_from_stored_nodes_match_the_whole_tree(record_db: RecordDB) -> None:
    """Every event's inclusion proof and consistency proofs between heads, as the API reads them
    from ``log_nodes``, equal the whole tree's and verify against the signed roots; a log whose
    nodes are missing gets the same proofs from its leaves, and the sequencer fills them in."""
    for i in range(40):  # enough leaves for several levels, sealed in uneven batches
        with Session(record_db.app) as session:
            append_event(session=session, incident_id=record_db.incidents["C"], kind="note",
                         actor="ct1", data={"text": f"proof {i}"})
            session.commit()
        if i % 7 == 3:
            record_db.seal()
    record_db.seal()
    with Session(record_db.app) as s:
        leaves = [bytes(h) for (h,) in s.execute(text("SELECT leaf_hash FROM log_leaves "
                                                      "ORDER BY seq"))]
        whole = MerkleTree(leaves)
        sizes = [int(n) for (n,) in s.execute(text("SELECT tree_size FROM tree_heads "
                                                   "ORDER BY tree_size"))]
        events = s.execute(text("SELECT event_id, seq FROM log_leaves ORDER BY seq")).all()
        for eid, seq in events:
            got = inclusion(session=s, event_id=int(eid))
            size = got["tree_head"]["tree_size"]  # type: ignore[index]
            proof = [bytes.fromhex(p) for p in got["proof"]]  # type: ignore[attr-defined]
            assert proof == whole.inclusion_proof(int(seq), size)
            assert verify_inclusion(leaves[int(seq)], int(seq), size, proof, whole.root(size))
        for old, new in zip(sizes, sizes[3:], strict=False):
            got_c = [bytes.fromhex(p) for p in consistency(session=s, old_size=old,
                                                            new_size=new)]
            assert got_c == whole.consistency_proof(old, new)
            assert verify_consistency(old, new, whole.root(old), whole.root(new), got_c)
    # A log sealed before nodes were stored: the proofs come from the leaves instead.
    with record_db.admin.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("DELETE FROM log_nodes WHERE level >= 2"))
    with Session(record_db.app) as s:
        eid, seq = events[5]
        got = inclusion(session=s, event_id=int(eid))
        assert [bytes.fromhex(p) for p in got["proof"]] == whole.inclusion_proof(  # type: ignore[attr-defined]
            int(seq), got["tree_head"]["tree_size"])  # type: ignore[index]
    seq = record_db.sequencer()  # ... and the next sequencer start stores them again
    seq.open()
    seq.close()
    with record_db.admin.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM log_nodes")).scalar_one()
    assert n == sum(len(level) for level in whole.levels[1:])


def test_one_incident_export_proves_each_event(record_db: RecordDB, tmp_path: Path) -> None:
    key = public_key(record_db.settings)
    out = tmp_path / "one.jsonl"
    with Session(record_db.app) as s:
        out.write_bytes(b"".join(export_lines(session=s, key=key,
                                              incident_id=record_db.incidents["A"])))
    rep = verify_export(out, key)
    assert rep.ok and rep.events == 5, rep.problems


def test_concurrent_writers_lose_nothing_and_the_log_verifies(record_db: RecordDB) -> None:
    """8 writers x 1,000 events, two of them on one shared incident, while the sequencer seals."""
    with Session(record_db.app) as s:
        before = s.execute(text("SELECT count(*) FROM incident_events")).scalar_one()
        own = []
        for w in range(8):
            inc = register_incident(session=s, settings=record_db.settings, actor="ct",
                                    data=IncidentCreate(lat=50.4, lng=30.5, category="theft",
                                                        description=f"writer {w}"))
            own.append(inc.id)
        s.commit()
    errors: list[BaseException] = []
    stop = threading.Event()
    seq = record_db.sequencer()
    seq.open()
    sealer = threading.Thread(target=seq.run, args=(stop, 0.05))
    sealer.start()

    def writer(w: int) -> None:
        try:
            with Session(record_db.app) as s:
                for i in range(1000):
                    target = own[0] if w < 2 else own[w]  # writers 0 and 1 share an incident
                    append_event(session=s, incident_id=target, kind="note", actor=f"w{w}",
                                 data={"i": i})
                    s.commit()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    stop.set()
    sealer.join(timeout=60)
    seq.drain()
    seq.close()
    assert not errors, errors[:3]
    report = record_db.verify()
    assert report.ok, report.findings[:5]
    assert report.events - before == 8000 + 8 + 0  # 8 registrations + 8,000 notes
    with Session(record_db.app) as s:
        shared = s.execute(text("SELECT count(*), max(incident_seq) FROM incident_events "
                                "WHERE incident_id = :i"), {"i": own[0]}).one()
    assert shared[0] == shared[1] == 2001


def test_a_sequencer_that_lost_its_lock_stops_instead_of_forking_the_log(record_db: RecordDB
                                                                          ) -> None:
    """Sequencer A's lock connection is killed; B takes over and seals; A must not seal on."""
    a = record_db.sequencer()
    a.open()
    try:
        a.drain()
        assert a._lock_conn is not None
        pid = a._lock_conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with record_db.admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        with Session(record_db.app) as session:
            append_event(session=session, incident_id=record_db.incidents["B"], kind="note",
                         actor="ct1", data={"text": "sealed by B"})
            session.commit()
        assert record_db.seal() == 1  # B: a fresh sequencer, the lock was free again
        with Session(record_db.app) as session:
            append_event(session=session, incident_id=record_db.incidents["B"], kind="note",
                         actor="ct1", data={"text": "A must not seal this"})
            session.commit()
        with pytest.raises(LogInconsistent, match="another sequencer"):
            a.seal_once()
    finally:
        a._lock_conn = None  # its connection is gone
    assert record_db.seal() == 1
    assert record_db.verify().ok


def test_truncated_and_reforged_log_is_refused_by_the_witness(record_db: RecordDB) -> None:
    """Runs last: commits a forged history, re-seals it with the centre's own key and code, and
    starts a fresh tree-head file on the centre's host. The witness elsewhere refuses it."""
    iid = record_db.incidents["A"]
    with record_db.admin.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("TRUNCATE log_pending, log_leaves, log_nodes, tree_heads"))
        conn.execute(text("DELETE FROM incident_events"))
        conn.execute(text("UPDATE incidents SET event_count = 0, category = 'lost_property', "
                          "original_category = 'lost_property'"))
        session = Session(bind=conn)
        for label, i in sorted(record_db.incidents.items()):
            append_event(session=session, incident_id=i, kind="registered", actor="ct1")
        session.execute(text("INSERT INTO log_pending (event_id) SELECT id FROM incident_events"))
        session.flush()
        session.info.clear()
    record_db.settings.resolved_log_tree_head_file.unlink()  # a fresh anchor file
    with pytest.raises(LogInconsistent, match="witness"):
        record_db.seal()
    # Even a sequencer that only knows the fresh file seals happily ...
    key = load_private_key(record_db.settings.resolved_log_signing_key)
    local = Sequencer(record_db.admin, key, witnesses(record_db.settings, public_key(
        record_db.settings))[:1])
    local.open()
    local.drain()
    local.close()
    # ... but verification consults the witness, and names what happened.
    report = record_db.verify()
    assert not report.ok
    assert any("cut off" in w or "signed root" in w for w in _names(report)), report.findings
    _ = iid, Incident, Any
