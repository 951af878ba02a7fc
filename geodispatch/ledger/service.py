"""The log's database-facing services: keys and witnesses from settings, proofs, export."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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


def _tree(session: Session, size: int) -> MerkleTree:
    tree = load_tree(session.connection())
    if tree.size < size:
        raise NotFound(f"the log holds {tree.size} leaves, fewer than the signed {size}")
    return tree


def inclusion(*, session: Session, event_id: int) -> dict[str, object]:
    """An event's leaf number and inclusion proof in the newest signed tree head."""
    seq = session.execute(text("SELECT seq FROM log_leaves WHERE event_id = :e"),
                          {"e": event_id}).scalar()
    head = newest_head(session)
    if seq is None or head is None:
        raise NotFound(f"event {event_id} is not sealed yet")
    tree = _tree(session, head.tree_size)
    return {"event_id": event_id, "seq": int(seq), "tree_head": head.as_dict(),
            "proof": [p.hex() for p in tree.inclusion_proof(int(seq), head.tree_size)]}


def consistency(*, session: Session, old_size: int, new_size: int) -> list[str]:
    tree = _tree(session, new_size)
    try:
        return [p.hex() for p in tree.consistency_proof(old_size, new_size)]
    except ValueError as exc:
        raise NotFound(str(exc)) from exc


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
    tree = _tree(session, size)
    for seq, body in session.execute(text(
            "SELECT l.seq, e.body FROM log_leaves l JOIN incident_events e ON e.id = l.event_id "
            "WHERE l.seq < :n AND e.incident_id = :i ORDER BY l.seq"),
            {"n": size, "i": incident_id}):
        yield event_line(int(seq), bytes(body), tree.inclusion_proof(int(seq), size))


def centre_sequencer(settings: Settings, engine: Engine) -> Sequencer:
    """The centre's sequencer: its signing key, every configured witness, the configured batch
    size. ``engine`` is the schema owner's (the sequencer writes the log tables)."""
    return Sequencer(engine, load_private_key(settings.resolved_log_signing_key),
                     witnesses(settings, public_key(settings)), batch_max=settings.log_seal_batch)
