"""Verification of the incident record against the signed log, as an adversary would be caught.

:func:`verify_record` reads everything once and reports every finding it can name:

1. **The log.** Leaf numbers are gap-free; each sealed event's body still hashes to its leaf;
   the stored leaves give the signed root at every tree head in the database, in the tree-head
   file and at every witness (a head larger than the database means sealed events were cut off;
   a different root, that they were rewritten); every signature verifies with the centre's key.
2. **The events.** Each event's columns say what its body says; every event is sealed or queued
   for sealing (an event that is neither was inserted with the queue trigger disabled); each
   incident's events are numbered 1..N without gaps (a removed first, middle or last event names
   its incident).
3. **The projection.** The newest event of each incident carries the state of its rows; the rows
   as they are now must equal it, every column of every row (incident, assignments). A row
   changed, added or removed without an event is named with its table, column and both values.
4. **Archive batches.** An archive import's incidents and assignments carry no events of their
   own: each batch has one sealed ``archive_imported`` event whose ``rows_sha256`` must equal the
   hash of the batch's rows as they are now (:func:`geodispatch.incidents.archive.batch_digest`);
   a batch without its event, or rows that differ, are named with the batch and its file.
5. **References.** Public references ``REGION-YEAR-NNNNNN`` are gap-free up to each counter: a
   missing number is a hidden report.

Events committed but not yet sealed are reported (count and age); they are checked like every
other event but are not yet protected by a signature.

How it stays fast (a million events in seconds): the leaves are read in chunks the database
concatenates, the events in one ``COPY ... (FORMAT binary)`` pass (plain queries on a driver
without COPY), without joins; the Merkle tree is built level by level; each body is hashed once
and only its head (ids, kind, actor, time, data) is decoded, the state being kept as its raw
bytes for the incident's newest event. For step 3 the database writes each incident's rows in
the RFC 8785 spelling the record uses (:func:`_canonical_row_sql`: keys in order, times in UTC
with microseconds, geometries as hex EWKB, integers beyond 2**53 as strings, sealed columns
filled in here with their commitment), so an unchanged incident is one byte comparison. Whenever
a shortcut sees any difference (or a value it does not spell the same way, such as a float the
database writes in exponent form), the exact path (:func:`project` and the column-by-column
comparison) decides and names it: what is reported never depends on the shortcuts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec
import orjson
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    String,
    Table,
    text,
)
from sqlalchemy.orm import Session

import geodispatch.models  # noqa: F401  (every table: foreign keys get their column types)
from geodispatch.incidents import archive
from geodispatch.incidents.record import (
    CALL_PROJECTED_TABLES,
    PROJECTED_TABLES,
    ROSTER_PROJECTED_TABLES,
    SEALED_COLUMNS,
    _pepper,
    _table,
    project,
    project_calls,
    project_rosters,
    sealed_value,
)
from geodispatch.ledger.merkle import MerkleTree
from geodispatch.ledger.signing import TreeHead, log_id
from geodispatch.ledger.witness import Witness

REFERENCE = re.compile(r"^([A-Z0-9]+)-(\d{4})-(\d{6})$")
#: Queued events older than this mean the sequencer is not running.
PENDING_STALE_S = 60.0
_EMPTY: tuple[Any, ...] = (None, 0, False, "", [], {})
_SAFE_INT = 2**53 - 1
#: ``at`` as :func:`iso_utc` spells it, written by the database.
_ISO_UTC_SQL = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"


@dataclass(frozen=True)
class Finding:
    """One thing that is wrong, with the incident it concerns when it can be named."""

    what: str
    incident_id: int | None = None
    reference: str | None = None


@dataclass
class RecordReport:
    ok: bool
    events: int
    sealed: int
    pending: int
    oldest_pending_s: float | None
    tree_size: int
    heads_checked: int
    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: Seconds spent in each step (leaves, events, heads, numbering, projection, references).
    phases: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Findings:
    def __init__(self, limit: int) -> None:
        self.items: list[Finding] = []
        self.limit = limit
        self.total = 0

    def add(self, what: str, incident_id: int | None = None) -> None:
        self.total += 1
        if len(self.items) < self.limit:
            self.items.append(Finding(what, incident_id))


# --- reading -----------------------------------------------------------------------------------

def _stream(session: Session, sql: str, types: Sequence[str], params: dict[str, int] | None = None
            ) -> Iterator[tuple[Any, ...]]:
    """Rows of ``sql`` in the session's transaction. Every column must be cast to the matching
    entry of ``types`` (``int8``, ``float8``, ``bool``, ``text`` or ``bytea``); bytea comes back
    as ``bytes``. ``params`` are integers, written into the statement."""
    if params:
        sql = sql.format(**{k: int(v) for k, v in params.items()})
    dbapi = session.connection().connection.driver_connection
    if isinstance(dbapi, psycopg.Connection):  # the project's driver; others take the slow path
        with dbapi.cursor(binary=True) as cur, \
                cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT binary)") as copy:
            copy.set_types(list(types))
            yield from copy.rows()
        return
    blobs = [i for i, t in enumerate(types) if t == "bytea"]
    result = session.connection().exec_driver_sql(sql, execution_options={"yield_per": 20000})
    try:
        for row in result:
            yield tuple(bytes(v) if i in blobs and v is not None else v
                        for i, v in enumerate(row))
    finally:
        result.close()


def _check_event(f: _Findings, body: Any, event_id: int, iid: int,
                 have: dict[str, Any]) -> None:
    """An event row's columns (``have``: incident_id, incident_seq, kind, actor, at as
    :func:`iso_utc` spells it, data) must say what its body says."""
    if not isinstance(body, dict):
        f.add(f"event {event_id} (incident {iid}): its sealed body is not a JSON object", iid)
        return
    for col, value in have.items():
        if body.get(col) != value:
            f.add(f"event {event_id} (incident {body.get('incident_id')} "
                  f"#{body.get('incident_seq')}): column {col} is {value!r} but its sealed body "
                  f"says {body.get(col)!r}",
                  int(body["incident_id"]) if isinstance(body.get("incident_id"), int) else iid)


def _diff_state(f: _Findings, iid: int, want: dict[str, Any], have: dict[str, Any]) -> None:
    for table in PROJECTED_TABLES:
        w_rows = {r.get("id"): r for r in want.get(table, [])}
        h_rows = {r.get("id"): r for r in have.get(table, [])}
        for rid in sorted(set(w_rows) | set(h_rows), key=str):
            w, h = w_rows.get(rid), h_rows.get(rid)
            if w is None:
                f.add(f"incident {iid}: {table} row {rid} exists but no event records it", iid)
                continue
            if h is None:
                f.add(f"incident {iid}: {table} row {rid} is recorded but was removed", iid)
                continue
            for col in sorted(set(w) | set(h)):
                if col not in w:
                    # A column added after this event: only its empty/default value is implied.
                    if h[col] in _EMPTY:
                        continue
                    f.add(f"incident {iid}: {table}.{col} (row {rid}) is {h[col]!r} but no "
                          "event records it", iid)
                elif w[col] != h.get(col):
                    f.add(f"incident {iid}: {table}.{col} (row {rid}) is {h.get(col)!r} but "
                          f"the record says {w[col]!r}", iid)


# --- the projection, spelt by the database --------------------------------------------------------

class _Head(msgspec.Struct):
    """What step 1 reads of a body: its head. The state is kept raw, unparsed."""

    incident_id: Any
    incident_seq: Any
    kind: Any
    actor: Any
    at: Any
    data: Any
    state: msgspec.Raw = msgspec.Raw(b"null")


_decode_head = msgspec.json.Decoder(_Head).decode
#: What the database writes for a sealed column; filled in here (the pepper stays here).
_SEALED_MARK = "@"


def _column_sql(ref: str, col: Any) -> str | None:
    """SQL text of the column's value as RFC 8785 writes the record's value for it (None for
    SQL NULL), or None for a type this does not spell (its table then takes the exact path).

    Strings go through ``to_json``, whose escapes are RFC 8785's (``\\"``, ``\\\\``, ``\\b
    \\f \\n \\r \\t`` and ``\\u00xx`` for other control characters, nothing else).
    Floats come from float8out, the shortest exact digits: where that spelling differs from
    ECMAScript's (exponents, ``-0``, NaN) the comparison fails and the exact path decides.
    """
    t = col.type
    if isinstance(t, Geometry):
        return f"'\"' || encode(ST_AsEWKB({ref}), 'hex') || '\"'"
    if isinstance(t, Boolean):
        return f"{ref}::text"
    if isinstance(t, String):
        return f"to_json({ref}::text)::text"
    if isinstance(t, BigInteger):
        return (f"CASE WHEN {ref} BETWEEN -{_SAFE_INT} AND {_SAFE_INT} THEN {ref}::text "
                f"ELSE '\"' || {ref}::text || '\"' END")
    if isinstance(t, Integer):
        return f"{ref}::text"  # 32 bits or fewer: always a JSON number
    if isinstance(t, Float) and not t.asdecimal:
        return f"{ref}::float8::text"
    if isinstance(t, DateTime) and t.timezone:
        return f"'\"' || {_ISO_UTC_SQL.format(ref)} || '\"'"
    if isinstance(t, LargeBinary):
        return f"'\"' || encode({ref}, 'hex') || '\"'"
    return None


def _canonical_row_sql(table: Table, alias: str) -> str | None:
    """SQL text of one row as the record's state holds it, in RFC 8785 form (keys sorted);
    sealed columns hold :data:`_SEALED_MARK`. None if a column cannot be spelt."""
    parts = []
    for n, col in enumerate(sorted(table.columns, key=lambda c: c.name)):
        if not col.name.isascii() or not col.name.replace("_", "").isalnum():
            return None  # key order and escaping of other names: the exact path
        key = ("{" if n == 0 else ",") + f'"{col.name}":'
        if (table.name, col.name) in SEALED_COLUMNS:
            parts.append(f"'{key}{_SEALED_MARK}'")
            continue
        value = _column_sql(f'{alias}."{col.name}"', col)
        if value is None:
            return None
        parts.append(f"'{key}' || coalesce({value}, 'null')")
    return "(" + " || ".join(parts) + " || '}')"


@dataclass
class _FastProjection:
    """The SQL of step 3's shortcut: the incidents' rows, and each other table's rows grouped
    by incident, in the record's canonical spelling."""

    incidents: str
    others: dict[str, str]  # table -> SELECT incident id, its rows joined by ","
    sealed: list[str]  # sealed columns of the incidents table, in the order selected


