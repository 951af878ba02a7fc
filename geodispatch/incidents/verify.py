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
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.incidents.record import PROJECTED_TABLES, iso_utc, project
from geodispatch.ledger.merkle import MerkleTree, leaf_hash
from geodispatch.ledger.signing import TreeHead, log_id
from geodispatch.ledger.witness import Witness

REFERENCE = re.compile(r"^([A-Z0-9]+)-(\d{4})-(\d{6})$")
#: Queued events older than this mean the sequencer is not running.
PENDING_STALE_S = 60.0
_EMPTY = (None, 0, False, "", [], {})


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


def _rows(session: Session, sql: str, params: dict[str, Any] | None = None
          ) -> Iterator[Any]:
    result = session.execute(text(sql).execution_options(yield_per=20000), params or {})
    try:
        yield from result
    finally:
        result.close()


def _check_event(f: _Findings, body: dict[str, Any], row: Any) -> None:
    """An event row's columns must say what its body says."""
    iid = int(row.incident_id)
    for col, have in (("incident_id", iid), ("incident_seq", row.incident_seq),
                      ("kind", row.kind), ("actor", row.actor), ("at", iso_utc(row.at)),
                      ("data", row.data)):
        if body.get(col) != have:
            f.add(f"event {row.id} (incident {body.get('incident_id')} #{body.get('incident_seq')}"
                  f"): column {col} is {have!r} but its sealed body says {body.get(col)!r}",
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


def verify_record(*, session: Session, public_key: Ed25519PublicKey,
                  witnesses: Sequence[Witness] = (), incident_id: int | None = None,
                  max_findings: int = 200) -> RecordReport:
    """Verify the record (see the module docstring); ``incident_id`` limits steps 2–3."""
    t0 = time.perf_counter()
    f = _Findings(max_findings)
    warnings: list[str] = []
    lid = log_id(public_key)

    # 1. the log: leaves, bodies, tree, heads.
    tree = MerkleTree()
    last_state: dict[int, Any] = {}
    seqs: dict[int, list[int]] = {}
    sealed_ids: set[int] = set()
    events = 0
    gap = False
    for row in _rows(session, (
            "SELECT l.seq, l.leaf_hash, l.event_id, e.id, e.body, e.incident_id, "
            "e.incident_seq, e.kind, e.actor, e.at, e.data "
            "FROM log_leaves l LEFT JOIN incident_events e ON e.id = l.event_id "
            "ORDER BY l.seq") if incident_id is None else (
            "SELECT l.seq, l.leaf_hash, l.event_id, e.id, "
            "CASE WHEN e.incident_id = :i THEN e.body END AS body, e.incident_id, "
            "e.incident_seq, e.kind, e.actor, e.at, e.data "
            "FROM log_leaves l LEFT JOIN incident_events e ON e.id = l.event_id "
            "ORDER BY l.seq"), {"i": incident_id} if incident_id is not None else None):
        lh = bytes(row.leaf_hash)
        if not gap and row.seq != tree.size:
            # The tree ends here; the events after the hole are still checked one by one.
            f.add(f"leaf {tree.size} is missing from the log (next stored leaf is {row.seq})")
            gap = True
        if not gap:
            tree.append(lh)
        sealed_ids.add(int(row.event_id))
        if row.id is None:
            f.add(f"sealed leaf {row.seq}: its event {row.event_id} was deleted")
            continue
        if incident_id is not None and row.body is None:
            continue
        events += 1
        raw = bytes(row.body)
        iid = int(row.incident_id)
        if leaf_hash(raw) != lh:
            f.add(f"event {row.id} (incident {iid} #{row.incident_seq}): its body was changed "
                  f"after it was sealed as leaf {row.seq}", iid)
            continue
        body = orjson.loads(raw)
        _check_event(f, body, row)
        biid = int(body["incident_id"])
        seqs.setdefault(biid, []).append(int(body["incident_seq"]))
        prev = last_state.get(biid)
        if prev is None or prev[0] < body["incident_seq"]:
            last_state[biid] = (body["incident_seq"], body.get("state"))
    sealed = tree.size

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
    newest = 0
    for where_, h in heads:
        if h.log_id != lid or not h.verify(public_key):
            f.add(f"{where_}: tree head {h.tree_size} is not signed by this centre's key")
            continue
        newest = max(newest, h.tree_size)
        if h.tree_size > tree.size:
            f.add(f"{where_} signed {h.tree_size} events but the log holds {tree.size}: "
                  "sealed events were cut off")
        elif tree.root(h.tree_size).hex() != h.root_hash:
            f.add(f"{where_}: the log does not give the signed root at size {h.tree_size}: "
                  "sealed events were removed, changed, reordered or re-forged")
    if tree.size > newest:
        f.add(f"leaves {newest}..{tree.size - 1} are not covered by any signed tree head")

    # 2. events not sealed yet: queued, or never queued (trigger disabled).
    filt = "" if incident_id is None else " AND e.incident_id = :i"
    params = {} if incident_id is None else {"i": incident_id}
    pending = 0
    oldest: float | None = None
    for row in _rows(session, (
            "SELECT e.id, e.body, e.incident_id, e.incident_seq, e.kind, e.actor, e.at, e.data, "
            "p.event_id AS queued, extract(epoch FROM now() - p.queued_at) AS age "
            "FROM incident_events e LEFT JOIN log_leaves l ON l.event_id = e.id "
            "LEFT JOIN log_pending p ON p.event_id = e.id WHERE l.event_id IS NULL" + filt
            + " ORDER BY e.id"), params):
        events += 1
        iid = int(row.incident_id)
        if row.queued is None:
            f.add(f"event {row.id} (incident {iid} #{row.incident_seq}) is neither sealed nor "
                  "queued for sealing: it was inserted with the log's trigger disabled", iid)
        else:
            pending += 1
            oldest = max(oldest or 0.0, float(row.age))
        body = orjson.loads(bytes(row.body))
        _check_event(f, body, row)
        seqs.setdefault(iid, []).append(int(row.incident_seq))
        prev = last_state.get(iid)
        if prev is None or prev[0] < row.incident_seq:
            last_state[iid] = (int(row.incident_seq), body.get("state"))
    if oldest is not None and oldest > PENDING_STALE_S:
        warnings.append(f"{pending} events wait to be sealed, the oldest for {oldest:.0f} s: "
                        "is the sequencer (`geodispatch log sequence`) running?")

    # Per-incident numbering 1..N, and the incident's own count.
    counts = dict(session.execute(text(
        "SELECT id, event_count FROM incidents" + ("" if incident_id is None else
                                                    " WHERE id = :i")), params).all())
    for iid, got in seqs.items():
        got.sort()
        n = max(got)
        expected_n = max(n, int(counts.get(iid) or 0))
        missing = sorted(set(range(1, expected_n + 1)) - set(got))
        if missing:
            shown = ", ".join(f"#{m}" for m in missing[:10])
            f.add(f"incident {iid}: event {shown} of {expected_n} is missing (removed)", iid)
        if len(got) != len(set(got)):
            f.add(f"incident {iid}: an event number appears twice", iid)

    # 3. the projection.
    ids = sorted(set(counts) | set(last_state))
    refs: dict[int, str] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        now = project(session, chunk)
        for iid in chunk:
            have = now[iid]
            if have["incidents"]:
                refs[iid] = str(have["incidents"][0].get("reference"))
            recorded = last_state.get(iid)
            if recorded is None:
                f.add(f"incident {iid} has no events: it was inserted outside the record", iid)
                continue
            if recorded[1] is None:
                warnings.append(f"incident {iid}: its newest event predates recorded state")
                continue
            want = recorded[1]
            if want.get("incidents"):
                refs.setdefault(iid, str(want["incidents"][0].get("reference")))
            _diff_state(f, iid, want, have)

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
    return RecordReport(ok=f.total == 0, events=events, sealed=sealed, pending=pending,
                        oldest_pending_s=oldest, tree_size=tree.size, heads_checked=len(heads),
                        findings=items, warnings=warnings, seconds=time.perf_counter() - t0)
