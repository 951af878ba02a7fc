"""EIDO import logic against a stand-in of ``geodispatch.incidents.chain``.

The real chain module belongs to the incidents domain (tests in ``test_roundtrip.py`` use it once
it exists). This stand-in implements the contract's rule, ``hash = sha256(prev_hash ||
canonical(content))``, so the import path (verify first, store a copy, append with origin,
idempotent re-import, nothing stored on failure) is tested regardless.
"""

from __future__ import annotations

import hashlib
import json
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.errors import InvalidInput
from geodispatch.federation.eido import EXTENSION
from geodispatch.federation.service import export_incidents, import_eido
from geodispatch.settings import Settings
from tests.federation.conftest import T0


@dataclass
class _Report:
    ok: bool
    checked: int
    first_broken_id: int | None
    reason: str | None


def _canonical(kind: str, actor: str, at: str, data: Any, incident_id: int) -> bytes:
    body = {"incident_id": incident_id, "kind": kind, "actor": actor,
            "at": datetime.fromisoformat(at).isoformat(), "data": data}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _make_chain(db: Session) -> types.ModuleType:
    mod = types.ModuleType("geodispatch.incidents.chain")
    state = {"head": "0" * 64}

    def append_event(*, session: Session, incident_id: int, kind: str, actor: str,
                     data: dict[str, Any], at: datetime | None = None) -> int:
        at_s = (at or T0).isoformat()
        h = hashlib.sha256(
            state["head"].encode() + _canonical(kind, actor, at_s, data, incident_id)
        ).hexdigest()
        eid = session.execute(
            text("INSERT INTO incident_events (incident_id, kind, actor, at, data, prev_hash, "
                 "hash) VALUES (:i, :k, :a, :at, CAST(:d AS jsonb), :p, :h) RETURNING id"),
            {"i": incident_id, "k": kind, "a": actor, "at": at or T0, "d": json.dumps(data),
             "p": state["head"], "h": h},
        ).scalar_one()
        state["head"] = h
        return int(eid)

    def verify_event_list(events: list[dict[str, Any]]) -> _Report:
        for n, e in enumerate(events):
            want = hashlib.sha256(
                e["prev_hash"].encode()
                + _canonical(e["kind"], e["actor"], e["at"], e["data"], e["incident_id"])
            ).hexdigest()
            if want != e["hash"]:
                return _Report(False, n, e["id"], "hash mismatch")
        return _Report(True, len(events), None, None)

    mod.append_event = append_event  # type: ignore[attr-defined]
    mod.verify_event_list = verify_event_list  # type: ignore[attr-defined]
    return mod


@pytest.fixture()
def standin(db: Session, monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    mod = _make_chain(db)
    monkeypatch.setitem(sys.modules, "geodispatch.incidents.chain", mod)
    yield mod


def _regional(db: Session, chain: types.ModuleType,
              make_incident: Callable[..., tuple[int, str]]) -> tuple[int, str]:
    iid, ref = make_incident(status="assigned")
    for minute, kind in enumerate(("registered", "queued", "assigned")):
        chain.append_event(session=db, incident_id=iid, kind=kind, actor="d1",
                           data={"step": minute}, at=T0 + timedelta(minutes=minute))
    return iid, ref


def _doc(db: Session, ref: str) -> dict[str, Any]:
    [doc] = export_incidents(session=db, references=[ref], system="reg")
    return json.loads(json.dumps(doc))


def test_import_stores_copy_and_is_idempotent(
    db: Session, settings: Settings, standin: types.ModuleType,
    make_incident: Callable[..., tuple[int, str]],
) -> None:
    """A verified EIDO becomes an 'eido' copy with every event; importing again adds nothing."""
    iid, ref = _regional(db, standin, make_incident)
    res = import_eido(session=db, doc=_doc(db, ref), settings=settings)
    assert res.created and res.events_added == res.events_checked == 3
    copy_ref, source, ext, status = db.execute(
        text("SELECT reference, source, external_ref, status FROM incidents WHERE id = :i"),
        {"i": res.incident_id}).one()
    assert (source, ext, status) == ("eido", f"reg:{ref}", "assigned")
    assert copy_ref != ref and copy_ref.startswith(ref[:20])  # reference taken here: suffixed
    again = import_eido(session=db, doc=_doc(db, ref), settings=settings)
    assert (again.created, again.events_added, again.incident_id) == (False, 0, res.incident_id)
    standin.append_event(session=db, incident_id=iid, kind="en_route", actor="P-1",
                         data={}, at=T0 + timedelta(minutes=5))
    assert import_eido(session=db, doc=_doc(db, ref), settings=settings).events_added == 1


def test_tampered_rejected_nothing_stored(
    db: Session, settings: Settings, standin: types.ModuleType,
    make_incident: Callable[..., tuple[int, str]],
) -> None:
    """A changed event fails verification before anything is written."""
    _, ref = _regional(db, standin, make_incident)
    doc = _doc(db, ref)
    doc[EXTENSION]["eventLog"][1]["data"]["step"] = 99
    with pytest.raises(InvalidInput, match="event log rejected"):
        import_eido(session=db, doc=doc, settings=settings)
    n = db.execute(text("SELECT count(*) FROM incidents WHERE external_ref = :x"),
                   {"x": f"reg:{ref}"}).scalar_one()
    assert n == 0


def test_malformed_and_empty_rejected(
    db: Session, settings: Settings, standin: types.ModuleType,
    make_incident: Callable[..., tuple[int, str]],
) -> None:
    """Non-EIDO objects and logs without events are refused."""
    with pytest.raises(InvalidInput):
        import_eido(session=db, doc={"hello": "world"}, settings=settings)
    _, ref = _regional(db, standin, make_incident)
    doc = _doc(db, ref)
    doc[EXTENSION]["eventLog"] = []
    with pytest.raises(InvalidInput, match="no event log"):
        import_eido(session=db, doc=doc, settings=settings)