def _fast_projection(session: Session, incident_id: int | None) -> _FastProjection | None:
    """Step 3's shortcut, or None when every incident must take the exact path."""

    if next(iter(PROJECTED_TABLES.items()), None) != ("incidents", "id") \
            or not all(t.isascii() and t.replace("_", "").isalnum() for t in PROJECTED_TABLES):
        return None
    if any(t != "incidents" for t, _c in SEALED_COLUMNS if t in PROJECTED_TABLES) \
            or "reference" not in _table("incidents").columns:
        return None
    efd = session.execute(text("SELECT current_setting('extra_float_digits')::int")).scalar()
    if efd is None or int(efd) < 1:
        return None  # float8 output rounded: equal text would not mean equal floats
    inc = _canonical_row_sql(_table("incidents"), "i")
    if inc is None:
        return None
    sealed = sorted(c for t, c in SEALED_COLUMNS if t == "incidents")
    where = "" if incident_id is None else f" WHERE i.id = {int(incident_id)}"
    incidents = ("SELECT i.id::int8, convert_to(" + inc + ", 'UTF8'), i.reference::text"
                 + "".join(f', i."{c}"::text' for c in sealed)
                 + f" FROM incidents i{where} ORDER BY i.id")
    others = {}
    for n, (name, key) in enumerate(list(PROJECTED_TABLES.items())[1:], 1):
        table = _table(name)
        row = _canonical_row_sql(table, f"t{n}")
        if row is None:
            return None
        order = ", ".join(f't{n}."{c.name}"' for c in table.primary_key.columns)
        where_t = "" if incident_id is None else f' WHERE t{n}."{key}" = {int(incident_id)}'
        others[name] = (
            f'SELECT t{n}."{key}"::int8, convert_to(string_agg({row}, \',\' ORDER BY {order}), '
            f"'UTF8') FROM \"{name}\" t{n}{where_t} GROUP BY t{n}.\"{key}\"")
    return _FastProjection(incidents, others, sealed)


