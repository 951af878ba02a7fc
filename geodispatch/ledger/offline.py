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

Speed: the file is read line by line. Whether a line or a body is canonical is decided by
:func:`is_canonical`: orjson's sorted serialisation, when it reproduces the bytes and none of the
constructs where orjson and RFC 8785 spell a value differently occurs (floats in exponent form
or with a ``.0``, integers beyond 2**53, characters from U+E000 up, where UTF-16 and code-point
key order differ), *is* the RFC 8785 form; anything else is decided by ``rfc8785`` itself. An
event line of a complete export (``{"body": <string>, "seq": <integer>}``, nothing else) is
canonical exactly when orjson writes it back byte for byte (:func:`_plain_event_line`): for
strings and integers below 2**53 the two serialisers agree, as tests/ledger check on every code
point.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from geodispatch.ledger.merkle import MerkleTree, verify_inclusion
from geodispatch.ledger.signing import (
    SigningKeyError,
    TreeHead,
    load_public_key,
    log_id,
    public_key_pem,
)

FORMAT = "geodispatch-log"
FORMAT_VERSION = 1


def header_line(*, key: Ed25519PublicKey, heads: Iterable[TreeHead], tree_size: int,
                complete: bool) -> bytes:
    return rfc8785.dumps({
        "format": FORMAT, "v": FORMAT_VERSION, "log_id": log_id(key),
        "public_key": public_key_pem(key).decode("ascii"),
        "tree_heads": [h.as_dict() for h in heads], "tree_size": tree_size,
        "complete": complete}) + b"\n"


#: Largest integer RFC 8785 writes (JSON numbers are IEEE doubles).
_SAFE_INT = 2**53 - 1


def event_line(seq: int, body: bytes, proof: list[bytes] | None = None) -> bytes:
    text = body.decode("utf-8")
    if proof is None and 0 <= seq <= _SAFE_INT:
        # RFC 8785 and orjson escape every string alike (tests/ledger check every code point),
        # so the canonical line is spelt out without the pure-Python serialiser.
        return b'{"body":' + orjson.dumps(text) + b',"seq":' + str(seq).encode() + b"}\n"
    rec: dict[str, Any] = {"seq": seq, "body": text}
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


#: Bytes whose presence sends a body that orjson reproduced to the exact check, because orjson
#: and RFC 8785 may spell the same value differently there: an integral float (orjson ``1.0``,
#: RFC 8785 ``1``; in canonical JSON a number never ends in ``.0``), an exponent (orjson writes
#: ``e+`` / ``e-``; its range differs from ECMAScript's). The same bytes inside a string only
#: cost that body the slower check. (A number that ends the text, ``.0`` at the very end, too.)
_INTEGRAL = re.compile(rb"\.0[,\]}]")
_EXPONENT = re.compile(rb"e[+\-]")


def _high(raw: bytes) -> bool:
    """Whether ``raw`` holds a UTF-8 lead byte of U+E000 and up: keys with such characters sort
    differently by UTF-16 code units (RFC 8785) than by code points (orjson)."""
    return (b"\xee" in raw or b"\xef" in raw or b"\xf0" in raw or b"\xf1" in raw
            or b"\xf2" in raw or b"\xf3" in raw or b"\xf4" in raw)


_FAST = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER  # integers beyond 2**53 raise


def is_canonical(raw: bytes, obj: Any) -> bool:
    """Whether ``raw`` is exactly the RFC 8785 serialisation of ``obj`` (parsed from ``raw``).

    orjson's sorted serialisation decides when it reproduces ``raw`` and none of the constructs
    where the two may differ occurs (integral floats, exponents, :func:`_high`, integers
    beyond 2**53); ``rfc8785`` decides everything else.
    """
    try:
        fast: bytes | None = orjson.dumps(obj, option=_FAST)
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 2**53, a value it cannot write
        fast = None
    if fast == raw and _INTEGRAL.search(raw) is None and _EXPONENT.search(raw) is None \
            and not raw.endswith(b".0") and (raw.isascii() or not _high(raw)):
        return True
    try:
        return bool(rfc8785.dumps(obj) == raw)
    except rfc8785.CanonicalizationError:
        return False


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)  # what orjson refuses (integers beyond 64 bits); raises if not JSON


def _canonical(line: bytes, n: int) -> Any:
    try:
        obj = _loads(line)
    except ValueError as exc:
        raise ValueError(f"line {n} is not JSON: {exc}") from exc
    try:
        ok = is_canonical(line, obj)
    except ValueError:  # rfc8785 cannot write it at all (NaN, an out-of-range integer)
        ok = False
    if not ok:
        raise ValueError(f"line {n} is not in canonical form (it was altered)")
    return obj


