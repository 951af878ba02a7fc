"""The tamper-evident incident record: one global hash chain over every incident event.

Every change to an incident is appended here as an :class:`IncidentEvent`; nothing is updated or
deleted (the database refuses both to the application role). Each event's hash covers the
previous event's hash and the event's own canonical content, so editing, deleting or reordering
any stored event breaks the chain at that point, and :func:`verify_chain` names the first broken
link. Cutting off the newest events leaves a valid but shorter chain: periodic anchors of the
chain head (:func:`anchor_chain`, to the ``chain_anchors`` table, an append-only file and the
log) make that detectable too.

Appends are serialised with a transaction-scoped advisory lock, so the chain order is the commit
order and two concurrent requests can never both extend the same head.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from geodispatch.incidents.models import ChainAnchor, Incident, IncidentEvent

log = logging.getLogger(__name__)

GENESIS = "0" * 64
#: Advisory-lock key serialising appends to the chain (arbitrary, fixed).
CHAIN_LOCK_KEY = 0x6764_6368_6169_6E  # "gdchain"
#: Incident columns that events project: the newest event's ``data["set"]`` value must match.
PROJECTED = ("category", "priority", "status", "disposition", "merged_into_id")


@dataclass(frozen=True)
class ChainReport:
    """Outcome of a verification: ``first_broken_id`` is the first event that fails."""

    ok: bool
    checked: int
    first_broken_id: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("event times must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(*, incident_id: int, kind: str, actor: str, at: datetime | str,
              data: Mapping[str, Any]) -> bytes:
    """The canonical byte form of one event's content, the input of its hash.

    Parameters
    ----------
    incident_id, kind, actor
        As stored.
    at : datetime or str
        The event time (timezone-aware, or an ISO-8601 string with an offset). It is written in
        UTC with microseconds, ``2026-11-29T07:30:00.123456+00:00``, so the same instant always
        gives the same bytes whatever zone it was expressed in.
    data : mapping
        The event payload (JSON values only).

    Returns
    -------
    bytes
        UTF-8 JSON of ``{"actor", "at", "data", "incident_id", "kind"}`` with keys sorted at every
        level, no whitespace (separators ``,`` and ``:``) and non-ASCII characters kept as
        themselves (``ensure_ascii=False``), e.g.
        ``{"actor":"ct1","at":"...","data":{"category":"theft"},"incident_id":7,"kind":"registered"}``.
    """
    when = at if isinstance(at, datetime) else datetime.fromisoformat(at)
    body = {"incident_id": int(incident_id), "kind": kind, "actor": actor, "at": _iso(when),
            "data": data}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def link_hash(prev_hash: str, content: bytes) -> str:
    """``sha256(prev_hash || content)`` as hex; ``prev_hash`` is the previous event's hex hash.

    Parameters
    ----------
    prev_hash : str
        64 hex characters (:data:`GENESIS` for the first event), hashed as ASCII bytes.
    content : bytes
        :func:`canonical` of the new event.
    """
    return hashlib.sha256(prev_hash.encode("ascii") + content).hexdigest()


def _normalise(data: Mapping[str, Any]) -> dict[str, Any]:
    # What JSONB gives back is what must be hashed: round-trip once so the stored form and the
    # hashed form agree (tuples become lists, non-string keys strings).
    out: dict[str, Any] = json.loads(json.dumps(dict(data), ensure_ascii=False, allow_nan=False,
                                                default=str))
    return out


def append_event(*, session: Session, incident_id: int, kind: str, actor: str,
                 data: Mapping[str, Any] | None = None, at: datetime | None = None
                 ) -> IncidentEvent:
    """Append one event to the global chain (flushes; the caller commits).

    Parameters
    ----------
    session : Session
        The caller's unit of work. The chain lock is held until it commits or rolls back.
    incident_id : int
    kind : str
        What happened (``registered``, ``reclassified``, ``assigned``, ``closed`` ...).
    actor : str
        Who did it: a username, ``unit:<call sign>``, ``system`` ...
    data : mapping, optional
        Event payload. Its ``set`` member, when present, holds the incident columns this event
        changed (see :data:`PROJECTED`); verification replays them against the incident row.
    at : datetime, optional
        Event time; now (UTC) by default.

    Returns
    -------
    IncidentEvent
        The stored event with ``prev_hash`` and ``hash``.
    """
    when = (at or datetime.now(UTC)).astimezone(UTC)
    payload = _normalise(data or {})
    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CHAIN_LOCK_KEY})
    head = session.execute(
        text("SELECT hash FROM incident_events ORDER BY id DESC LIMIT 1")
    ).scalar()
    prev = head or GENESIS
    event = IncidentEvent(
        incident_id=incident_id, kind=kind, actor=actor, at=when, data=payload, prev_hash=prev,
        hash=link_hash(prev, canonical(incident_id=incident_id, kind=kind, actor=actor, at=when,
                                       data=payload)),
    )
    session.add(event)
    session.flush()
    return event


def event_dict(e: IncidentEvent) -> dict[str, Any]:
    """An event as exported (``at`` ISO-8601), the input format of :func:`verify_event_list`."""
    return {"id": e.id, "incident_id": e.incident_id, "kind": e.kind, "actor": e.actor,
            "at": _iso(e.at), "data": e.data, "prev_hash": e.prev_hash, "hash": e.hash}


def _check_links(rows: Iterable[Mapping[str, Any]], expected_prev: str | None
                 ) -> tuple[int, int | None, str | None, str | None, int | None]:
    """Walk events in id order; return (checked, broken id, reason, last hash, last id).

    ``expected_prev`` None means: do not check the first event's link (its predecessor is not
    in the list, as in one incident's exported log).
    """
    checked = 0
    prev_hash = expected_prev
    last_id: int | None = None
    for r in rows:
        checked += 1
        rid = int(r["id"])
        if prev_hash is not None and r["prev_hash"] != prev_hash:
            return checked, rid, "prev_hash does not match the previous event's hash " \
                "(an event was removed, inserted or reordered)", None, last_id
        try:
            content = canonical(incident_id=r["incident_id"], kind=r["kind"], actor=r["actor"],
                                at=r["at"], data=r["data"])
        except (TypeError, ValueError) as exc:
            return checked, rid, f"event content is not canonicalisable: {exc}", None, last_id
        if link_hash(str(r["prev_hash"]), content) != r["hash"]:
            return checked, rid, "hash does not match the event's content (edited)", None, last_id
        prev_hash = str(r["hash"])
        last_id = rid
    return checked, None, None, prev_hash, last_id


def verify_event_list(events: list[dict[str, Any]]) -> ChainReport:
    """Verify an exported event log (one incident's, or a contiguous stretch of the chain).

    Parameters
    ----------
    events : list of dict
        Each with ``id, incident_id, kind, actor, at`` (ISO-8601), ``data, prev_hash, hash``.

    Returns
    -------
    ChainReport
        Every event's hash must match ``sha256(prev_hash || canonical(content))``. Consecutive
        ids must also be linked (``prev_hash`` = the previous event's hash); events of one
        incident are usually interleaved with other incidents' in the global chain, so a gap in
        the ids is not checked. Ids must increase (a reordered export is refused).
    """
    ordered = list(events)
    checked = 0
    prev: dict[str, Any] | None = None
    for e in ordered:
        checked += 1
        try:
            eid = int(e["id"])
            content = canonical(incident_id=e["incident_id"], kind=e["kind"], actor=e["actor"],
                                at=e["at"], data=e["data"])
        except (KeyError, TypeError, ValueError) as exc:
            return ChainReport(False, checked, e.get("id") if isinstance(e, dict) else None,
                               f"malformed event: {exc}")
        if prev is not None:
            if eid <= int(prev["id"]):
                return ChainReport(False, checked, eid, "events out of order")
            if eid == int(prev["id"]) + 1 and e["prev_hash"] != prev["hash"]:
                return ChainReport(False, checked, eid, "prev_hash does not match the previous "
                                                        "event's hash")
        if link_hash(str(e["prev_hash"]), content) != e["hash"]:
            return ChainReport(False, checked, eid, "hash does not match the event's content")
        prev = e
    return ChainReport(True, checked)


_ROW_SQL = ("SELECT id, incident_id, kind, actor, at, data, prev_hash, hash FROM incident_events ")


def _walk(session: Session, where: str, params: dict[str, Any], expected_prev: str
          ) -> tuple[int, int | None, str | None, str | None, int | None]:
    result = session.execute(
        text(_ROW_SQL + where + " ORDER BY id").execution_options(yield_per=5000), params
    )
    try:
        return _check_links(result.mappings(), expected_prev)
    finally:
        result.close()


def _projection_errors(session: Session, incident_id: int | None) -> tuple[int, str] | None:
    """The first incident whose row disagrees with the values its events set, if any."""
    params: dict[str, Any] = {}
    where = "WHERE data ? 'set'"
    if incident_id is not None:
        where += " AND incident_id = :i"
        params["i"] = incident_id
    expected: dict[int, dict[str, Any]] = {}
    for iid, data in session.execute(
        text(f"SELECT incident_id, data->'set' FROM incident_events {where} ORDER BY id"), params
    ):
        if isinstance(data, dict):
            expected.setdefault(int(iid), {}).update(
                {k: v for k, v in data.items() if k in PROJECTED})
    if not expected:
        return None
    rows = session.execute(
        select(Incident.id, Incident.category, Incident.priority, Incident.status,
               Incident.disposition, Incident.merged_into_id)
        .where(Incident.id.in_(list(expected)))
    ).all()
    found = {r.id: r for r in rows}
    for iid in sorted(expected):
        row = found.get(iid)
        if row is None:
            return iid, "incident row missing"
        for col, want in expected[iid].items():
            have = getattr(row, col)
            if have != want:
                return iid, f"incident {col} is {have!r} but its event log says {want!r}"
    return None


def _anchor_lines(path: Path, database: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("database") == database:
            out.append(rec)
    return out


def _check_anchors(session: Session, anchor_path: Path | None) -> str | None:
    """Why the chain is shorter than (or diverges from) its newest anchor, or None."""
    anchors: list[dict[str, Any]] = []
    row = session.execute(
        select(ChainAnchor).order_by(ChainAnchor.last_event_id.desc()).limit(1)
    ).scalar_one_or_none()
    if row is not None:
        anchors.append({"last_event_id": row.last_event_id, "head_hash": row.head_hash,
                        "event_count": row.event_count, "source": "table"})
    if anchor_path is not None:
        database = str(session.execute(text("SELECT current_database()")).scalar())
        lines = _anchor_lines(anchor_path, database)
        if lines:
            newest = max(lines, key=lambda r: int(r["last_event_id"]))
            anchors.append({**newest, "source": str(anchor_path)})
    for a in anchors:
        got = session.execute(
            text("SELECT hash, (SELECT count(*) FROM incident_events WHERE id <= :i) "
                 "FROM incident_events WHERE id = :i"), {"i": int(a["last_event_id"])}
        ).first()
        if got is None:
            return (f"anchored event {a['last_event_id']} ({a['source']}) is missing: "
                    "the newest events were cut off")
        if got[0] != a["head_hash"]:
            return f"anchored event {a['last_event_id']} ({a['source']}) has a different hash"
        if int(got[1]) != int(a["event_count"]):
            return (f"{got[1]} events up to anchored event {a['last_event_id']}, "
                    f"anchor ({a['source']}) recorded {a['event_count']}")
    return None


def verify_chain(*, session: Session, incident_id: int | None = None,
                 anchor_path: Path | None = None) -> ChainReport:
    """Verify the stored chain (all of it, or the stretch covering one incident).

    Parameters
    ----------
    session : Session
    incident_id : int, optional
        Verify only the chain segment from this incident's first event to the event after its
        last (so a removed event of the incident shows as a broken link of its successor), and
        the incident row's projected columns.
    anchor_path : Path, optional
        Anchor file to compare with (default ``settings.resolved_anchor_path``); the newest
        anchor in the table and in the file must still be in the chain with the same hash and
        the same number of events up to it.

    Returns
    -------
    ChainReport
        ``first_broken_id`` is the first event that fails; for a projection mismatch it is None
        and ``reason`` names the incident; for a truncation it is None and ``reason`` names the
        missing anchored event.
    """
    if anchor_path is None:
        from geodispatch.settings import get_settings

        anchor_path = get_settings().resolved_anchor_path
    if incident_id is None:
        checked, broken, reason, _head, _last = _walk(session, "", {}, GENESIS)
    else:
        bounds = session.execute(
            text("SELECT min(id), max(id) FROM incident_events WHERE incident_id = :i"),
            {"i": incident_id},
        ).first()
        if bounds is None or bounds[0] is None:
            return ChainReport(True, 0)
        lo, hi = int(bounds[0]), int(bounds[1])
        pred = session.execute(
            text("SELECT hash FROM incident_events WHERE id < :lo ORDER BY id DESC LIMIT 1"),
            {"lo": lo},
        ).scalar()
        succ = session.execute(
            text("SELECT id FROM incident_events WHERE id > :hi ORDER BY id LIMIT 1"), {"hi": hi}
        ).scalar()
        checked, broken, reason, _head, _last = _walk(
            session, "WHERE id BETWEEN :lo AND :hi", {"lo": lo, "hi": succ or hi},
            pred or GENESIS)
    if broken is not None:
        return ChainReport(False, checked, broken, reason)
    bad = _projection_errors(session, incident_id)
    if bad is not None:
        return ChainReport(False, checked, None, f"incident {bad[0]}: {bad[1]}")
    if incident_id is None:
        cut = _check_anchors(session, anchor_path)
        if cut is not None:
            return ChainReport(False, checked, None, cut)
    return ChainReport(True, checked)


def anchor_chain(*, session: Session, path: Path | None = None) -> ChainAnchor | None:
    """Record the chain head in ``chain_anchors``, the append-only file and the log.

    Parameters
    ----------
    session : Session
    path : Path, optional
        Anchor file (default ``settings.resolved_anchor_path``); one JSON line per anchor, with
        the database name so several databases can share one file.

    Returns
    -------
    ChainAnchor or None
        None when the chain is empty or its head is already anchored.
    """
    if path is None:
        from geodispatch.settings import get_settings

        path = get_settings().resolved_anchor_path
    head = session.execute(
        text("SELECT id, hash FROM incident_events ORDER BY id DESC LIMIT 1")
    ).first()
    if head is None:
        return None
    last = session.execute(select(ChainAnchor.last_event_id).order_by(
        ChainAnchor.last_event_id.desc()).limit(1)).scalar()
    if last is not None and int(last) >= int(head[0]):
        return None
    count = int(session.execute(
        text("SELECT count(*) FROM incident_events WHERE id <= :i"), {"i": head[0]}).scalar_one())
    anchor = ChainAnchor(last_event_id=int(head[0]), head_hash=str(head[1]), event_count=count,
                         at=datetime.now(UTC))
    session.add(anchor)
    session.flush()
    database = str(session.execute(text("SELECT current_database()")).scalar())
    line = json.dumps({"at": _iso(anchor.at), "database": database,
                       "last_event_id": anchor.last_event_id, "head_hash": anchor.head_hash,
                       "event_count": count}, sort_keys=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    log.info("chain anchored: event %s hash %s (%s events)", anchor.last_event_id,
             anchor.head_hash, count)
    return anchor


def incident_events(*, session: Session, incident_id: int) -> Sequence[IncidentEvent]:
    """One incident's events in chain order."""
    return session.execute(
        select(IncidentEvent).where(IncidentEvent.incident_id == incident_id)
        .order_by(IncidentEvent.id)
    ).scalars().all()