def _sealer() -> Any:
    """:func:`sealed_value` with the pepper read once (it is looked up per call there); checked
    against :func:`sealed_value` itself, which is used instead should the two ever disagree."""

    pepper = _pepper()

    def seal(table: str, column: str, row_id: Any, value: Any) -> Any:
        if value is None:
            return None
        msg = f"{table}.{column}:{row_id}:{value}".encode()
        return "hmac-sha256:" + hmac.new(pepper, msg, hashlib.sha256).hexdigest()

    probe = ("incidents", "caller_phone", 7, "+380671112233")
    return seal if seal(*probe) == sealed_value(*probe) else sealed_value


def _canonical_states(session: Session, fast: _FastProjection
                      ) -> Iterator[tuple[int, bytes, str]]:
    """``(incident id, its rows as the record's state in RFC 8785 bytes, its reference)`` for
    every incident row, written by the database (:class:`_FastProjection`)."""
    grouped = {name: dict(_stream(session, sql, ("int8", "bytea")))
               for name, sql in fast.others.items()}
    order = sorted(PROJECTED_TABLES)
    seal = _sealer()
    marks = [(f'"{c}":{_SEALED_MARK}'.encode(), f'"{c}":'.encode()) for c in fast.sealed]
    for row in _stream(session, fast.incidents,
                       ("int8", "bytea", "text") + ("text",) * len(fast.sealed)):
        iid, own = int(row[0]), row[1]
        for (mark, key), col, raw in zip(marks, fast.sealed, row[3:], strict=True):
            own = own.replace(mark, key + orjson.dumps(seal("incidents", col, iid, raw)), 1)
        parts = [b"{"]
        for n, name in enumerate(order):
            rows = own if name == "incidents" else grouped[name].pop(iid, b"")
            parts.append(b'%s"%s":[%s]' % (b"," if n else b"", name.encode(), rows))
        parts.append(b"}")
        yield iid, b"".join(parts), str(row[2])


_NULL_INT = -(2**63)
_NULL_SQL = f"'{_NULL_INT}'::int8"


