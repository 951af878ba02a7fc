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
4. **References.** Public references ``REGION-YEAR-NNNNNN`` are gap-free up to each counter: a
   missing number is a hidden report.

Events committed but not yet sealed are reported (count and age); they are checked like every
other event but are not yet protected by a signature.

How it stays fast (a million events in seconds): the leaves and the events are each read in one
pass (``COPY ... (FORMAT binary)`` on psycopg 3, plain queries otherwise), without joins; the
Merkle tree is built level by level; each event's body is hashed and parsed once, and only the
newest body of each incident is kept, for step 3. The database writes each projected row in the
record's JSON spelling (:func:`_row_json_sql`, one type at a time: times in UTC with
microseconds, geometries as hex EWKB, integers beyond 2**53 as strings), so comparing a row with
the recorded state is one parse and one equality. Whenever that fast comparison, or the fast
check of an event's columns, finds any difference, the exact path (:func:`project` and the
column-by-column comparison) decides and names it, so what is reported never depends on the
shortcut; a column type the SQL spelling does not cover sends its table to the exact path.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from geoalchemy2 import Geometry
from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, LargeBinary, String, Table, text
from sqlalchemy.orm import Session

from geodispatch.incidents.record import PROJECTED_TABLES, SEALED_COLUMNS, project, sealed_value
from geodispatch.ledger.merkle import MerkleTree
from geodispatch.ledger.signing import TreeHead, log_id
from geodispatch.ledger.witness import Witness

REFERENCE = re.compile(r"^([A-Z0-9]+)-(\d{4})-(\d{6})$")
#: Queued events older than this mean the sequencer is not running.
PENDING_STALE_S = 60.0
_EMPTY = (None, 0, False, "", [], {})
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
    try:
        import psycopg
    except ImportError:  # pragma: no cover - the project's driver is psycopg 3
        psycopg = None  # type: ignore[assignment]
    if psycopg is not None and isinstance(dbapi, psycopg.Connection):
        with dbapi.cursor(binary=True) as cur, \
                cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT binary)") as copy:
            copy.set_types(list(types))
            yield from copy.rows()
        return
    blobs = [i for i, t in enumerate(types) if t == "bytea"]
    result = session.connection().exec_driver_sql(sql, execution_options={"yield_per": 20000})
    try:
        for row in result:
            if blobs:
                row = tuple(bytes(v) if i in blobs and v is not None else v  # noqa: PLW2901
                            for i, v in enumerate(row))
            yield tuple(row)
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

def _column_json_sql(ref: str, col: Any) -> str | None:
    """SQL giving the JSON value :func:`geodispatch.incidents.record.json_value` gives the
    column, or None for a type this does not cover (its table then takes the exact path)."""
    t = col.type
    if isinstance(t, Geometry):
        return f"to_json(encode(ST_AsEWKB({ref}), 'hex'))"
    if isinstance(t, Boolean | String):
        return f"to_json({ref})"
    if isinstance(t, Integer):
        return (f"CASE WHEN {ref} BETWEEN -{_SAFE_INT} AND {_SAFE_INT} THEN to_json({ref}) "
                f"ELSE to_json({ref}::text) END")
    if isinstance(t, Float) and not t.asdecimal:
        # float8out writes the shortest exact digits (extra_float_digits >= 1, checked); NaN
        # and infinities come out as strings json_value spells otherwise: the exact path.
        return f"to_json({ref})"
    if isinstance(t, DateTime) and t.timezone:
        return f"to_json({_ISO_UTC_SQL.format(ref)})"
    if isinstance(t, LargeBinary):
        return f"to_json(encode({ref}, 'hex'))"
    if isinstance(t, JSON):
        return f"{ref}::json"
    return None


def _row_json_sql(table: Table, alias: str) -> str | None:
    """One JSON object per row, keyed by column name, as :func:`project` writes it."""
    parts = []
    for col in table.columns:
        expr = _column_json_sql(f'{alias}."{col.name}"', col)
        if expr is None:
            return None
        parts.append(f"'{col.name}', {expr}")
    chunks = [", ".join(parts[i:i + 40]) for i in range(0, len(parts), 40)]
    if len(chunks) == 1:
        return f"json_build_object({chunks[0]})"
    return "(" + " || ".join(f"jsonb_build_object({c})" for c in chunks) + ")::json"


