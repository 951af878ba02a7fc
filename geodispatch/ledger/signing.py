"""The centre's Ed25519 key pair and signed tree heads.

A signed tree head (STH) says "the log with this id had ``tree_size`` leaves whose Merkle root is
``root_hash`` at ``timestamp_ms``". Its signed bytes are the RFC 8785 canonical JSON of::

    {"log_id": "<hex SHA-256 of the raw 32-byte public key>", "root_hash": "<hex>",
     "timestamp_ms": <int>, "tree_size": <int>, "v": 1}

so a verifier in any language that has RFC 8785 and Ed25519 reproduces them byte for byte.

Like the Merkle module this has no dependency on the database or the project's models.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

STH_VERSION = 1


class SigningKeyError(Exception):
    """The key file is missing, unreadable or not an Ed25519 key."""


def generate_keypair(private_path: Path, public_path: Path) -> bool:
    """Create the key pair if the private key does not exist yet; True when created.

    The private key is written 0600 with ``O_EXCL`` (two processes racing cannot both create
    one); the public key is written beside it for export.
    """
    private_path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        created = False
    else:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        created = True
    if created or not public_path.exists():
        pub = public_key_pem(load_private_key(private_path).public_key())
        public_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = public_path.with_suffix(public_path.suffix + f".{os.getpid()}.tmp")
        tmp.write_bytes(pub)
        os.replace(tmp, public_path)
    return created


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise SigningKeyError(f"cannot read the log signing key {path}: {exc.strerror}; "
                              "run `geodispatch log keygen`") from exc
    except ValueError as exc:
        raise SigningKeyError(f"{path} is not a PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 key")
    return key


def load_public_key(data: bytes | Path) -> Ed25519PublicKey:
    """A public key from PEM bytes or a PEM file."""
    try:
        raw = data.read_bytes() if isinstance(data, Path) else data
        key = serialization.load_pem_public_key(raw)
    except OSError as exc:
        raise SigningKeyError(f"cannot read the public key {data!s}: {exc.strerror}") from exc
    except ValueError as exc:
        raise SigningKeyError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError("the public key is not an Ed25519 key")
    return key


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def log_id(key: Ed25519PublicKey) -> str:
    """Hex SHA-256 of the raw public key: the log's name in every tree head."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class TreeHead:
    """A signed tree head. ``signature`` is base64 of the Ed25519 signature of :meth:`signed`."""

    log_id: str
    tree_size: int
    root_hash: str
    timestamp_ms: int
    signature: str = ""

    def signed(self) -> bytes:
        return rfc8785.dumps({"v": STH_VERSION, "log_id": self.log_id,
                              "tree_size": self.tree_size, "root_hash": self.root_hash,
                              "timestamp_ms": self.timestamp_ms})

    def as_dict(self) -> dict[str, Any]:
        return {"v": STH_VERSION, "log_id": self.log_id, "tree_size": self.tree_size,
                "root_hash": self.root_hash, "timestamp_ms": self.timestamp_ms,
                "signature": self.signature}

    @classmethod
    def from_dict(cls, d: Any) -> TreeHead:
        """Parse a tree head; ``ValueError`` names what is wrong."""
        if not isinstance(d, dict):
            raise ValueError("a tree head is a JSON object")
        try:
            if d.get("v") != STH_VERSION:
                raise ValueError(f"unknown tree head version {d.get('v')!r}")
            th = cls(log_id=str(d["log_id"]), tree_size=d["tree_size"],
                     root_hash=str(d["root_hash"]), timestamp_ms=d["timestamp_ms"],
                     signature=str(d["signature"]))
        except KeyError as exc:
            raise ValueError(f"tree head without {exc.args[0]!r}") from exc
        if (not isinstance(th.tree_size, int) or isinstance(th.tree_size, bool)
                or th.tree_size < 0):
            raise ValueError("tree_size must be a non-negative integer")
        if not isinstance(th.timestamp_ms, int) or isinstance(th.timestamp_ms, bool):
            raise ValueError("timestamp_ms must be an integer")
        if len(th.root_hash) != 64:
            raise ValueError("root_hash must be 64 hex characters")
        bytes.fromhex(th.root_hash)
        return th

    def sign(self, key: Ed25519PrivateKey) -> TreeHead:
        sig = base64.b64encode(key.sign(self.signed())).decode("ascii")
        return TreeHead(self.log_id, self.tree_size, self.root_hash, self.timestamp_ms, sig)

    def verify(self, key: Ed25519PublicKey) -> bool:
        """The signature is valid for this head and the head names this key's log."""
        if self.log_id != log_id(key):
            return False
        try:
            key.verify(base64.b64decode(self.signature, validate=True), self.signed())
        except (InvalidSignature, ValueError):
            return False
        return True