def _events(session: Session, incident_id: int | None) -> Iterator[tuple[Any, ...]]:
    """Every event as ``(id, incident_id, incident_seq, kind, actor, at, data, body)``, the
    texts as UTF-8 bytes (``at`` as :func:`iso_utc` spells it), in one pass without a join.

    (Packing many events into one value per query was tried: the database's packing and the
    transfer cost more than the stream's per-row overhead.)
    """
    where = " WHERE incident_id IS NOT NULL" if incident_id is None \
        else " WHERE incident_id = {i}"
    return _stream(session, (
        "SELECT id::int8, incident_id::int8, incident_seq::int8, convert_to(kind, 'UTF8'), "
        "convert_to(actor, 'UTF8'), convert_to(" + _ISO_UTC_SQL.format("at") + ", 'UTF8'), "
        "convert_to(data::text, 'UTF8'), body FROM incident_events" + where),
        ("int8", "int8", "int8", "bytea", "bytea", "bytea", "bytea", "bytea"),
        None if incident_id is None else {"i": incident_id})


def _leaves(session: Session) -> tuple[list[int], list[int], list[bytes | None]]:
    """Every stored leaf in ``seq`` order: numbers, event ids and hashes.

    Read in packs the database concatenates (200,000 leaves a query), unless some stored hash
    is missing or not 32 bytes long (then row by row, so that each is judged as it is). An
    event id that is NULL comes back as the smallest int8, which no event has.
    """
    seqs: list[int] = []
    events: list[int] = []
    hashes: list[bytes | None] = []
    odd = session.execute(text(
        "SELECT EXISTS (SELECT 1 FROM log_leaves WHERE leaf_hash IS NULL "
        "OR length(leaf_hash) <> 32)")).scalar()
    if odd:
        for seq, event_id, lh in _stream(session, (
                f"SELECT seq::int8, coalesce(event_id::int8, {_NULL_SQL}), leaf_hash "
                "FROM log_leaves ORDER BY seq"), ("int8", "int8", "bytea")):
            seqs.append(seq)
            events.append(event_id)
            hashes.append(lh)
        return seqs, events, hashes
    after = _NULL_INT
    while True:
        blob = session.execute(text(
            "SELECT string_agg(int8send(seq) || coalesce(int8send(event_id::int8), "
            f"int8send({_NULL_SQL})) || leaf_hash, ''::bytea) FROM (SELECT seq, event_id, "
            "leaf_hash FROM log_leaves WHERE seq > :a ORDER BY seq LIMIT 200000) t"),
            {"a": after}).scalar()
        if blob is None:
            return seqs, events, hashes
        pack = list(struct.iter_unpack(">qq32s", bytes(blob)))
        if any(pack[i][0] >= pack[i + 1][0] for i in range(len(pack) - 1)):
            pack.sort()  # the aggregate need not keep the subquery's order
        for seq, event_id, lh in pack:
            seqs.append(seq)
            events.append(event_id)
            hashes.append(lh)
        after = seqs[-1]

