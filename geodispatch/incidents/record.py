"""The incident record: events that carry the state they leave, in canonical bytes.

Every change to an incident is an :class:`IncidentEvent` appended here, in the caller's own
transaction and without any global lock: the only lock taken is the incident's own row (to give
the event its ``incident_seq``). The event's ``body`` is RFC 8785 JSON::

    {"v": 1, "incident_id": 7, "incident_seq": 3, "kind": "assigned", "actor": "d1",
     "at": "2026-11-29T07:30:00.123456+00:00", "data": {...},
     "state": {"incidents": [{<every column of the incident row>}],
               "assignments": [{<every column>}, ...]}}

``state`` is what every projected row of that incident looks like once the event is applied.
Verification compares the newest event's state with the rows as they are, column by column, so
a row changed by anyone without an event (a superuser's UPDATE included) shows up, named. The
sequencer (:mod:`geodispatch.ledger.sequencer`) seals the bodies into the signed Merkle log a few
times a second.

Callers change the rows first and then call :func:`append_event`. As a safety net, a commit in
which an incident's projected rows changed after its last event (or without any event) appends
an ``amended`` event carrying the final state, so the record never silently lags behind.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import rfc8785
from geoalchemy2.elements import WKBElement
from sqlalchemy import Table, event, insert, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

import geodispatch.models  # noqa: F401  (every table: a projected one missing would drop out)
from geodispatch.db import Base
from geodispatch.incidents.models import Incident, IncidentEvent
from geodispatch.settings import get_settings

BODY_VERSION = 1
#: Tables projected from an incident's events, and the column that names the incident.
PROJECTED_TABLES: dict[str, str] = {"incidents": "id", "assignments": "incident_id"}
#: Personal data the record commits to without disclosing it (the log travels to auditors and
#: the national centre): the state holds ``hmac-sha256:<hex>`` of the value under the centre's
#: record pepper, so a changed value is still detected and the number itself never leaves.
SEALED_COLUMNS = frozenset({("incidents", "caller_phone"), ("calls", "caller_phone"),
                            ("call_callbacks", "phone"), ("call_locations", "phone"),
                            ("call_locations", "raw"), ("crew_shifts", "token_hash")})
#: Tables projected from a call's events (a call is a subject of the record of its own, from its
#: first ring: most calls never become an incident), and the column that names the call.
CALL_PROJECTED_TABLES: dict[str, str] = {"calls": "id", "call_callbacks": "call_id",
                                         "call_locations": "call_id"}
#: Tables projected from a unit's crew-roster events (who signed on to the car, who off), and
#: the column that names the unit.
ROSTER_PROJECTED_TABLES: dict[str, str] = {"crew_shifts": "unit_id"}
_SAFE_INT = 2**53 - 1
_INFO_STATE = "geodispatch.record.state"
_INFO_TOUCHED = "geodispatch.record.touched"


def iso_utc(at: datetime) -> str:
    """``2026-11-29T07:30:00.123456+00:00``: one spelling for one instant."""
    if at.tzinfo is None:
        raise ValueError("event times must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def json_value(v: Any) -> Any:
    """A column value as the record spells it (RFC 8785 can encode every result).

    Times in UTC with microseconds, geometries as hex EWKB, integers beyond 2**53 and non-finite
    floats as strings (JSON numbers cannot carry them exactly), JSON columns as they are.
    """
    if v is None or isinstance(v, bool | str):
        return v
    if isinstance(v, int):
        return v if -_SAFE_INT <= v <= _SAFE_INT else str(v)
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, datetime):
        return iso_utc(v)
    if isinstance(v, WKBElement):
        data = v.data
        return data.hex() if isinstance(data, bytes | memoryview) else str(data).lower()
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, bytes | memoryview):
        return bytes(v).hex()
    if isinstance(v, dict | list):
        return normalise(v)
    return str(v)


def normalise(data: Any) -> Any:
    """JSON values as JSONB gives them back (tuples → lists, keys → strings); no NaN."""
    return json.loads(json.dumps(data, ensure_ascii=False, allow_nan=False, default=str))


_peppers: dict[str, bytes] = {}


def _pepper() -> bytes:
    path = get_settings().resolved_record_pepper
    key = str(path)
    if key not in _peppers:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(secrets.token_bytes(32))
        _peppers[key] = path.read_bytes()
    return _peppers[key]


def sealed_value(table: str, column: str, row_id: Any, value: Any) -> Any:
    """The commitment the record keeps for a personal value (None stays None)."""
    if value is None:
        return None
    msg = f"{table}.{column}:{row_id}:{value}".encode()
    return "hmac-sha256:" + hmac.new(_pepper(), msg, hashlib.sha256).hexdigest()


def _table(name: str) -> Table:
    # Every domain's tables are in the metadata (geodispatch.models, imported above); a
    # projected table missing from it is a KeyError, never a table silently left out.
    return Base.metadata.tables[name]


def project(session: Session, incident_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The projected state of each incident as it is in the database now."""
    return _project(session, PROJECTED_TABLES, incident_ids)