def _plain_event_line(line: bytes) -> tuple[int, bytes] | None:
    """``(seq, body)`` of a canonical ``{"body":"...","seq":N}`` line, or None (then the exact
    check decides, and names what is wrong)."""
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if type(rec) is not dict or len(rec) != 2:
        return None
    body, seq = rec.get("body"), rec.get("seq")
    if type(body) is not str or type(seq) is not int or not 0 <= seq <= _SAFE_INT:
        return None
    if orjson.dumps(rec, option=orjson.OPT_SORT_KEYS) != line:
        return None
    return seq, body.encode("utf-8")


#: Complete exports larger than this are read by several processes (one per CPU, at most 4).
PARALLEL_BYTES = 32 * 1024 * 1024


def verify_export(path: Path, key: Ed25519PublicKey | Path, *, workers: int | None = None
                  ) -> ExportReport:
    """Check an exported log file against the centre's public key.

    A large complete export is cut at line ends into ``workers`` pieces (default: the CPUs, at
    most 4) read by as many processes; the order-dependent checks (leaf numbers, each
    incident's event numbers) and the tree are then done here, in file order, so the report is
    the one a single process gives.
    """
    pub = key if isinstance(key, Ed25519PublicKey) else load_public_key(key)
    rep = ExportReport(ok=False)
    try:
        fh = path.open("rb")
    except OSError as exc:
        rep.problems.append(f"cannot read {path}: {exc.strerror}")
        return rep
    with fh:
        try:
            ends_with_newline = _ends_with_newline(fh)
        except OSError as exc:
            rep.problems.append(f"cannot read {path}: {exc.strerror}")
            return rep
        if not ends_with_newline:
            rep.problems.append("the file does not end with a newline (it was cut or altered)")
            return rep
        return _verify_lines(fh, path, pub, rep, workers)


def _ends_with_newline(fh: Any) -> bool:
    fh.seek(0, 2)
    if fh.tell() == 0:
        return False
    fh.seek(-1, 2)
    last = fh.read(1)
    fh.seek(0)
    return bool(last == b"\n")


def _read_event(line: bytes, n: int, complete: bool) -> tuple[Any, bytes, Any, Any]:
    """``(seq, body, event, record)`` of event line ``n``; ValueError, KeyError or TypeError
    naming what is wrong."""
    plain = _plain_event_line(line) if complete else None
    if plain is not None:
        seq, body = plain
        rec = None
    else:
        rec = _canonical(line, n)
        seq, body_text = rec["seq"], rec["body"]
        if not isinstance(seq, int) or not isinstance(body_text, str):
            raise ValueError(f"line {n}: seq must be an integer and body a string")
        body = body_text.encode("utf-8")
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        event = _canonical(body, n)  # the exact parser and its message
    else:
        if not is_canonical(body, event):
            raise ValueError(f"line {n} is not in canonical form (it was altered)")
    return seq, body, event, rec


@dataclass
class _Piece:
    """What one reader found in its lines of a complete export, in file order."""

    lines: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)
    ns: list[int] = field(default_factory=list)  # line numbers of the events read
    seqs: list[Any] = field(default_factory=list)
    #: (incident_id, incident_seq), ("call <id>", call_seq), ("unit <id>", unit_seq) or None
    incidents: list[Any] = field(default_factory=list)
    hashes: bytes = b""


def _read_piece(path: str, start: int, end: int, first_n: int) -> _Piece:
    """Read the complete export's lines in bytes ``[start, end)``; the first is line
    ``first_n``."""
    out = _Piece()
    leaf = hashlib.sha256(b"\x00")
    hashes = []
    with open(path, "rb") as fh:
        fh.seek(start)
        pos, n = start, first_n
        while pos < end:
            raw = fh.readline()
            pos += len(raw)
            try:
                seq, body, event, _rec = _read_event(raw[:-1], n, True)
            except (ValueError, KeyError, TypeError) as exc:
                out.problems.append((n, str(exc)))
            else:
                h = leaf.copy()
                h.update(body)
                hashes.append(h.digest())
                out.ns.append(n)
                out.seqs.append(seq)
                ids: tuple[Any, int] | None = None
                if isinstance(event, dict):
                    iid, iseq = event.get("incident_id"), event.get("incident_seq")
                    cid, cseq = event.get("call_id"), event.get("call_seq")
                    if isinstance(iid, int) and isinstance(iseq, int):
                        ids = (iid, iseq)
                    elif isinstance(cid, int) and isinstance(cseq, int):
                        ids = (f"call {cid}", cseq)  # a call's own record
                    elif isinstance(event.get("unit_id"), int) \
                            and isinstance(event.get("unit_seq"), int):
                        ids = (f"unit {event['unit_id']}", event["unit_seq"])  # a crew roster
                out.incidents.append(ids)
            n += 1
    out.lines = n - first_n
    out.hashes = b"".join(hashes)
    return out