def verify_record(*, session: Session, public_key: Ed25519PublicKey,
                  witnesses: Sequence[Witness] = (), incident_id: int | None = None,
                  max_findings: int = 200) -> RecordReport:
    """Verify the record (see the module docstring); ``incident_id`` limits steps 2-3."""
    t0 = time.perf_counter()
    f = _Findings(max_findings)
    warnings: list[str] = []
    lid = log_id(public_key)
    params = None if incident_id is None else {"i": incident_id}

    # 1. the log: leaves (in order, gap-free), then every event's body against its leaf.
    leaf_seqs, leaf_events, stored = _leaves(session)
    leaf_hashes: list[bytes] = []
    for seq, lh in zip(leaf_seqs, stored, strict=True):
        if lh is None or len(lh) != 32:
            f.add(f"leaf {seq}: its stored hash is not a SHA-256 hash (it was altered)")
            lh = b"\x00" * 32  # noqa: PLW2901  (keeps the tree's shape: its root fails)
        leaf_hashes.append(lh)
    in_tree = len(leaf_hashes)
    for pos, seq in enumerate(leaf_seqs):
        if seq != pos:
            # The tree ends here; the events after the hole are still checked one by one.
            f.add(f"leaf {pos} is missing from the log (next stored leaf is {seq})")
            in_tree = pos
            break
    phases: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name] = round(now - mark, 3)
        mark = now

    phases["leaves"] = round(mark - t0, 3)
    tree = MerkleTree.from_leaf_hashes(leaf_hashes[:in_tree])
    lap("tree")
    position = {e: pos for pos, e in enumerate(leaf_events)}
    queued = {int(e): float(age) for e, age in _stream(
        session, "SELECT event_id::int8, extract(epoch FROM now() - queued_at)::float8 "
        "FROM log_pending", ("int8", "float8"))}

    seen = bytearray(len(leaf_events))
    #: incident -> (seq, state) of its newest event; the state raw (msgspec.Raw) or parsed
    newest: dict[int, tuple[int, Any]] = {}
    next_seq: dict[int, int] = {}  # incident -> the number its next event should have
    irregular: dict[int, list[int]] = {}  # numbers that did not come 1, 2, 3 ... in order
    events = pending = 0
    oldest: float | None = None
    leaf = hashlib.sha256(b"\x00")
    loads = orjson.loads
    decode_head = _decode_head
    state: Any
    for (eid, iid, iseq, kind, actor, at, data, body) in _events(session, incident_id):
        lpos = position.get(eid)
        events += 1
        if lpos is not None:
            seen[lpos] = 1
            hx = leaf.copy()
            hx.update(body)
            if hx.digest() != leaf_hashes[lpos]:
                f.add(f"event {eid} (incident {iid} #{iseq}): its body was changed after it "
                      f"was sealed as leaf {leaf_seqs[lpos]}", iid)
                continue
        else:
            age = queued.get(eid)
            if age is None:
                f.add(f"event {eid} (incident {iid} #{iseq}) is neither sealed nor queued for "
                      "sealing: it was inserted with the log's trigger disabled", iid)
            else:
                pending += 1
                oldest = max(oldest or 0.0, age)
        try:
            hd = decode_head(body)
            b_iid, b_seq, state = hd.incident_id, hd.incident_seq, hd.state
            ok = (b_iid == iid and b_seq == iseq and type(hd.kind) is str
                  and hd.kind.encode() == kind and type(hd.actor) is str
                  and hd.actor.encode() == actor and type(hd.at) is str and hd.at.encode() == at
                  and (hd.data == {} if data == b"{}" else hd.data == loads(data)))
        except (msgspec.DecodeError, orjson.JSONDecodeError, TypeError):
            ok = False
        if not ok:  # the exact way: the whole body, every column named
            b = _json_or_none(body)
            _check_event(f, b, eid, iid, {
                "incident_id": iid, "incident_seq": iseq, "kind": _text(kind),
                "actor": _text(actor), "at": _text(at), "data": _json_or_text(_text(data))})
            b_iid, b_seq = ((b.get("incident_id"), b.get("incident_seq"))
                            if isinstance(b, dict) else (None, None))
            state = b.get("state") if isinstance(b, dict) else None
        if lpos is not None and type(b_iid) is int and type(b_seq) is int:
            biid, bseq = b_iid, b_seq  # a sealed body says whose event it is
        else:
            biid, bseq = iid, iseq
        want = next_seq.get(biid, 1)
        if bseq == want:
            next_seq[biid] = want + 1
        else:
            irregular.setdefault(biid, []).append(bseq)
            next_seq.setdefault(biid, 1)
        prev = newest.get(biid)
        if prev is None or prev[0] < bseq:
            newest[biid] = (bseq, state)

    if incident_id is None:
        c_events, c_pending, c_oldest = _verify_calls(session, f, position, leaf_hashes,
                                                      leaf_seqs, queued, seen)
        b_events, b_pending, b_oldest = _verify_batches(session, f, position, leaf_hashes,
                                                        leaf_seqs, queued, seen)
        events += c_events + b_events
        pending += c_pending + b_pending
        for o in (c_oldest, b_oldest):
            if o is not None:
                oldest = max(oldest or 0.0, o)
        for pos in range(len(leaf_events)):
            if not seen[pos]:
                f.add(f"sealed leaf {leaf_seqs[pos]}: its event {leaf_events[pos]} was deleted")
    else:
        for seq, event_id in _stream(session, (
                "SELECT l.seq::int8, l.event_id::int8 FROM log_leaves l WHERE NOT EXISTS "
                "(SELECT 1 FROM incident_events e WHERE e.id = l.event_id) ORDER BY l.seq"),
                ("int8", "int8")):
            f.add(f"sealed leaf {seq}: its event {event_id} was deleted")

    lap("events")
    heads: list[tuple[str, TreeHead]] = []
    for r in session.execute(text("SELECT log_id, tree_size, root_hash, timestamp_ms, signature "
                                  "FROM tree_heads ORDER BY tree_size")):
        heads.append(("the database", TreeHead(r[0], int(r[1]), r[2], int(r[3]), r[4])))
    for w in witnesses:
        try:
            latest = w.latest()
        except Exception as exc:  # noqa: BLE001  (an unreachable witness is reported, not fatal)
            warnings.append(f"witness {w.name} unreachable: {exc}")
            continue
        if latest is None:
            warnings.append(f"witness {w.name} holds no tree head yet")
        else:
            heads.append((f"witness {w.name}", latest))
    newest_head = 0
    for where_, th in heads:
        if th.log_id != lid or not th.verify(public_key):
            f.add(f"{where_}: tree head {th.tree_size} is not signed by this centre's key")
            continue
        newest_head = max(newest_head, th.tree_size)
        if th.tree_size > tree.size:
            f.add(f"{where_} signed {th.tree_size} events but the log holds {tree.size}: "
                  "sealed events were cut off")
        elif tree.root(th.tree_size).hex() != th.root_hash:
            f.add(f"{where_}: the log does not give the signed root at size {th.tree_size}: "
                  "sealed events were removed, changed, reordered or re-forged")
    if tree.size > newest_head:
        f.add(f"leaves {newest_head}..{tree.size - 1} are not covered by any signed tree head")
    if oldest is not None and oldest > PENDING_STALE_S:
        warnings.append(f"{pending} events wait to be sealed, the oldest for {oldest:.0f} s: "
                        "is the sequencer (`geodispatch log sequence`) running?")

    lap("heads")
    # 2. per-incident numbering 1..N, and the incident's own count.
    # (an archive batch's incidents have no events of their own: step 4 checks them)
    counts: dict[int, int] = dict(session.execute(text(
        "SELECT id, event_count FROM incidents WHERE NOT (import_batch_id IS NOT NULL AND "
        "event_count = 0)" + ("" if incident_id is None else " AND id = :i")),
        params or {}).all())
    for iid in sorted(next_seq):
        in_order = next_seq[iid] - 1  # events 1..in_order came in order
        extra = irregular.get(iid)
        expected_n = max(in_order, int(counts.get(iid) or 0))
        if extra is None:
            missing = list(range(in_order + 1, expected_n + 1))
            twice = False
        else:
            got = list(range(1, in_order + 1)) + extra
            expected_n = max(expected_n, max(got))
            missing = sorted(set(range(1, expected_n + 1)) - set(got))
            twice = len(got) != len(set(got))
        if missing:
            shown = ", ".join(f"#{m}" for m in missing[:10])
            f.add(f"incident {iid}: event {shown} of {expected_n} is missing (removed)", iid)
        if twice:
            f.add(f"incident {iid}: an event number appears twice", iid)

    lap("numbering")
    # 3. the projection: the rows as they are must be the newest event's state.
    refs: dict[int, str] = {}
    agreed: set[int] = set()  # incidents whose rows the fast comparison found as recorded

    def recorded_state(iid: int) -> dict[str, Any] | None:
        recorded = newest.get(iid)
        state = recorded[1] if recorded is not None else None
        if isinstance(state, msgspec.Raw):
            state = _json_or_none(bytes(state))
        return state if isinstance(state, dict) else None

    fast = _fast_projection(session, incident_id)
    if fast is not None:
        for iid, canonical, reference in _canonical_states(session, fast):
            recorded = newest.get(iid)
            if recorded is not None and isinstance(recorded[1], msgspec.Raw) \
                    and bytes(recorded[1]) == canonical:
                agreed.add(iid)
                refs[iid] = reference
    # Everything else, and whatever differs, the exact way (after the streams: one statement
    # at a time on the connection).
    rest = sorted((set(counts) | set(newest)) - agreed)
    for start in range(0, len(rest), 1000):
        chunk = rest[start:start + 1000]
        now = project(session, chunk)
        for iid in chunk:
            have = now[iid]
            if have["incidents"]:
                refs[iid] = str(have["incidents"][0].get("reference"))
            if iid not in newest:
                f.add(f"incident {iid} has no events: it was inserted outside the record", iid)
                continue
            kept = recorded_state(iid)
            if kept is None:
                warnings.append(f"incident {iid}: its newest event predates kept state")
                continue
            if kept.get("incidents"):
                refs.setdefault(iid, str(kept["incidents"][0].get("reference")))
            _diff_state(f, iid, kept, have)
    lap("projection")
    # 4. reference numbers.
    if incident_id is None:
        taken: dict[tuple[str, int], set[int]] = {}
        for ref in refs.values():
            m = REFERENCE.match(ref)
            if m:
                taken.setdefault((m[1], int(m[2])), set()).add(int(m[3]))
        for region, year, last in session.execute(text(
                "SELECT region, year, last FROM reference_counters ORDER BY region, year")):
            have_nums = taken.get((region, int(year)), set())
            missing_refs = sorted(set(range(1, int(last) + 1)) - have_nums)
            for num in missing_refs[:20]:
                f.add(f"reference {region}-{year}-{num:06d} was issued but no incident has it: "
                      "a hidden report")
            if len(missing_refs) > 20:
                f.add(f"... and {len(missing_refs) - 20} more missing {region}-{year} references")

    items = [Finding(x.what, x.incident_id, refs.get(x.incident_id) if x.incident_id else None)
             for x in f.items]
    if f.total > len(items):
        warnings.append(f"{f.total - len(items)} more findings not listed")
    lap("references")
    return RecordReport(ok=f.total == 0, events=events, sealed=tree.size, pending=pending,
                        oldest_pending_s=oldest, tree_size=tree.size, heads_checked=len(heads),
                        findings=items, warnings=warnings, seconds=time.perf_counter() - t0,
                        phases=phases)