def project_calls(session: Session, call_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The projected state of each call (its row, callbacks, matched locations) now."""
    return _project(session, CALL_PROJECTED_TABLES, call_ids)


def project_rosters(session: Session, unit_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The projected state of each unit's crew roster (its shifts) now."""
    return _project(session, ROSTER_PROJECTED_TABLES, unit_ids)


def _project(session: Session, tables: Mapping[str, str], ids: Sequence[int]
             ) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {int(i): {t: [] for t in tables} for i in ids}
    if not out:
        return out
    for name, key in tables.items():
        table = _table(name)
        cols = list(table.columns)
        order = [c for c in table.primary_key.columns]
        rows = session.execute(
            select(*cols).where(table.c[key].in_(list(out))).order_by(*order)
        ).all()
        sealed = [c.name for c in cols if (name, c.name) in SEALED_COLUMNS]
        for row in rows:
            rec = {c.name: json_value(row[i]) for i, c in enumerate(cols)}
            for col in sealed:
                rec[col] = sealed_value(name, col, rec.get("id"), rec[col])
            iid = int(row[cols.index(table.c[key])])
            out[iid][name].append(rec)
    return out


def event_body(*, incident_id: int, incident_seq: int, kind: str, actor: str, at: datetime,
               data: Mapping[str, Any], state: Mapping[str, Any]) -> bytes:
    """The canonical bytes of one event (the Merkle leaf)."""
    return rfc8785.dumps({"v": BODY_VERSION, "incident_id": incident_id,
                          "incident_seq": incident_seq, "kind": kind, "actor": actor,
                          "at": iso_utc(at), "data": data, "state": state})


@dataclass
class PendingEvent:
    """An event whose incident state is projected but which is not written yet.

    :func:`prepare_event` takes the incident's next ``incident_seq`` and projects its rows;
    :func:`write_event` builds the canonical body and inserts it. Between the two a caller may
    fill in incident columns it writes last with :meth:`set_incident` (registration takes the
    region's reference number there, so the counter row is locked only for the last few writes
    before the commit).
    """

    incident_id: int
    incident_seq: int
    kind: str
    actor: str
    at: datetime
    data: dict[str, Any]
    state: dict[str, Any]

    def set_incident(self, session: Session, **columns: Any) -> None:
        """Write ``columns`` of the incident row now and put them into the event's state."""
        session.execute(update(Incident).where(Incident.id == self.incident_id)
                        .values(**columns).execution_options(synchronize_session=False))
        cached = session.identity_map.get(identity_key(Incident, self.incident_id))
        row = self.state["incidents"][0]
        for name, value in columns.items():
            if cached is not None:
                set_committed_value(cached, name, value)
            v = json_value(value)
            row[name] = sealed_value("incidents", name, row.get("id"), v) \
                if ("incidents", name) in SEALED_COLUMNS else v


def prepare_event(*, session: Session, incident_id: int, kind: str, actor: str,
                  data: Mapping[str, Any] | None = None, at: datetime | None = None
                  ) -> PendingEvent:
    """Number the incident's next event and project its rows (see :func:`append_event`)."""
    when = (at or datetime.now(UTC)).astimezone(UTC)
    payload = normalise(dict(data or {}))
    session.flush()
    seq = session.execute(
        text("UPDATE incidents SET event_count = event_count + 1 WHERE id = :i "
             "RETURNING event_count"), {"i": incident_id}
    ).scalar()
    if seq is None:
        raise LookupError(f"incident {incident_id} does not exist")
    cached = session.identity_map.get(identity_key(Incident, incident_id))
    if cached is not None:
        set_committed_value(cached, "event_count", int(seq))
    state = project(session, [incident_id])[incident_id]
    return PendingEvent(incident_id=incident_id, incident_seq=int(seq), kind=kind, actor=actor,
                        at=when, data=payload, state=state)


def write_event(*, session: Session, pending: PendingEvent,
                data: Mapping[str, Any] | None = None) -> int:
    """Insert a prepared event (``data`` adds to what it says) and return its id."""
    payload = {**pending.data, **normalise(dict(data or {}))}
    body = event_body(incident_id=pending.incident_id, incident_seq=pending.incident_seq,
                      kind=pending.kind, actor=pending.actor, at=pending.at, data=payload,
                      state=pending.state)
    event_id = session.execute(
        insert(IncidentEvent).values(incident_id=pending.incident_id,
                                     incident_seq=pending.incident_seq, kind=pending.kind,
                                     actor=pending.actor, at=pending.at, data=payload, body=body)
        .returning(IncidentEvent.id)
    ).scalar_one()
    note_written(session, pending)
    return int(event_id)


def note_written(session: Session, pending: PendingEvent) -> None:
    """Tell the commit-time safety net that ``pending`` is written with the state it holds."""
    session.info.setdefault(_INFO_STATE, {})[pending.incident_id] = (pending.state, pending.actor)
    # Everything flushed so far is in this snapshot: the commit-time check only needs to look
    # again at this incident if its rows change after this point.
    session.info.get(_INFO_TOUCHED, set()).discard(pending.incident_id)


def append_event(*, session: Session, incident_id: int, kind: str, actor: str,
                 data: Mapping[str, Any] | None = None, at: datetime | None = None) -> int:
    """Append one event to the incident's record (flushes; the caller commits).

    Parameters
    ----------
    session : Session
        The caller's unit of work; change the incident's rows in it before calling.
    incident_id : int
    kind : str
        What happened (``registered``, ``reclassified``, ``assigned``, ``closed`` ...).
    actor : str
        Who did it: a username, ``unit:<call sign>``, ``system`` ...
    data : mapping, optional
        What the event says beyond the state (reason, previous value ...). JSON values only.
    at : datetime, optional
        Event time; now (UTC) by default.

    Returns
    -------
    int
        The stored event's id.
    """
    return write_event(session=session, pending=prepare_event(
        session=session, incident_id=incident_id, kind=kind, actor=actor, data=data, at=at))


def record_sms_outcome(*, session: Session, incident_id: int, kind: str,
                       data: dict[str, object]) -> None:
    """A caller SMS's delivery outcome as an event of its incident (actor ``sms``): the SMS
    outbox's :class:`~geodispatch.notify.outbox.OutcomeRecorder`, wired by the composition
    root."""
    append_event(session=session, incident_id=incident_id, kind=kind, actor="sms", data=data)


def append_many(*, session: Session, kind: str, actor: str,
                events: Sequence[tuple[int, Mapping[str, Any]]], at: datetime | None = None
                ) -> int:
    """Append one ``kind`` event to each of many incidents at once (bulk imports).

    Equivalent to :func:`append_event` per ``(incident_id, data)`` pair, in a few statements per
    thousand incidents instead of four per event. Each incident may appear once.
    """
    when = (at or datetime.now(UTC)).astimezone(UTC)
    session.flush()
    count = 0
    items = [(int(i), normalise(dict(d))) for i, d in events]
    if len({i for i, _ in items}) != len(items):
        raise ValueError("append_many takes each incident once")
    for start in range(0, len(items), 1000):
        chunk = items[start:start + 1000]
        seqs: dict[int, int] = dict(session.execute(
            text("UPDATE incidents SET event_count = event_count + 1 "
                 "WHERE id = ANY(:ids) RETURNING id, event_count"),
            {"ids": [i for i, _ in chunk]}).all())
        missing = [i for i, _ in chunk if i not in seqs]
        if missing:
            raise LookupError(f"incidents {missing[:5]} do not exist")
        for iid, seq in seqs.items():
            cached = session.identity_map.get(identity_key(Incident, iid))
            if cached is not None:
                set_committed_value(cached, "event_count", int(seq))
        states = project(session, [i for i, _ in chunk])
        rows = [{"incident_id": iid, "incident_seq": int(seqs[iid]), "kind": kind,
                 "actor": actor, "at": when, "data": data,
                 "body": event_body(incident_id=iid, incident_seq=int(seqs[iid]), kind=kind,
                                    actor=actor, at=when, data=data, state=states[iid])}
                for iid, data in chunk]
        session.execute(insert(IncidentEvent), rows)
        appended = session.info.setdefault(_INFO_STATE, {})
        touched = session.info.get(_INFO_TOUCHED, set())
        for iid, _ in chunk:
            appended[iid] = (states[iid], actor)
            touched.discard(iid)
        count += len(chunk)
    return count


def call_event_body(*, call_id: int, call_seq: int, kind: str, actor: str, at: datetime,
                    data: Mapping[str, Any], state: Mapping[str, Any]) -> bytes:
    """The canonical bytes of one event of a call's record (the Merkle leaf)."""
    return rfc8785.dumps({"v": BODY_VERSION, "call_id": call_id, "call_seq": call_seq,
                          "kind": kind, "actor": actor, "at": iso_utc(at), "data": data,
                          "state": state})


def append_call_event(*, session: Session, call_id: int, kind: str, actor: str,
                      data: Mapping[str, Any] | None = None, at: datetime | None = None) -> int:
    """Append one event to a call's record (flushes; the caller commits).

    The body is ``{"v": 1, "call_id", "call_seq" (1..N per call), "kind", "actor", "at",
    "data", "state": {"calls": [row], "call_callbacks": [rows], "call_locations": [rows]}}``,
    sealed into the same signed log as the incidents' events. The only lock is the call's own
    row (its ``event_count``). Callers change the call's rows first.
    """
    when = (at or datetime.now(UTC)).astimezone(UTC)
    payload = normalise(dict(data or {}))
    session.flush()
    seq = session.execute(
        text("UPDATE calls SET event_count = event_count + 1 WHERE id = :i "
             "RETURNING event_count"), {"i": call_id}).scalar()
    if seq is None:
        raise LookupError(f"call {call_id} does not exist")
    # (the ORM class lives in the calls domain, which depends on this one)
    for obj in list(session.identity_map.values()):
        if getattr(obj, "__tablename__", None) == "calls" and getattr(obj, "id", None) == call_id:
            set_committed_value(obj, "event_count", int(seq))
    state = project_calls(session, [call_id])[call_id]
    body = call_event_body(call_id=call_id, call_seq=int(seq), kind=kind, actor=actor, at=when,
                           data=payload, state=state)
    event_id = session.execute(
        insert(IncidentEvent).values(incident_id=None, call_id=call_id, incident_seq=int(seq),
                                     kind=kind, actor=actor, at=when, data=payload, body=body)
        .returning(IncidentEvent.id)
    ).scalar_one()
    return int(event_id)


@dataclass(frozen=True)
class CallEventSpec:
    """One event for :func:`append_first_call_events`."""

    call_id: int
    kind: str
    actor: str
    at: datetime
    data: Mapping[str, Any]


def append_first_call_events(*, session: Session, events: Sequence[CallEventSpec],
                             rows: Mapping[int, Any]) -> list[int]:
    """The first event of calls just inserted with ``event_count = 1`` and no other rows yet
    (a burst's first rings): their state is projected from ``rows`` (call id -> the inserted
    row as the database returned it, e.g. by ``INSERT ... RETURNING``) instead of being read
    back, so the whole batch is one INSERT. The bodies are the ones :func:`append_call_event`
    would write; the record's verification replays them like any other."""
    if not events:
        return []
    table = _table("calls")
    cols = list(table.columns)
    sealed = [c.name for c in cols if ("calls", c.name) in SEALED_COLUMNS]
    out = []
    for e in events:
        obj = rows[e.call_id]
        if int(obj.event_count) != 1:
            raise ValueError(f"call {e.call_id} is not fresh (event_count {obj.event_count})")
        rec = {c.name: json_value(getattr(obj, c.key)) for c in cols}
        for col in sealed:
            rec[col] = sealed_value("calls", col, rec.get("id"), rec[col])
        state: dict[str, Any] = {t: [] for t in CALL_PROJECTED_TABLES}
        state["calls"] = [rec]
        when = e.at.astimezone(UTC)
        payload = normalise(dict(e.data))
        out.append({"incident_id": None, "call_id": e.call_id, "incident_seq": 1,
                    "kind": e.kind, "actor": e.actor, "at": when, "data": payload,
                    "body": call_event_body(call_id=e.call_id, call_seq=1, kind=e.kind,
                                            actor=e.actor, at=when, data=payload, state=state)})
    return [int(i) for i in session.execute(
        insert(IncidentEvent).returning(IncidentEvent.id), out).scalars()]


def roster_event_body(*, unit_id: int, unit_seq: int, kind: str, actor: str, at: datetime,
                      data: Mapping[str, Any], state: Mapping[str, Any]) -> bytes:
    """The canonical bytes of one event of a unit's crew roster (the Merkle leaf)."""
    return rfc8785.dumps({"v": BODY_VERSION, "unit_id": unit_id, "unit_seq": unit_seq,
                          "kind": kind, "actor": actor, "at": iso_utc(at), "data": data,
                          "state": state})


def append_roster_event(*, session: Session, unit_id: int, kind: str, actor: str,
                        data: Mapping[str, Any] | None = None, at: datetime | None = None
                        ) -> int:
    """Append one event to a unit's crew roster (flushes; the caller commits).

    The body is ``{"v": 1, "unit_id", "unit_seq" (1..N per unit), "kind", "actor", "at",
    "data", "state": {"crew_shifts": [every shift of the unit]}}``, sealed into the same signed
    log as the incidents' events. The only lock is the unit's ``unit_rosters`` row (created on
    the first event). Callers change the shifts first.
    """
    when = (at or datetime.now(UTC)).astimezone(UTC)
    payload = normalise(dict(data or {}))
    session.flush()
    seq = session.execute(text(
        "INSERT INTO unit_rosters (unit_id, event_count) VALUES (:u, 1) ON CONFLICT (unit_id) "
        "DO UPDATE SET event_count = unit_rosters.event_count + 1 RETURNING event_count"),
        {"u": unit_id}).scalar_one()
    for obj in list(session.identity_map.values()):
        if getattr(obj, "__tablename__", None) == "unit_rosters" \
                and getattr(obj, "unit_id", None) == unit_id:
            set_committed_value(obj, "event_count", int(seq))
    state = project_rosters(session, [unit_id])[unit_id]
    body = roster_event_body(unit_id=unit_id, unit_seq=int(seq), kind=kind, actor=actor,
                             at=when, data=payload, state=state)
    event_id = session.execute(
        insert(IncidentEvent).values(incident_id=None, unit_id=unit_id, incident_seq=int(seq),
                                     kind=kind, actor=actor, at=when, data=payload, body=body)
        .returning(IncidentEvent.id)
    ).scalar_one()
    return int(event_id)


def roster_events(*, session: Session, unit_id: int) -> Sequence[IncidentEvent]:
    """One unit's crew-roster events in order."""
    return session.execute(
        select(IncidentEvent).where(IncidentEvent.unit_id == unit_id)
        .order_by(IncidentEvent.incident_seq)
    ).scalars().all()


def call_events(*, session: Session, call_id: int) -> Sequence[IncidentEvent]:
    """One call's events in order."""
    return session.execute(
        select(IncidentEvent).where(IncidentEvent.call_id == call_id)
        .order_by(IncidentEvent.incident_seq)
    ).scalars().all()


def incident_events(*, session: Session, incident_id: int) -> Sequence[IncidentEvent]:
    """One incident's events in order."""
    return session.execute(
        select(IncidentEvent).where(IncidentEvent.incident_id == incident_id)
        .order_by(IncidentEvent.incident_seq)
    ).scalars().all()


def event_dict(e: IncidentEvent) -> dict[str, Any]:
    """An event for the timeline. The body (with the caller's number in its state) is not
    included; auditors get it through the log export and proofs."""
    return {"id": e.id, "incident_id": e.incident_id, "incident_seq": e.incident_seq,
            "kind": e.kind, "actor": e.actor, "at": iso_utc(e.at), "data": e.data}


# --- the safety net ---------------------------------------------------------------------------

@event.listens_for(Session, "after_flush")
def _note_touched(session: Session, _ctx: Any) -> None:
    # Any ORM row of a projected table, by its table name (the record does not import the
    # domains whose rows it projects: dispatch's assignments depend on incidents, not back).
    touched: set[int] = session.info.setdefault(_INFO_TOUCHED, set())
    for obj in list(session.new) + list(session.dirty) + list(session.deleted):
        key = PROJECTED_TABLES.get(getattr(obj, "__tablename__", ""))
        incident_id = getattr(obj, key, None) if key else None
        if incident_id is not None:
            touched.add(int(incident_id))


_INFO_CLOSING = "geodispatch.record.closing"


def close_at_commit(session: Session, statement: str, params: Mapping[str, Any],
                    then: Callable[[Sequence[Any]], None]) -> None:
    """Run ``statement`` as the transaction's last statement, sent together with its COMMIT.

    For a statement that takes a hot row lock (the region's reference counter): the lock is
    then held for the statement and the commit's WAL flush inside PostgreSQL alone, never
    across a round trip to this process (where a thread holding it could wait for the GIL
    behind every other request). ``statement`` is psycopg SQL (``%(name)s`` parameters); it
    must return one row, which ``then`` receives once the commit has succeeded. If the
    statement or the commit fails, the exception ends the commit and the transaction is rolled
    back as any other failed commit; ``then`` is not called. The commit is the session's own
    (``session.commit()``, the end of ``session.begin()``): whoever owns the transaction
    still decides whether it commits.
    """
    session.info.setdefault(_INFO_CLOSING, []).append((statement, dict(params), then))


def _close(session: Session) -> None:
    closing: list[tuple[str, dict[str, Any], Callable[[Sequence[Any]], None]]] = (
        session.info.pop(_INFO_CLOSING, []))
    if not closing:
        return
    session.flush()
    raw = session.connection().connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise TypeError("closing statements need the psycopg driver")
    cursors = []
    with raw.pipeline():
        for statement, params, _then in closing:
            cursors.append(raw.execute(statement, params))
        raw.commit()  # the ORM's commit that follows finds nothing left to commit
    for (_statement, _params, then), cur in zip(closing, cursors, strict=True):
        row = cur.fetchone()
        if row is None:
            raise RuntimeError("a closing statement returned no row")
        then(row)


@event.listens_for(Session, "before_commit")
def _seal_state(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint's release: the real commit looks at everything touched so far
    _check_projection(session)
    _close(session)


def _check_projection(session: Session) -> None:
    session.flush()
    # Only incidents whose rows the ORM changed after their last event (or that have no event
    # in this transaction) are projected again; an incident recorded by its last change costs
    # nothing here. (Raw SQL that changes rows after the event escapes this net; verification
    # still names it.)
    touched: set[int] = session.info.pop(_INFO_TOUCHED, set())
    appended: dict[int, tuple[dict[str, Any], str]] = session.info.pop(_INFO_STATE, {})
    pending = sorted(touched)
    if not pending:
        return
    now = project(session, pending)
    for iid in pending:
        last = appended.get(iid)
        if last is not None and last[0] == now[iid]:
            continue
        if not now[iid]["incidents"]:
            continue  # created and removed in this transaction: nothing to record
        append_event(session=session, incident_id=iid, kind="amended",
                     actor=last[1] if last else "system",
                     data={"reason": "projected rows changed after the last event"})
    session.info.pop(_INFO_STATE, None)
    session.info.pop(_INFO_TOUCHED, None)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_INFO_CLOSING, None)
    session.info.pop(_INFO_STATE, None)
    session.info.pop(_INFO_TOUCHED, None)
