"""The exported log format and its standalone verifier (no database, no project models).

An export is UTF-8 JSON lines, each line the RFC 8785 canonical form of its object and ended by
``\\n``:

- line 1, the header::

    {"format": "geodispatch-log", "v": 1, "log_id": "<hex>", "public_key": "<PEM>",
     "tree_heads": [<signed tree head>, ...], "tree_size": <n>, "complete": true|false}

- then one line per event, in leaf order::

    {"seq": <leaf number>, "body": "<the event body, itself RFC 8785 JSON, as a string>"}

  and, in a partial export (one incident's events), each event line also has
  ``"proof": ["<hex>", ...]``, its RFC 9162 inclusion proof in the tree of ``tree_size``.

The leaf of an event is ``SHA-256(0x00 || body as UTF-8)``. A complete export holds every leaf
0..n-1, so the verifier recomputes the root at every tree head; a partial export proves each of
its events into the newest head. Every line must equal its own canonical re-serialisation, so a
single changed byte anywhere (a space included) is reported.

Verify with ``geodispatch verify-log --export FILE --public-key KEY``, or in any language:
parse each line, check it is canonical RFC 8785, hash the bodies, and check the Ed25519
signature of each head over its canonical JSON without ``signature`` (see
:mod:`geodispatch.ledger.signing`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from geodispatch.ledger.merkle import MerkleTree, leaf_hash, verify_inclusion
from geodispatch.ledger.signing import TreeHead, load_public_key, log_id, public_key_pem

FORMAT = "geodispatch-log"
FORMAT_VERSION = 1


def header_line(*, key: Ed25519PublicKey, heads: Iterable[TreeHead], tree_size: int,
                complete: bool) -> bytes:
    return rfc8785.dumps({
        "format": FORMAT, "v": FORMAT_VERSION, "log_id": log_id(key),
        "public_key": public_key_pem(key).decode("ascii"),
        "tree_heads": [h.as_dict() for h in heads], "tree_size": tree_size,
        "complete": complete}) + b"\n"


def event_line(seq: int, body: bytes, proof: list[bytes] | None = None) -> bytes:
    rec: dict[str, Any] = {"seq": seq, "body": body.decode("utf-8")}
    if proof is not None:
        rec["proof"] = [p.hex() for p in proof]
    return rfc8785.dumps(rec) + b"\n"


@dataclass
class ExportReport:
    ok: bool
    events: int = 0
    tree_size: int = 0
    heads_checked: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "events": self.events, "tree_size": self.tree_size,
                "heads_checked": self.heads_checked, "problems": self.problems}


def _canonical(line: bytes, n: int) -> Any:
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"line {n} is not JSON: {exc}") from exc
    if rfc8785.dumps(obj) != line:
        raise ValueError(f"line {n} is not in canonical form (it was altered)")
    return obj


def verify_export(path: Path, key: Ed25519PublicKey | Path) -> ExportReport:
    """Check an exported log file against the centre's public key."""
    pub = key if isinstance(key, Ed25519PublicKey) else load_public_key(key)
    rep = ExportReport(ok=False)
    try:
        data = path.read_bytes()
    except OSError as exc:
        rep.problems.append(f"cannot read {path}: {exc.strerror}")
        return rep
    if not data.endswith(b"\n"):
        rep.problems.append("the file does not end with a newline (it was cut or altered)")
        return rep
    lines = data[:-1].split(b"\n")
    try:
        header = _canonical(lines[0], 1)
        if header.get("format") != FORMAT or header.get("v") != FORMAT_VERSION:
            raise ValueError("not a geodispatch log export (format/version)")
        if header.get("log_id") != log_id(pub):
            raise ValueError("the export names another log than this public key's")
        if load_public_key(str(header.get("public_key", "")).encode()).public_bytes_raw() \
                != pub.public_bytes_raw():
            raise ValueError("the export carries another public key than the one given")
        heads = [TreeHead.from_dict(h) for h in header["tree_heads"]]
        size = int(header["tree_size"])
        complete = header["complete"] is True
    except (ValueError, KeyError, TypeError) as exc:
        rep.problems.append(f"header: {exc}")
        return rep
    rep.tree_size = size
    for h in heads:
        if not h.verify(pub):
            rep.problems.append(f"tree head {h.tree_size}: the signature does not verify")
    if not heads or max(h.tree_size for h in heads) != size:
        rep.problems.append(f"no signed tree head of the exported size {size}")
    newest = {h.tree_size: h for h in heads}.get(size)

    tree = MerkleTree()
    expected_seq: dict[int, int] = {}
    for n, line in enumerate(lines[1:], 2):
        try:
            rec = _canonical(line, n)
            seq, body_text = rec["seq"], rec["body"]
            if not isinstance(seq, int) or not isinstance(body_text, str):
                raise ValueError(f"line {n}: seq must be an integer and body a string")
            body = body_text.encode("utf-8")
            event = _canonical(body, n)
        except (ValueError, KeyError, TypeError) as exc:
            rep.problems.append(str(exc))
            continue
        rep.events += 1
        lh = leaf_hash(body)
        if complete:
            if seq != tree.size:
                rep.problems.append(f"line {n}: leaf {seq} where {tree.size} was expected "
                                    "(events removed or reordered)")
                continue
            tree.append(lh)
            iid, iseq = event.get("incident_id"), event.get("incident_seq")
            if isinstance(iid, int) and isinstance(iseq, int):
                want = expected_seq.get(iid, 0) + 1
                if iseq != want:
                    rep.problems.append(f"incident {iid}: event #{iseq} follows #{want - 1}")
                expected_seq[iid] = iseq
        else:
            proof_hex = rec.get("proof")
            try:
                proof = [bytes.fromhex(p) for p in proof_hex]  # type: ignore[union-attr]
            except (TypeError, ValueError):
                rep.problems.append(f"line {n}: malformed inclusion proof")
                continue
            if newest is None or not verify_inclusion(lh, seq, size, proof,
                                                      bytes.fromhex(newest.root_hash)):
                rep.problems.append(f"line {n}: event (leaf {seq}) is not in the signed tree")
    if complete:
        if tree.size != size:
            rep.problems.append(f"the export holds {tree.size} leaves, its header says {size}")
        for h in heads:
            rep.heads_checked += 1
            if h.tree_size > tree.size or tree.root(h.tree_size).hex() != h.root_hash:
                rep.problems.append(f"the events do not give the signed root of tree head "
                                    f"{h.tree_size}")
    else:
        rep.heads_checked = len(heads)
    rep.ok = not rep.problems
    return rep