@dataclass(frozen=True)
class _Subject:
    """A subject of the record other than an incident: which column names it in
    ``incident_events``, what its body calls it and its number, where its event count is kept
    (``counts`` selects ``(id, count)`` of every subject that should have events) and how its
    rows are projected."""

    label: str
    column: str
    seq_key: str
    counts: str
    tables: Any
    project: Any


_SUBJECTS = (
    _Subject("call", "call_id", "call_seq", "SELECT id, event_count FROM calls",
             CALL_PROJECTED_TABLES, project_calls),
    _Subject("unit", "unit_id", "unit_seq",
             "SELECT unit_id, event_count FROM unit_rosters WHERE event_count > 0",
             ROSTER_PROJECTED_TABLES, project_rosters),
)


def _leaf_check(f: _Findings, eid: int, what: str, body: bytes, position: dict[int, int],
                leaf_hashes: list[bytes], leaf_seqs: list[int], queued: dict[int, float],
                seen: bytearray) -> tuple[bool, float | None]:
    """An event of a record other than an incident's against the log: its body must hash to
    its leaf, or the event must be queued for sealing. Marks its leaf seen and reports what is
    wrong, naming it by ``what``; returns whether its body can be checked further (False: it
    was changed after sealing) and, for a queued event, how long it has waited."""
    lpos = position.get(eid)
    if lpos is not None:
        seen[lpos] = 1
        if hashlib.sha256(b"\x00" + body).digest() != leaf_hashes[lpos]:
            f.add(f"event {eid} ({what}): its body was changed after it was sealed as leaf "
                  f"{leaf_seqs[lpos]}")
            return False, None
        return True, None
    age = queued.get(eid)
    if age is None:
        f.add(f"event {eid} ({what}) is neither sealed nor queued for sealing: it was "
              "inserted with the log's trigger disabled")
    return True, age


