"""The log's database-facing services: keys and witnesses from settings, proofs, export."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geodispatch.errors import ConfigurationError, NotFound
from geodispatch.ledger.merkle import MerkleTree
from geodispatch.ledger.offline import event_line, header_line
from geodispatch.ledger.sequencer import Sequencer, load_tree, stored_heads
from geodispatch.ledger.signing import (
    SigningKeyError,
    TreeHead,
    load_private_key,
    load_public_key,
    log_id,
)
from geodispatch.ledger.witness import FileWitness, HttpWitness, Witness
from geodispatch.settings import Settings

T = TypeVar("T")


def public_key(settings: Settings) -> Ed25519PublicKey:
    try:
        return load_public_key(settings.resolved_log_public_key)
    except SigningKeyError as exc:
        raise ConfigurationError(f"{exc}; run `geodispatch log keygen`") from exc


def witnesses(settings: Settings, key: Ed25519PublicKey) -> list[Witness]:
    """The tree-head file, then every configured witness."""
    out: list[Witness] = [FileWitness(settings.resolved_log_tree_head_file, key)]
    for spec in settings.log_witnesses:
        if spec.startswith(("http://", "https://")):
            out.append(HttpWitness(spec, log_id(key)))
        elif spec.startswith("file:"):
            out.append(FileWitness(Path(spec[5:]), key))
        else:
            raise ConfigurationError(f"log witness {spec!r}: expected http(s)://... or file:/path")
    return out


def newest_head(session: Session) -> TreeHead | None:
    r = session.execute(text("SELECT log_id, tree_size, root_hash, timestamp_ms, signature "
                             "FROM tree_heads ORDER BY tree_size DESC LIMIT 1")).first()
    return None if r is None else TreeHead(r[0], int(r[1]), r[2], int(r[3]), r[4])


class _StoredTree(MerkleTree):
    """The first ``size`` leaves of the stored log, read node by node.

    A proof needs O(log n) perfect subtree roots. Built without ``nodes`` the tree only notes
    which it would read (``wanted``); built with them it answers from them. So a proof costs one
    query for exactly the nodes it uses, however long the log.
    """

    def __init__(self, size: int, nodes: dict[tuple[int, int], bytes] | None = None) -> None:
        super().__init__()
        self._size = size
        self._nodes = nodes
        self.wanted: set[tuple[int, int]] = set()

    @property
    def size(self) -> int:
        return self._size

    def _node(self, level: int, index: int) -> bytes:
        if self._nodes is None:
            self.wanted.add((level, index))
            return bytes(32)
        return self._nodes[(level, index)]


def _stored(session: Session, size: int, use: Callable[[MerkleTree], T]) -> T:
    """``use(tree)`` over the first ``size`` stored leaves, reading only the nodes it needs."""
    probe = _StoredTree(size)
    use(probe)
    levels = [lv for lv, _ in probe.wanted if lv > 0]
    idx = [i for lv, i in probe.wanted if lv > 0]
    leaves = [i for lv, i in probe.wanted if lv == 0]
    rows = session.execute(text(
        "SELECT 0, seq, leaf_hash FROM log_leaves WHERE seq = ANY(CAST(:s AS bigint[])) "
        "UNION ALL SELECT n.level, n.idx, n.hash FROM log_nodes n JOIN unnest("
        "CAST(:l AS smallint[]), CAST(:i AS bigint[])) AS w(level, idx) USING (level, idx)"),
        {"s": leaves, "l": levels, "i": idx}).all()
    nodes = {(int(r[0]), int(r[1])): bytes(r[2]) for r in rows}
    if len(nodes) < len(probe.wanted):
        # Nodes not stored yet (a log sealed before they were; the sequencer fills them in at
        # its next start): rebuild the tree from the leaves instead.
        tree = load_tree(session.connection())
        if tree.size < size:
            raise NotFound(f"the log holds {tree.size} leaves, fewer than the signed {size}")
        return use(tree)
    return use(_StoredTree(size, nodes))


def inclusion(*, session: Session, event_id: int) -> dict[str, object]:
    """An event's leaf number and inclusion proof in the newest signed tree head."""
    seq = session.execute(text("SELECT seq FROM log_leaves WHERE event_id = :e"),
                          {"e": event_id}).scalar()
    head = newest_head(session)
    if seq is None or head is None or int(seq) >= head.tree_size:
        raise NotFound(f"event {event_id} is not sealed yet")
    proof = _stored(session, head.tree_size,
                    lambda t: t.inclusion_proof(int(seq), head.tree_size))
    return {"event_id": event_id, "seq": int(seq), "tree_head": head.as_dict(),
            "proof": [p.hex() for p in proof]}


def consistency(*, session: Session, old_size: int, new_size: int) -> list[str]:
    if not 0 <= old_size <= new_size:
        raise NotFound(f"no consistency proof from {old_size} to {new_size}")
    held = session.execute(text("SELECT count(*) FROM log_leaves WHERE seq < :n"),
                           {"n": new_size}).scalar_one()
    if int(held) < new_size:
        raise NotFound(f"the log holds {held} leaves, fewer than the signed {new_size}")
    return [p.hex() for p in _stored(session, new_size,
                                     lambda t: t.consistency_proof(old_size, new_size))]


def subject_by_reference(session: Session, reference: str) -> int:
    """The incident id whose events carry ``reference`` (the log's subjects are incidents)."""
    found = session.execute(text("SELECT id FROM incidents WHERE reference = :r"),
                            {"r": reference}).scalar_one_or_none()
    if found is None:
        raise NotFound(f"incident {reference} not found")
    return int(found)


def export_lines(*, session: Session, key: Ed25519PublicKey, incident_id: int | None = None
                 ) -> Iterator[bytes]:
    """The export format of :mod:`geodispatch.ledger.offline`, up to the newest tree head."""
    head = newest_head(session)
    size = 0 if head is None else head.tree_size
    heads = [h for h in stored_heads(session.connection()) if h.tree_size <= size]
    yield header_line(key=key, heads=heads, tree_size=size, complete=incident_id is None)
    if incident_id is None:
        result = session.execute(text(
            "SELECT l.seq, e.body FROM log_leaves l JOIN incident_events e ON e.id = l.event_id "
            "WHERE l.seq < :n ORDER BY l.seq").execution_options(yield_per=20000), {"n": size})
        for seq, body in result:
            yield event_line(int(seq), bytes(body))
        return
    rows = session.execute(text(
        "SELECT l.seq, e.body FROM log_leaves l JOIN incident_events e ON e.id = l.event_id "
        "WHERE l.seq < :n AND e.incident_id = :i ORDER BY l.seq"),
        {"n": size, "i": incident_id}).all()
    proofs = _stored(session, size, lambda t: [t.inclusion_proof(int(r[0]), size) for r in rows])
    for (seq, body), proof in zip(rows, proofs, strict=True):
        yield event_line(int(seq), bytes(body), proof)


def centre_sequencer(settings: Settings, engine: Engine) -> Sequencer:
    """The centre's sequencer: its signing key, every configured witness, the configured batch
    size. ``engine`` is the schema owner's (the sequencer writes the log tables)."""
    return Sequencer(engine, load_private_key(settings.resolved_log_signing_key),
                     witnesses(settings, public_key(settings)), batch_max=settings.log_seal_batch)
