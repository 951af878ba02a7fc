"""Witnesses: places outside the database that keep every signed tree head they accept.

The interface is two calls (:class:`Witness`): ``latest()`` gives the newest head the witness
holds, and ``submit(head, proof)`` offers a newer one with the RFC 9162 consistency proof from the
witness's latest size. A witness verifies the signature and the proof and **refuses a head that
is not a consistent extension of the last one it saw**, so a log that was truncated and re-forged
cannot be witnessed again, whatever anchor files were rewritten on the centre's host.

Two implementations:

- :class:`FileWitness`: an append-only JSON-lines file, fsynced per head (the centre's own
  tree-head file, or a directory on another disk or host mount).
- :class:`HttpWitness`: a client of the HTTP protocol below, served by
  ``geodispatch log witness-serve`` (and, with the federation issue, by the national centre).

HTTP protocol (JSON; hashes hex, signature base64; see :mod:`geodispatch.ledger.signing`)::

    GET  /v1/witness/{log_id}/head  -> 200 {"head": <tree head> | null}
    POST /v1/witness/{log_id}/head  {"head": <tree head>, "proof": ["<hex>", ...]}
         -> 200 {"accepted": true, "tree_size": n}
         -> 409 {"detail": "...", "tree_size": <witness's size>}   (not a consistent extension)
         -> 400 {"detail": "..."}                                  (bad signature, malformed)
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from geodispatch.ledger.merkle import verify_consistency
from geodispatch.ledger.signing import TreeHead


class WitnessRefused(Exception):
    """The witness did not accept the head; ``tree_size`` is the witness's own size if known."""

    def __init__(self, message: str, tree_size: int | None = None) -> None:
        super().__init__(message)
        self.tree_size = tree_size


class Witness(Protocol):
    name: str

    def latest(self) -> TreeHead | None: ...

    def submit(self, head: TreeHead, proof: list[bytes]) -> None: ...


@dataclass(frozen=True)
class Acceptance:
    previous: TreeHead | None
    head: TreeHead


def check_extension(key: Ed25519PublicKey, previous: TreeHead | None, head: TreeHead,
                    proof: list[bytes]) -> None:
    """Raise :class:`WitnessRefused` unless ``head`` is signed and extends ``previous``."""
    if not head.verify(key):
        raise WitnessRefused("the tree head's signature does not verify with this log's key")
    if previous is None:
        return
    if head.tree_size < previous.tree_size:
        raise WitnessRefused(
            f"tree size {head.tree_size} is smaller than the witnessed {previous.tree_size}: "
            "the log was cut off", previous.tree_size)
    if not verify_consistency(previous.tree_size, head.tree_size,
                              bytes.fromhex(previous.root_hash), bytes.fromhex(head.root_hash),
                              proof):
        raise WitnessRefused(
            f"tree head {head.tree_size} is not a consistent extension of the witnessed head "
            f"{previous.tree_size}: the log was rewritten", previous.tree_size)


class FileWitness:
    """Tree heads in an append-only JSON-lines file, one fsynced line per accepted head."""

    def __init__(self, path: Path, key: Ed25519PublicKey) -> None:
        self.path = path
        self.key = key
        self.name = f"file:{path}"
        self._lock = threading.Lock()
        self._latest: TreeHead | None = None
        self._loaded = False

    def heads(self) -> list[TreeHead]:
        """Every head in the file, oldest first (a malformed line raises ``ValueError``)."""
        if not self.path.exists():
            return []
        out = []
        with self.path.open("r", encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    out.append(TreeHead.from_dict(json.loads(line)))
                except ValueError as exc:
                    raise ValueError(f"{self.path} line {n}: {exc}") from exc
        return out

    def latest(self) -> TreeHead | None:
        with self._lock:
            if not self._loaded:
                heads = self.heads()
                self._latest = max(heads, key=lambda h: h.tree_size) if heads else None
                self._loaded = True
            return self._latest

    def submit(self, head: TreeHead, proof: list[bytes]) -> None:
        previous = self.latest()
        with self._lock:
            if previous is not None and head.tree_size == previous.tree_size \
                    and head.root_hash == previous.root_hash:
                return
            check_extension(self.key, previous, head, proof)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            line = json.dumps(head.as_dict(), sort_keys=True) + "\n"
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            self._latest = head


class HttpWitness:
    """A remote witness speaking the protocol in this module's docstring."""

    def __init__(self, url: str, log_id: str, timeout_s: float = 5.0) -> None:
        self.base = url.rstrip("/")
        self.log_id = log_id
        self.name = self.base
        self.timeout_s = timeout_s

    def _url(self) -> str:
        return f"{self.base}/v1/witness/{self.log_id}/head"

    def latest(self) -> TreeHead | None:
        r = httpx.get(self._url(), timeout=self.timeout_s)
        r.raise_for_status()
        head = r.json().get("head")
        return None if head is None else TreeHead.from_dict(head)

    def submit(self, head: TreeHead, proof: list[bytes]) -> None:
        r = httpx.post(self._url(), timeout=self.timeout_s,
                       json={"head": head.as_dict(), "proof": [p.hex() for p in proof]})
        if r.status_code in (400, 409):
            body: dict[str, Any] = r.json() if r.headers.get("content-type", "").startswith(
                "application/json") else {}
            raise WitnessRefused(str(body.get("detail", r.text)), body.get("tree_size"))
        r.raise_for_status()
