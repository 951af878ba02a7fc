"""Signed conveyance of EIDOs: JWS, the signed-log proof, and NENA-STA-024 messages.

No database here. A regional centre sends each EIDO as a compact JWS (RFC 7515, algorithm
``Ed25519`` of RFC 9864 — EdDSA over the centre's Ed25519 log key; ``kid`` = the log id) whose
payload is the EIDO itself, carrying one extension member, ``geodispatchLog``::

    {"treeHead": <signed tree head of the regional log>,
     "events": [{"seq": <leaf index>, "body": "<RFC 8785 event body>", "proof": ["<hex>", ...]}],
     "consistency": {"fromSize": n, "proof": ["<hex>", ...]},   # from the receiver's last head
     "notificationId": "<uuid>", "issuedAtMs": <int>}

``events`` is the incident's whole sealed record, each event with its RFC 9162 inclusion proof
in ``treeHead``; ``consistency`` proves ``treeHead`` extends the head the receiver last
witnessed. :func:`verify_log` checks all of it against the centre's public key and returns the
verified events, so what the receiver projects comes from them, never from the EIDO body alone
(the body is only cross-checked against the verified state).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from geodispatch.federation.eido import LOG_EXTENSION, LOG_EXTENSION_ID
from geodispatch.ledger.merkle import leaf_hash, verify_consistency, verify_inclusion
from geodispatch.ledger.signing import TreeHead, log_id

JWS_ALG = "Ed25519"
JWS_TYPE = "eido+jws"
SUBPROTOCOL = "emergency-ent1.0"


class Refused(Exception):
    """A document the receiver will not take; ``code`` is one of :data:`REFUSAL_CODES`."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


#: Why a document is refused (stored with every refusal).
REFUSAL_CODES = ("unsigned", "malformed", "unknown_key", "bad_signature", "schema", "replayed",
                 "tampered", "inconsistent", "stale_proof")


# --- JWS ---------------------------------------------------------------------------------------


def _okp_private(key: Ed25519PrivateKey) -> OKPKey:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return OKPKey.import_key(pem)


