"""The sequencer: the log's single writer.

Requests insert their events in their own transactions; a trigger queues each new event id in
``log_pending``. The sequencer, a few times a second, takes the queued events in id order, gives
each the next leaf number, appends ``SHA-256(0x00 || body)`` to the Merkle tree, and ends the
batch with a signed tree head: one database transaction (leaves, tree head, queue rows removed),
then the head goes to the fsynced tree-head file and to every configured witness.

It is restartable at any point: on start it rebuilds the tree from the stored leaves and checks
it against the newest head in the database and in every witness before sealing anything more. A
log that no longer matches what was signed (rows removed, rewritten or re-forged) makes it refuse
to seal, loudly, instead of signing over the damage. One instance runs at a time (a session-level
advisory lock on the sequencer's own connection); every batch also checks that the stored log
ends where its own tree does, so a sequencer that lost that lock (its connection killed, the
database replaced) stops instead of sealing over another one's leaves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from geodispatch.ledger.merkle import MerkleTree, leaf_hash
from geodispatch.ledger.signing import TreeHead, log_id
from geodispatch.ledger.witness import Witness, WitnessRefused

log = logging.getLogger(__name__)

#: Session advisory-lock key held by the running sequencer (only this process uses it).
SEQUENCER_LOCK_KEY = 0x6764_6C6F_6773_6571  # "gdlogseq"


class LogInconsistent(Exception):
    """The stored log does not match a head that was signed and witnessed."""


class SequencerBusy(Exception):
    """Another sequencer holds the lock."""


@dataclass
class SealStats:
    batches: int = 0
    sealed: int = 0
    witness_failures: dict[str, str] = field(default_factory=dict)


def load_tree(conn: Connection) -> MerkleTree:
    """The Merkle tree over every stored leaf, checked for gaps in the leaf numbers."""
    tree = MerkleTree()
    result = conn.execution_options(yield_per=20000).execute(
        text("SELECT seq, leaf_hash FROM log_leaves ORDER BY seq"))
    for seq, lh in result:
        if seq != tree.size:
            raise LogInconsistent(f"leaf {tree.size} is missing (next stored leaf is {seq})")
        tree.append(bytes(lh))
    return tree


def store_nodes(conn: Connection, nodes: Sequence[tuple[int, int, bytes]], *,
                skip_existing: bool = False) -> None:
    """Insert interior nodes ``(level, index, hash)`` into ``log_nodes``."""
    tail = " ON CONFLICT DO NOTHING" if skip_existing else ""
    for start in range(0, len(nodes), 50000):
        chunk = nodes[start:start + 50000]
        conn.execute(text(
            "INSERT INTO log_nodes (level, idx, hash) SELECT * FROM unnest("
            "CAST(:l AS smallint[]), CAST(:i AS bigint[]), CAST(:h AS bytea[]))" + tail),
            {"l": [n[0] for n in chunk], "i": [n[1] for n in chunk], "h": [n[2] for n in chunk]})


def stored_heads(conn: Connection) -> list[TreeHead]:
    rows = conn.execute(text("SELECT log_id, tree_size, root_hash, timestamp_ms, signature "
                             "FROM tree_heads ORDER BY tree_size")).all()
    return [TreeHead(r[0], int(r[1]), r[2], int(r[3]), r[4]) for r in rows]


class Sequencer:
    """Seal queued events into the signed log (see the module docstring)."""

    def __init__(self, engine: Engine, key: Ed25519PrivateKey, witnesses: Sequence[Witness],
                 *, batch_max: int = 5000) -> None:
        self.engine = engine
        self.key = key
        self.log_id = log_id(key.public_key())
        self.witnesses = list(witnesses)
        self.batch_max = batch_max
        self.tree = MerkleTree()
        self.stats = SealStats()
        self._lock_conn: Connection | None = None

    # --- start ------------------------------------------------------------------------------

    def open(self) -> None:
        """Take the single-writer lock, rebuild the tree, and check it against every head."""
        conn = self.engine.connect()
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                           {"k": SEQUENCER_LOCK_KEY}).scalar()
        conn.commit()
        if not got:
            conn.close()
            raise SequencerBusy("another sequencer is running against this database")
        self._lock_conn = conn
        try:
            with self.engine.connect() as c:
                self.tree = load_tree(c)
                heads = stored_heads(c)
            self._check_heads(heads, "the database")
            with self.engine.begin() as c:
                have = int(c.execute(text("SELECT count(*) FROM log_nodes")).scalar_one())
                if have < sum(len(level) for level in self.tree.levels[1:]):
                    # A log sealed before nodes were stored (or cut short): fill them in.
                    store_nodes(c, self.tree.new_nodes(MerkleTree()), skip_existing=True)
            for w in self.witnesses:
                try:
                    latest = w.latest()
                except Exception as exc:  # noqa: BLE001  (a witness being down is not fatal)
                    log.warning("witness %s unreachable at start: %s", w.name, exc)
                    continue
                if latest is not None:
                    self._check_heads([latest], f"witness {w.name}")
        except BaseException:
            self.close()
            raise

    def _check_heads(self, heads: Sequence[TreeHead], where: str) -> None:
        pub = self.key.public_key()
        for h in heads:
            if h.log_id != self.log_id:
                raise LogInconsistent(f"{where} holds a head of another log ({h.log_id[:16]}...)")
            if not h.verify(pub):
                raise LogInconsistent(f"{where}: tree head {h.tree_size} has a bad signature")
            if h.tree_size > self.tree.size:
                raise LogInconsistent(
                    f"{where} witnessed {h.tree_size} leaves but the database has "
                    f"{self.tree.size}: sealed events were removed")
            if self.tree.root(h.tree_size).hex() != h.root_hash:
                raise LogInconsistent(
                    f"{where}: the stored leaves do not give the signed root at size "
                    f"{h.tree_size}: sealed events were changed")

    def close(self) -> None:
        if self._lock_conn is not None:
            try:
                self._lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"),
                                        {"k": SEQUENCER_LOCK_KEY})
                self._lock_conn.commit()
            except Exception:  # noqa: BLE001  (the connection may already be gone)
                pass
            self._lock_conn.close()
            self._lock_conn = None

    # --- sealing ----------------------------------------------------------------------------

    def seal_once(self) -> TreeHead | None:
        """Seal one batch of queued events; the new signed head, or None if nothing was queued."""
        with self.engine.begin() as conn:
            rows = conn.execute(
                text("SELECT p.event_id, e.body FROM log_pending p "
                     "JOIN incident_events e ON e.id = p.event_id "
                     "ORDER BY p.event_id LIMIT :n FOR UPDATE OF p"), {"n": self.batch_max}
            ).all()
            if not rows:
                return None
            start = self.tree.size
            stored = int(conn.execute(
                text("SELECT coalesce(max(seq) + 1, 0) FROM log_leaves")).scalar_one())
            if stored != start:
                # Another writer sealed (this one lost its lock's connection, or the database
                # was replaced under it): signing on from a stale tree would fork the log.
                raise LogInconsistent(
                    f"the log holds {stored} leaves but this sequencer's tree has {start}: "
                    "another sequencer wrote to it; restart to rebuild the tree")
            hashes = [leaf_hash(bytes(r[1])) for r in rows]
            candidate = MerkleTree()
            candidate.levels = [list(level) for level in self.tree.levels]
            candidate.extend(hashes)
            conn.execute(
                text("INSERT INTO log_leaves (seq, event_id, leaf_hash) "
                     "SELECT * FROM unnest(CAST(:s AS bigint[]), CAST(:e AS bigint[]), "
                     "CAST(:h AS bytea[]))"),
                {"s": list(range(start, start + len(rows))), "e": [int(r[0]) for r in rows],
                 "h": hashes})
            try:
                with conn.begin_nested():
                    store_nodes(conn, candidate.new_nodes(self.tree))
            except IntegrityError as exc:
                raise LogInconsistent(
                    "log_nodes already holds interior nodes at positions this batch fills: the "
                    "leaves before them were removed or rewritten") from exc
            conn.execute(text("DELETE FROM log_pending WHERE event_id = ANY(:e)"),
                         {"e": [int(r[0]) for r in rows]})
            head = TreeHead(self.log_id, candidate.size, candidate.root().hex(),
                            int(time.time() * 1000)).sign(self.key)
            conn.execute(
                text("INSERT INTO tree_heads (tree_size, root_hash, timestamp_ms, log_id, "
                     "signature) VALUES (:s, :r, :t, :l, :g)"),
                {"s": head.tree_size, "r": head.root_hash, "t": head.timestamp_ms,
                 "l": head.log_id, "g": head.signature})
        self.tree = candidate
        self.stats.batches += 1
        self.stats.sealed += len(rows)
        self.witness(head)
        return head

    def witness(self, head: TreeHead) -> None:
        """Offer ``head`` to every witness, with a proof from the size each last accepted."""
        for w in self.witnesses:
            try:
                latest = w.latest()
                old = 0 if latest is None else latest.tree_size
                if old > head.tree_size:
                    raise WitnessRefused(f"witness holds {old} leaves, more than this log's "
                                         f"{head.tree_size}", old)
                w.submit(head, self.tree.consistency_proof(old, head.tree_size))
                self.stats.witness_failures.pop(w.name, None)
            except WitnessRefused as exc:
                # A refusal is evidence that this log was rewritten: say so every time.
                log.critical("witness %s REFUSED tree head %s: %s", w.name, head.tree_size, exc)
                self.stats.witness_failures[w.name] = str(exc)
            except Exception as exc:  # noqa: BLE001  (unreachable witness: retried next batch)
                log.warning("witness %s unreachable: %s", w.name, exc)
                self.stats.witness_failures[w.name] = f"unreachable: {exc}"

    def drain(self) -> int:
        """Seal until the queue is empty; the number of events sealed."""
        before = self.stats.sealed
        while self.seal_once() is not None:
            pass
        return self.stats.sealed - before

    def run(self, stop: threading.Event, interval_s: float) -> None:
        """Seal every ``interval_s`` until ``stop`` is set; database errors are retried."""
        while not stop.is_set():
            try:
                while self.seal_once() is not None and not stop.is_set():
                    pass
            except LogInconsistent:
                raise
            except Exception:  # noqa: BLE001  (the database restarting must not end sealing)
                log.exception("sealing failed; retrying in %.1f s", max(interval_s, 1.0))
                stop.wait(max(interval_s, 1.0))
                continue
            stop.wait(interval_s)