def _pieces(path: Path, start: int, workers: int) -> list[_Piece]:
    """The events of a complete export (bytes ``start``.. of ``path``), read in parallel."""
    size = path.stat().st_size
    bounds = [start]
    with path.open("rb") as fh:
        for k in range(1, workers):
            fh.seek(max(start + (size - start) * k // workers, bounds[-1]))
            fh.readline()  # to the next line end
            bounds.append(min(fh.tell(), size))
        bounds.append(size)
        # The line number each piece starts at: count the line ends before it.
        first = [2]
        fh.seek(start)
        for a, b in zip(bounds[:-2], bounds[1:-1], strict=True):
            count, left = 0, b - a
            while left:
                block = fh.read(min(left, 1 << 24))
                count += block.count(b"\n")
                left -= len(block)
            first.append(first[-1] + count)
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=workers,
                             mp_context=multiprocessing.get_context(method)) as pool:
        jobs = [pool.submit(_read_piece, os.fspath(path), a, b, n)
                for a, b, n in zip(bounds[:-1], bounds[1:], first, strict=True)]
        return [j.result() for j in jobs]


def _verify_lines(fh: Any, path: Path, pub: Ed25519PublicKey, rep: ExportReport,
                  workers: int | None) -> ExportReport:
    try:
        header = _canonical(fh.readline()[:-1], 1)
        if not isinstance(header, dict):
            raise ValueError("the first line is not a JSON object")
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
    except (ValueError, KeyError, TypeError, SigningKeyError) as exc:
        rep.problems.append(f"header: {exc}")
        return rep
    rep.tree_size = size
    for h in heads:
        if not h.verify(pub):
            rep.problems.append(f"tree head {h.tree_size}: the signature does not verify")
    if not heads or max(h.tree_size for h in heads) != size:
        rep.problems.append(f"no signed tree head of the exported size {size}")
    newest = {h.tree_size: h for h in heads}.get(size)
    if not complete:
        return _verify_partial(fh, rep, size, newest, len(heads))

    start = fh.tell()
    n_workers = workers or min(os.cpu_count() or 1, 4)
    if n_workers > 1 and path.stat().st_size - start > PARALLEL_BYTES:
        pieces = _pieces(path, start, n_workers)
    else:
        pieces = [_read_piece(os.fspath(path), start, path.stat().st_size, 2)]

    # In file order: leaf numbers, each incident's event numbers, the tree.
    problems: list[tuple[int, str]] = []
    leaves: list[bytes] = []
    expected_seq: dict[Any, int] = {}
    for piece in pieces:
        problems.extend(piece.problems)
        rep.events += len(piece.ns)
        hashes = piece.hashes
        for i, (n, seq, ids) in enumerate(zip(piece.ns, piece.seqs, piece.incidents,
                                              strict=True)):
            if seq != len(leaves):
                problems.append((n, f"line {n}: leaf {seq} where {len(leaves)} was expected "
                                    "(events removed or reordered)"))
                continue
            leaves.append(hashes[32 * i:32 * i + 32])
            if ids is not None:
                iid, iseq = ids
                want = expected_seq.get(iid, 0) + 1
                if iseq != want:
                    who = iid if isinstance(iid, str) else f"incident {iid}"
                    problems.append((n, f"{who}: event #{iseq} follows #{want - 1}"))
                expected_seq[iid] = iseq
    problems.sort(key=lambda p: p[0])
    rep.problems.extend(msg for _n, msg in problems)
    tree = MerkleTree.from_leaf_hashes(leaves)
    if tree.size != size:
        rep.problems.append(f"the export holds {tree.size} leaves, its header says {size}")
    for h in heads:
        rep.heads_checked += 1
        if h.tree_size > tree.size or tree.root(h.tree_size).hex() != h.root_hash:
            rep.problems.append(f"the events do not give the signed root of tree head "
                                f"{h.tree_size}")
    rep.ok = not rep.problems
    return rep


def _verify_partial(fh: Any, rep: ExportReport, size: int, newest: TreeHead | None,
                    n_heads: int) -> ExportReport:
    """One incident's events, each proved into the newest head by its inclusion proof."""
    leaf = hashlib.sha256(b"\x00")
    for n, raw in enumerate(fh, 2):
        try:
            seq, body, _event, rec = _read_event(raw[:-1], n, False)
        except (ValueError, KeyError, TypeError) as exc:
            rep.problems.append(str(exc))
            continue
        rep.events += 1
        h = leaf.copy()
        h.update(body)
        proof_hex = rec.get("proof") if isinstance(rec, dict) else None
        try:
            proof = [bytes.fromhex(p) for p in proof_hex]  # type: ignore[union-attr]
        except (TypeError, ValueError):
            rep.problems.append(f"line {n}: malformed inclusion proof")
            continue
        if newest is None or not verify_inclusion(h.digest(), seq, size, proof,
                                                  bytes.fromhex(newest.root_hash)):
            rep.problems.append(f"line {n}: event (leaf {seq}) is not in the signed tree")
    rep.heads_checked = n_heads
    rep.ok = not rep.problems
    return rep