def _okp_public(key: Ed25519PublicKey) -> OKPKey:
    pem = key.public_bytes(serialization.Encoding.PEM,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return OKPKey.import_key(pem)


class Signer:
    """Signs payloads as compact JWS with one Ed25519 key (the centre's log key)."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.kid = log_id(key.public_key())
        self._key = _okp_private(key)

    def sign(self, payload: Mapping[str, Any], typ: str = JWS_TYPE) -> str:
        header = {"alg": JWS_ALG, "kid": self.kid, "typ": typ}
        return jws.serialize_compact(header, json.dumps(payload, ensure_ascii=False,
                                                        separators=(",", ":")).encode(),
                                     self._key, algorithms=[JWS_ALG])


def jws_header(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS, unverified (to find the key by ``kid``)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise Refused("unsigned", "not a compact JWS (three base64url parts)")
    try:
        raw = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4))
        header = json.loads(raw)
    except ValueError as exc:
        raise Refused("malformed", f"unreadable JWS header: {exc}") from None
    if not isinstance(header, dict):
        raise Refused("malformed", "the JWS header is not an object")
    return header


def verify_jws(token: str, key: Ed25519PublicKey) -> dict[str, Any]:
    """The payload of ``token`` if it is signed by ``key`` with Ed25519, else :class:`Refused`."""
    header = jws_header(token)
    if header.get("alg") != JWS_ALG:
        raise Refused("bad_signature", f"JWS algorithm {header.get('alg')!r}, expected {JWS_ALG}")
    try:
        obj = jws.deserialize_compact(token, _okp_public(key), algorithms=[JWS_ALG])
    except (JoseError, ValueError) as exc:
        raise Refused("bad_signature", f"the signature does not verify: {exc}") from None
    try:
        payload = json.loads(obj.payload)
    except ValueError as exc:
        raise Refused("malformed", f"the signed payload is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise Refused("malformed", "the signed payload is not a JSON object")
    return payload


def credential(signer: Signer, *, issuer: str, audience: str) -> str:
    """A short-lived signed credential a subscriber presents (``Authorization: Signature ...``)."""
    return signer.sign({"iss": issuer, "aud": audience, "iat": int(time.time()),
                        "jti": uuid.uuid4().hex}, typ="JWT")


def check_credential(token: str, keys: Sequence[Ed25519PublicKey], *, max_skew_s: float
                     ) -> dict[str, Any]:
    """The claims of a subscriber's credential signed by one of ``keys``; else :class:`Refused`."""
    kid = jws_header(token).get("kid")
    for k in keys:
        if log_id(k) == kid:
            claims = verify_jws(token, k)
            iat = claims.get("iat")
            if not isinstance(iat, int) or abs(time.time() - iat) > max_skew_s:
                raise Refused("stale_proof", "the credential is too old or from the future")
            return claims
    raise Refused("unknown_key", "the credential is signed by a key this centre does not know")


# --- the signed-log proof ----------------------------------------------------------------------


@dataclass(frozen=True)
class LogEvent:
    """One sealed event: its leaf index, canonical body and inclusion proof."""

    seq: int
    body: bytes
    proof: Sequence[bytes]


def attach_log(doc: dict[str, Any], *, head: TreeHead, events: Sequence[LogEvent],
               consistency: tuple[int, Sequence[bytes]] | None = None,
               notification_id: str | None = None) -> dict[str, Any]:
    """``doc`` with the ``geodispatchLog`` extension (declared in ``eidoExtensionId``)."""
    ext: dict[str, Any] = {
        "treeHead": head.as_dict(),
        "events": [{"seq": e.seq, "body": e.body.decode("utf-8"),
                    "proof": [p.hex() for p in e.proof]} for e in events],
    }
    if consistency is not None:
        ext["consistency"] = {"fromSize": consistency[0],
                              "proof": [p.hex() for p in consistency[1]]}
    if notification_id is not None:
        ext["notificationId"] = notification_id
        ext["issuedAtMs"] = int(time.time() * 1000)
    out = dict(doc)
    out["eidoExtensionId"] = sorted(set(doc.get("eidoExtensionId", [])) | {LOG_EXTENSION_ID})
    out[LOG_EXTENSION] = ext
    return out


@dataclass(frozen=True)
class VerifiedEvent:
    seq: int
    body: bytes
    leaf: bytes
    event: dict[str, Any]


@dataclass(frozen=True)
class VerifiedLog:
    """What :func:`verify_log` proved: a signed head and the incident's events under it."""

    head: TreeHead
    events: list[VerifiedEvent]
    consistency: tuple[int, list[bytes]] | None
    notification_id: str | None

    @property
    def state(self) -> dict[str, Any]:
        """The incident's projected rows after its last verified event."""
        st = self.events[-1].event.get("state")
        return st if isinstance(st, dict) else {}


def _hexes(v: Any, what: str) -> list[bytes]:
    if not isinstance(v, list):
        raise Refused("malformed", f"{what} is not a list")
    try:
        out = [bytes.fromhex(str(p)) for p in v]
    except ValueError:
        raise Refused("malformed", f"{what} holds a value that is not hex") from None
    if any(len(p) != 32 for p in out):
        raise Refused("malformed", f"{what} holds a hash that is not 32 bytes")
    return out


def verify_log(doc: Mapping[str, Any], key: Ed25519PublicKey) -> VerifiedLog:
    """Check the ``geodispatchLog`` proof of ``doc`` against the centre's key.

    The tree head must be signed by ``key``; every event body canonical (RFC 8785) and included
    in that head; the events one incident's complete record, numbered 1..N; and what the EIDO
    body says about the incident equal to the state the last event sealed.

    Raises
    ------
    Refused
        ``malformed`` / ``tampered`` with the first thing found wrong.
    """
    ext = doc.get(LOG_EXTENSION)
    if not isinstance(ext, Mapping):
        raise Refused("tampered", f"no {LOG_EXTENSION} proof: the events are not verifiable")
    try:
        head = TreeHead.from_dict(ext.get("treeHead"))
    except ValueError as exc:
        raise Refused("malformed", f"tree head: {exc}") from None
    if not head.verify(key):
        raise Refused("tampered", "the tree head is not signed by this centre's log key")
    root = bytes.fromhex(head.root_hash)
    raw_events = ext.get("events")
    if not isinstance(raw_events, list) or not raw_events:
        raise Refused("tampered", "the proof carries no events")
    events: list[VerifiedEvent] = []
    for n, e in enumerate(raw_events, 1):
        if not isinstance(e, Mapping) or not isinstance(e.get("body"), str) \
                or not isinstance(e.get("seq"), int):
            raise Refused("malformed", f"event {n} is not {{seq, body, proof}}")
        body = e["body"].encode("utf-8")
        try:
            parsed = json.loads(body)
        except ValueError:
            raise Refused("tampered", f"event {n}'s body is not JSON") from None
        if not isinstance(parsed, dict) or rfc8785.dumps(parsed) != body:
            raise Refused("tampered", f"event {n}'s body is not in canonical form")
        lh = leaf_hash(body)
        if not verify_inclusion(lh, int(e["seq"]), head.tree_size,
                                _hexes(e.get("proof"), f"event {n}'s proof"), root):
            raise Refused("tampered", f"event {n} (leaf {e['seq']}) is not in the signed tree "
                          f"head {head.tree_size}")
        if parsed.get("incident_seq") != n:
            raise Refused("tampered", f"event #{n} is missing or out of order")
        events.append(VerifiedEvent(int(e["seq"]), body, lh, parsed))
    if len({ev.event.get("incident_id") for ev in events}) != 1:
        raise Refused("tampered", "the events belong to several incidents")
    consistency = None
    c = ext.get("consistency")
    if c is not None:
        if not isinstance(c, Mapping) or not isinstance(c.get("fromSize"), int):
            raise Refused("malformed", "consistency is not {fromSize, proof}")
        consistency = (int(c["fromSize"]), _hexes(c.get("proof"), "the consistency proof"))
    nid = ext.get("notificationId")
    verified = VerifiedLog(head, events, consistency, str(nid) if nid is not None else None)
    _cross_check(doc, verified)
    return verified


def _cross_check(doc: Mapping[str, Any], log: VerifiedLog) -> None:
    """The EIDO body must say what the verified state says (a forged body is refused)."""
    rows = log.state.get("incidents") or []
    if len(rows) != 1 or not isinstance(rows[0], dict):
        raise Refused("tampered", "the last event carries no incident state")
    row = rows[0]
    inc = doc.get("incidentComponent")
    if not isinstance(inc, Mapping):
        raise Refused("tampered", "no incidentComponent")
    said = {
        "reference": inc.get("internalIncidentId"),
        "category": inc.get("incidentTypeInternalCode"),
        "status": (inc.get("incidentStatusInternalText") or [None])[0],
        "priority": inc.get("incidentCommonPriorityNumber"),
        "disposition": next((d.get("dispositionCommonRegistryCode")
                             for d in inc.get("dispositionComponent") or []), None),
    }
    for column, value in said.items():
        if value != row.get(column):
            raise Refused("tampered", f"the EIDO says {column}={value!r} but the signed log "
                          f"says {row.get(column)!r}")
    description = str(row.get("description") or "")
    notes = " ".join(str(n.get("notesActionComments", "")) for n in doc.get("notesComponent") or []
                     if isinstance(n, Mapping))
    if description and escape(description) not in notes:
        raise Refused("tampered", "the EIDO's notes do not carry the signed description")


def check_extension(previous: TreeHead | None, log: VerifiedLog) -> None:
    """The witness rule: ``log.head`` must extend ``previous`` (the last head witnessed)."""
    head = log.head
    if previous is None:
        return
    if head.tree_size < previous.tree_size:
        raise Refused("inconsistent", f"tree head {head.tree_size} is older than the witnessed "
                      f"{previous.tree_size} and was never witnessed: the log was cut off")
    if head.tree_size == previous.tree_size:
        if head.root_hash != previous.root_hash:
            raise Refused("inconsistent", f"two different signed roots for tree size "
                          f"{head.tree_size}: the regional log was rewritten")
        return
    if log.consistency is None:
        raise Refused("stale_proof", f"tree head {head.tree_size} comes without a consistency "
                      f"proof from the witnessed {previous.tree_size}")
    from_size, proof = log.consistency
    if from_size != previous.tree_size:
        raise Refused("stale_proof", f"consistency proof from {from_size}, but the last "
                      f"witnessed head is {previous.tree_size}")
    if not verify_consistency(previous.tree_size, head.tree_size,
                              bytes.fromhex(previous.root_hash), bytes.fromhex(head.root_hash),
                              proof):
        raise Refused("inconsistent", f"tree head {head.tree_size} is not a consistent extension "
                      f"of the witnessed head {previous.tree_size}: the regional log was "
                      "rewritten")


# --- NENA-STA-024 messages ---------------------------------------------------------------------


def message(kind: str, **members: Any) -> str:
    """One STA-024 message, ``{"<kind>": {...}}`` with the ``None`` members left out."""
    return json.dumps({kind: {k: v for k, v in members.items() if v is not None}},
                      ensure_ascii=False, separators=(",", ":"))


def read_message(raw: str | bytes) -> tuple[str, dict[str, Any]]:
    """``(kind, members)`` of an STA-024 message; ``ValueError`` if it is not one."""
    obj = json.loads(raw)
    if not isinstance(obj, dict) or len(obj) != 1:
        raise ValueError("an STA-024 message is an object with exactly one member")
    [(kind, body)] = obj.items()
    if not isinstance(body, dict):
        raise ValueError(f"{kind}: the message body is not an object")
    return kind, body