def _verify_batches(session: Session, f: _Findings, position: dict[int, int],
                    leaf_hashes: list[bytes], leaf_seqs: list[int], queued: dict[int, float],
                    seen: bytearray) -> tuple[int, int, float | None]:
    """Step 4: every archive batch has its one sealed event, and its rows hash as sealed.

    Returns the number of batch events, how many wait to be sealed and the oldest wait.
    """
    events = pending = 0
    oldest: float | None = None
    sealed: dict[int, dict[str, Any]] = {}
    rows = session.execute(text(
        "SELECT id, import_batch_id, incident_seq, kind, actor, " + _ISO_UTC_SQL.format("at")
        + ", data, body FROM incident_events WHERE import_batch_id IS NOT NULL ORDER BY id"))
    for eid, bid, bseq, kind, actor, at, data, body in rows:
        events += 1
        body = bytes(body)
        sealed_ok, age = _leaf_check(f, int(eid), f"import batch {bid}", body, position,
                                     leaf_hashes, leaf_seqs, queued, seen)
        if not sealed_ok:
            continue
        if age is not None:
            pending += 1
            oldest = max(oldest or 0.0, age)
        b = _json_or_none(body)
        if not isinstance(b, dict):
            f.add(f"event {eid} (import batch {bid}): its sealed body is not a JSON object")
            continue
        have = {"import_batch_id": bid, "batch_seq": bseq, "kind": kind, "actor": actor,
                "at": at, "data": data}
        for col, value in have.items():
            if b.get(col) != value:
                f.add(f"event {eid} (import batch {b.get('import_batch_id')}): column "
                      f"{'incident_seq' if col == 'batch_seq' else col} is {value!r} but its "
                      f"sealed body says {b.get(col)!r}")
        b_bid = b.get("import_batch_id")
        key = b_bid if type(b_bid) is int else int(bid)
        if key in sealed:
            f.add(f"import batch {key}: it has more than one event")
        body_data = b.get("data")
        sealed[key] = body_data if isinstance(body_data, dict) else {}
    batches = {int(i): str(name) for i, name in session.execute(text(
        "SELECT id, file_name FROM import_batches UNION SELECT DISTINCT import_batch_id, "
        "'(no batch row)' FROM incidents WHERE import_batch_id IS NOT NULL AND import_batch_id "
        "NOT IN (SELECT id FROM import_batches)"))}
    for bid in sorted(set(batches) | set(sealed)):
        name = batches.get(bid)
        if name is None:
            f.add(f"import batch {bid}: its row was deleted (its sealed event names "
                  f"{sealed[bid].get('file')!r})")
        rec = sealed.get(bid)
        if rec is None:
            f.add(f"import batch {bid} ({name}) has no event: its rows were inserted outside "
                  "the record")
            continue
        now = archive.batch_digest(session, bid)
        if now.rows_sha256 == rec.get("rows_sha256"):
            continue
        what = []
        for label, n, want in (("incidents", now.incidents, rec.get("incidents")),
                               ("assignments", now.assignments, rec.get("assignments"))):
            if n != want:
                what.append(f"{n} {label} where {want} were imported")
        f.add(f"import batch {bid} ({rec.get('file')}): its rows are not the rows imported "
              f"({'; '.join(what) or 'a value was changed'}; hash {now.rows_sha256[:12]} but "
              f"the record says {str(rec.get('rows_sha256'))[:12]})")
    return events, pending, oldest


def _verify_calls(session: Session, f: _Findings, position: dict[int, int],
                  leaf_hashes: list[bytes], leaf_seqs: list[int], queued: dict[int, float],
                  seen: bytearray) -> tuple[int, int, float | None]:
    """Steps 2 and 3 for the records of calls and of units' crew rosters (see
    :func:`_verify_subject`), summed."""
    events = pending = 0
    oldest: float | None = None
    for subject in _SUBJECTS:
        e, p, o = _verify_subject(session, f, subject, position, leaf_hashes, leaf_seqs,
                                  queued, seen)
        events += e
        pending += p
        if o is not None:
            oldest = max(oldest or 0.0, o)
    return events, pending, oldest