def _projection_sql(session: Session, incident_id: int | None) -> str | None:
    """``SELECT id, <incident rows>, <rows of each other projected table>`` as JSON text, or
    None when the exact path must be taken for every incident."""
    from geodispatch.incidents.record import _table

    if PROJECTED_TABLES.get("incidents") != "id":
        return None
    efd = session.execute(text("SELECT current_setting('extra_float_digits')::int")).scalar()
    if efd is None or int(efd) < 1:
        return None  # float8 output rounded: floats cannot be compared by their text
    cols = []
    for n, (name, key) in enumerate(PROJECTED_TABLES.items()):
        table = _table(name)
        obj = _row_json_sql(table, f"t{n}")
        if obj is None:
            return None
        order = ", ".join(f't{n}."{c.name}"' for c in table.primary_key.columns)
        cols.append(f"(SELECT coalesce(json_agg({obj} ORDER BY {order}), '[]'::json) "
                    f'FROM "{name}" t{n} WHERE t{n}."{key}" = i.id)::text')
    where = "" if incident_id is None else f" WHERE i.id = {int(incident_id)}"
    return f"SELECT i.id::int8, {', '.join(cols)} FROM incidents i{where} ORDER BY i.id"


def _sealed(have: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    for table, col in SEALED_COLUMNS:
        for rec in have.get(table, ()):
            if col in rec:
                rec[col] = sealed_value(table, col, rec.get("id"), rec[col])
    return have


# --- verification --------------------------------------------------------------------------------

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
    leaf_seqs: list[int] = []
    leaf_events: list[int] = []
    leaf_hashes: list[bytes] = []
    for seq, event_id, lh in _stream(session, "SELECT seq::int8, event_id::int8, leaf_hash "
                                     "FROM log_leaves ORDER BY seq", ("int8", "int8", "bytea")):
        leaf_seqs.append(seq)
        leaf_events.append(event_id)
        leaf_hashes.append(lh)
    in_tree = len(leaf_hashes)
    for pos, seq in enumerate(leaf_seqs):
        if seq != pos:
            # The tree ends here; the events after the hole are still checked one by one.
            f.add(f"leaf {pos} is missing from the log (next stored leaf is {seq})")
            in_tree = pos
            break
    tree = MerkleTree.from_leaf_hashes(leaf_hashes[:in_tree])
    position = {e: pos for pos, e in enumerate(leaf_events)}
    queued = {int(e): float(age) for e, age in _stream(
        session, "SELECT event_id::int8, extract(epoch FROM now() - queued_at)::float8 "
        "FROM log_pending", ("int8", "float8"))}

    seen = bytearray(len(leaf_events))
    newest: dict[int, tuple[int, bytes]] = {}  # incident -> (seq, body) of its newest event
    next_seq: dict[int, int] = {}  # incident -> the number its next event should have
    irregular: dict[int, list[int]] = {}  # numbers that did not come 1, 2, 3 ... in order
    events = pending = 0
    oldest: float | None = None
    leaf = hashlib.sha256(b"\x00")
    loads = orjson.loads
    for (eid, iid, iseq, kind, actor, at, data, body) in _stream(session, (
            "SELECT id::int8, incident_id::int8, incident_seq::int8, kind::text, actor::text, "
            f"{_ISO_UTC_SQL.format('at')}, data::text, body FROM incident_events"
            + ("" if incident_id is None else " WHERE incident_id = {i}")),
            ("int8", "int8", "int8", "text", "text", "text", "text", "bytea"), params):
        pos = position.get(eid)
        events += 1
        if pos is not None:
            seen[pos] = 1
            h = leaf.copy()
            h.update(body)
            if h.digest() != leaf_hashes[pos]:
                f.add(f"event {eid} (incident {iid} #{iseq}): its body was changed after it "
                      f"was sealed as leaf {leaf_seqs[pos]}", iid)
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
            b = loads(body)
            ok = (b["incident_id"] == iid and b["incident_seq"] == iseq and b["kind"] == kind
                  and b["actor"] == actor and b["at"] == at and b["data"] == loads(data))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            b = orjson.loads(body) if _is_json(body) else None
            ok = False
        if not ok:
            _check_event(f, b, eid, iid, {
                "incident_id": iid, "incident_seq": iseq, "kind": kind, "actor": actor,
                "at": at, "data": _json_or_text(data)})
        if pos is not None and isinstance(b, dict) and isinstance(b.get("incident_id"), int) \
                and isinstance(b.get("incident_seq"), int):
            biid, bseq = b["incident_id"], b["incident_seq"]  # a sealed body says whose it is
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
            newest[biid] = (bseq, body)

    if incident_id is None:
        for pos in range(len(leaf_events)):
            if not seen[pos]:
                f.add(f"sealed leaf {leaf_seqs[pos]}: its event {leaf_events[pos]} was deleted")
    else:
        for seq, event_id in _stream(session, (
                "SELECT l.seq::int8, l.event_id::int8 FROM log_leaves l WHERE NOT EXISTS "
                "(SELECT 1 FROM incident_events e WHERE e.id = l.event_id) ORDER BY l.seq"),
                ("int8", "int8")):
            f.add(f"sealed leaf {seq}: its event {event_id} was deleted")

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
    for where_, h in heads:
        if h.log_id != lid or not h.verify(public_key):
            f.add(f"{where_}: tree head {h.tree_size} is not signed by this centre's key")
            continue
        newest_head = max(newest_head, h.tree_size)
        if h.tree_size > tree.size:
            f.add(f"{where_} signed {h.tree_size} events but the log holds {tree.size}: "
                  "sealed events were cut off")
        elif tree.root(h.tree_size).hex() != h.root_hash:
            f.add(f"{where_}: the log does not give the signed root at size {h.tree_size}: "
                  "sealed events were removed, changed, reordered or re-forged")
    if tree.size > newest_head:
        f.add(f"leaves {newest_head}..{tree.size - 1} are not covered by any signed tree head")
    if oldest is not None and oldest > PENDING_STALE_S:
        warnings.append(f"{pending} events wait to be sealed, the oldest for {oldest:.0f} s: "
                        "is the sequencer (`geodispatch log sequence`) running?")

    # 2. per-incident numbering 1..N, and the incident's own count.
    counts = dict(session.execute(text(
        "SELECT id, event_count FROM incidents" + ("" if incident_id is None else
                                                    " WHERE id = :i")), params or {}).all())
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

    # 3. the projection: the rows as they are must be the newest event's state.
    refs: dict[int, str] = {}
    agreed: set[int] = set()  # incidents whose rows the fast comparison found as recorded

    def recorded_state(iid: int) -> dict[str, Any] | None:
        recorded = newest.get(iid)
        parsed = None if recorded is None else _json_or_none(recorded[1])
        state = parsed.get("state") if isinstance(parsed, dict) else None
        return state if isinstance(state, dict) else None

    fast_sql = _projection_sql(session, incident_id)
    if fast_sql is not None:
        tables = list(PROJECTED_TABLES)
        for row in _stream(session, fast_sql, ("int8",) + ("text",) * len(tables)):
            iid = int(row[0])
            state = recorded_state(iid)
            if state is not None and state == _sealed(
                    {t: loads(v) for t, v in zip(tables, row[1:], strict=True)}):
                agreed.add(iid)
                if state.get("incidents"):
                    refs[iid] = str(state["incidents"][0].get("reference"))
    # Everything else, and whatever differs, the exact way (after the stream: one query at a
    # time on the connection).
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
            state = recorded_state(iid)
            if state is None:
                warnings.append(f"incident {iid}: its newest event predates recorded state")
                continue
            if state.get("incidents"):
                refs.setdefault(iid, str(state["incidents"][0].get("reference")))
            _diff_state(f, iid, state, have)

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
    return RecordReport(ok=f.total == 0, events=events, sealed=tree.size, pending=pending,
                        oldest_pending_s=oldest, tree_size=tree.size, heads_checked=len(heads),
                        findings=items, warnings=warnings, seconds=time.perf_counter() - t0)


def _is_json(raw: bytes) -> bool:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return True


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
        import json

        return json.loads(raw)  # JSONB numbers beyond 64 bits