def _verify_subject(session: Session, f: _Findings, subject: _Subject,
                    position: dict[int, int], leaf_hashes: list[bytes], leaf_seqs: list[int],
                    queued: dict[int, float], seen: bytearray
                    ) -> tuple[int, int, float | None]:
    """Steps 2 and 3 for one kind of subject (the calls' records: events with ``call_id``;
    the units' crew rosters: ``unit_id``), the exact way.

    Each event's body must hash to its leaf and say what its columns say; each subject's
    events are numbered 1..N (N = its event count); the rows of each subject (a call, its
    callbacks, its matched locations; a unit's shifts) must equal its newest event's state.
    Returns the number of events, how many wait to be sealed and the oldest wait.
    """
    events = pending = 0
    oldest: float | None = None
    numbers: dict[int, list[int]] = {}
    newest: dict[int, tuple[int, Any]] = {}
    name, key, seq_key = subject.label, subject.column, subject.seq_key
    rows = session.execute(text(
        f"SELECT id, {key}, incident_seq, kind, actor, " + _ISO_UTC_SQL.format("at")
        + f", data, body FROM incident_events WHERE {key} IS NOT NULL ORDER BY id"))
    for eid, cid, cseq, kind, actor, at, data, body in rows:
        events += 1
        body = bytes(body)
        sealed_ok, age = _leaf_check(f, int(eid), f"{name} {cid} #{cseq}", body, position,
                                     leaf_hashes, leaf_seqs, queued, seen)
        if not sealed_ok:
            continue
        if age is not None:
            pending += 1
            oldest = max(oldest or 0.0, age)
        b = _json_or_none(body)
        if not isinstance(b, dict):
            f.add(f"event {eid} ({name} {cid}): its sealed body is not a JSON object")
            continue
        have = {key: cid, seq_key: cseq, "kind": kind, "actor": actor, "at": at, "data": data}
        for col, value in have.items():
            if b.get(col) != value:
                f.add(f"event {eid} ({name} {b.get(key)} #{b.get(seq_key)}): column "
                      f"{'incident_seq' if col == seq_key else col} is {value!r} but its "
                      f"sealed body says {b.get(col)!r}")
        b_cid, b_seq = b.get(key), b.get(seq_key)
        bcid: int = b_cid if type(b_cid) is int else int(cid)
        bseq: int = b_seq if type(b_seq) is int else int(cseq)
        numbers.setdefault(bcid, []).append(bseq)
        prev = newest.get(bcid)
        if prev is None or prev[0] < bseq:
            newest[bcid] = (bseq, b.get("state"))
    counts: dict[int, int] = {int(i): int(n) for i, n in session.execute(
        text(subject.counts)).all()}
    for cid in sorted(set(numbers) | set(counts)):
        got = numbers.get(cid, [])
        n = max([counts.get(cid, 0), *got])
        missing = sorted(set(range(1, n + 1)) - set(got))
        if cid not in counts:
            f.add(f"{name} {cid}: its row was deleted (its record has {len(got)} events)")
        elif not got:
            f.add(f"{name} {cid} has no events: it was inserted outside the record")
            continue
        if missing:
            shown = ", ".join(f"#{m}" for m in missing[:10])
            f.add(f"{name} {cid}: event {shown} of {n} is missing (removed)")
        if len(got) != len(set(got)):
            f.add(f"{name} {cid}: an event number appears twice")
    ids = sorted(set(counts) & set(newest))
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        now = subject.project(session, chunk)
        for cid in chunk:
            kept = newest[cid][1]
            if not isinstance(kept, dict):
                f.add(f"{name} {cid}: its newest event carries no state")
                continue
            _diff_rows(f, f"{name} {cid}", None, subject.tables, kept, now[cid])
    return events, pending, oldest


def _diff_rows(f: _Findings, who: str, iid: int | None, tables: Any, want: dict[str, Any],
               have: dict[str, Any]) -> None:
    """Name every row and column of ``have`` that differs from the recorded ``want``."""
    for table in tables:
        w = {str(r.get("id")): r for r in want.get(table) or [] if isinstance(r, dict)}
        h = {str(r.get("id")): r for r in have.get(table) or []}
        for rid in sorted(set(w) | set(h)):
            if rid not in h:
                f.add(f"{who}: {table} row {rid} is recorded but was removed", iid)
            elif rid not in w:
                f.add(f"{who}: {table} row {rid} exists but no event records it", iid)
            else:
                for col in sorted(set(w[rid]) | set(h[rid])):
                    if w[rid].get(col) != h[rid].get(col):
                        f.add(f"{who}: {table}.{col} (row {rid}) is {h[rid].get(col)!r} but "
                              f"the record says {w[rid].get(col)!r}", iid)


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "replace")


def _json_or_none(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _json_or_text(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)  # JSONB numbers beyond 64 bits
