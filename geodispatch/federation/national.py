"""The national side: the registry of regional centres, verification, witnessing, projection.

:func:`receive` takes one document from a regional centre (a signed notification, or an EIDO
file) and either stores it or refuses it; a refused document is kept whole with the reason in
``federation_refusals``. In order:

1. a notification must be a compact JWS; its ``kid`` must be a registered centre's log id and
   its Ed25519 signature must verify with that centre's key (``unsigned`` / ``unknown_key`` /
   ``bad_signature``);
2. the payload must validate against the official EIDO schema (``schema``) and be issued by
   that centre (``tampered``);
3. its notification id must be new (``replayed``);
4. the signed-log proof must verify (:func:`~geodispatch.federation.conveyance.verify_log`);
5. **witness**: its tree head must be a consistent extension of the last head this centre
   witnessed of that log (``inconsistent``: the region rewrote its history);
6. the verified events are stored once per leaf (duplicates ignored), and the national copy of
   the incident is projected from the state the last verified event sealed, never from the EIDO
   body.

The centre row is locked for the whole check (before the document's savepoint, once a
transaction), so one centre's documents are witnessed one at a time. The caller owns the
transaction; a refusal rolls back to a savepoint and only the refusal row remains. Within one
transaction the centre's lock and newest witnessed head are read once, not per document.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.errors import Conflict, InvalidInput, NotFound
from geodispatch.federation.conveyance import (
    Refused,
    VerifiedLog,
    check_extension,
    jws_header,
    verify_jws,
    verify_log,
)
from geodispatch.federation.eido import LOG_EXTENSION, element_id
from geodispatch.federation.schema import eido_errors
from geodispatch.incidents.record import append_event
from geodispatch.ledger.signing import SigningKeyError, TreeHead, load_public_key, log_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Centre:
    code: str
    url: str | None
    key: Ed25519PublicKey
    log_id: str


@dataclass
class Received:
    """What happened to one document."""

    accepted: bool
    centre: str | None
    reason: str = ""
    detail: str = ""
    reference: str | None = None
    incident_id: int | None = None
    events_new: int = 0
    events_seen: int = 0
    tree_size: int | None = None
    unmapped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --- registry ----------------------------------------------------------------------------------


def register_centre(*, session: Session, code: str, public_key_pem: bytes, url: str | None
                    ) -> Centre:
    """Add a regional centre, or update its URL (its key never changes: that is a new log)."""
    try:
        key = load_public_key(public_key_pem)
    except SigningKeyError as exc:
        raise InvalidInput(f"centre {code}: {exc}") from None
    lid = log_id(key)
    row = session.execute(text("SELECT code, log_id FROM federation_centres WHERE code = :c "
                               "OR log_id = :l"), {"c": code, "l": lid}).first()
    if row is not None and (row[0] != code or row[1] != lid):
        raise Conflict(f"centre {row[0]} is registered with "
                       f"{'this key' if row[1] == lid else 'another key'}; a centre's log key "
                       "cannot be reused or replaced")
    session.execute(
        text("INSERT INTO federation_centres (code, url, public_key, log_id) "
             "VALUES (:c, :u, :k, :l) ON CONFLICT (code) DO UPDATE SET url = EXCLUDED.url"),
        {"c": code, "u": url, "k": public_key_pem.decode("ascii"), "l": lid})
    return Centre(code, url, key, lid)


def _centre(row: Any) -> Centre:
    return Centre(str(row[0]), row[1], load_public_key(str(row[2]).encode()), str(row[3]))


def centres(*, session: Session) -> list[Centre]:
    rows = session.execute(text("SELECT code, url, public_key, log_id FROM federation_centres "
                                "ORDER BY code")).all()
    return [_centre(r) for r in rows]


def witnessed_head(*, session: Session, code: str) -> TreeHead | None:
    """The newest head of ``code``'s log this centre witnessed."""
    r = session.execute(
        text("SELECT h.tree_size, h.root_hash, h.timestamp_ms, h.signature, c.log_id "
             "FROM federation_heads h JOIN federation_centres c ON c.code = h.centre_code "
             "WHERE h.centre_code = :c ORDER BY h.tree_size DESC LIMIT 1"), {"c": code}).first()
    return None if r is None else TreeHead(r[4], int(r[0]), r[1], int(r[2]), r[3])


def _lock_centre(session: Session, *, kid: str | None = None, issuer: str | None = None
                 ) -> Centre | None:
    value: str | None
    if kid is not None:
        where, value = "log_id = :v", kid
    else:
        where, value = "code = :v", issuer
    row = session.execute(text(f"SELECT code, url, public_key, log_id FROM federation_centres "
                               f"WHERE {where} FOR UPDATE"), {"v": value}).first()
    return None if row is None else _centre(row)


def _centre_by_issuer(session: Session, issuer: str) -> Centre | None:
    for c in centres(session=session):
        if element_id(c.code) == issuer:
            return _lock_centre(session, issuer=c.code)
    return None


@dataclass
class _Held:
    """What this transaction already holds: the centres it locked and, per centre, the newest
    head witnessed (a document refused rolls back to its savepoint, taken after the lock, so
    the lock stays; the head is noted only once its document is accepted)."""

    transaction: object
    centres: dict[tuple[str, str], Centre | None] = field(default_factory=dict)
    heads: dict[str, TreeHead | None] = field(default_factory=dict)


def _held(session: Session) -> _Held:
    # A batch of documents is received in one transaction (one STA-024 event message): the
    # centre's row lock and its witnessed head are read once, not once a document (each look-up
    # is a round trip to PostgreSQL, which is what a document costs here).
    outer = session.get_transaction()
    if outer is None:
        session.connection()  # begins the transaction the cache belongs to
        outer = session.get_transaction()
    held = session.info.get("federation_held")
    if not isinstance(held, _Held) or held.transaction is not outer:
        held = session.info["federation_held"] = _Held(outer)
    return held


def _locked(session: Session, held: _Held, how: str, value: str) -> Centre | None:
    key = (how, value)
    if key not in held.centres:
        held.centres[key] = (_lock_centre(session, kid=value) if how == "kid"
                             else _centre_by_issuer(session, value))
    return held.centres[key]


# --- receiving -----------------------------------------------------------------------------------


def _witness(session: Session, centre: Centre, log_: VerifiedLog, via: str,
             previous: TreeHead | None) -> TreeHead | None:
    """Check ``log_``'s head against ``previous`` (the newest witnessed) and record it; the
    newest witnessed head afterwards."""
    head = log_.head
    if previous is not None and head.tree_size < previous.tree_size:
        seen = session.execute(
            text("SELECT root_hash FROM federation_heads WHERE centre_code = :c "
                 "AND tree_size = :s"), {"c": centre.code, "s": head.tree_size}).scalar()
        if seen == head.root_hash:
            return previous  # an older head this centre witnessed already
        # A file may carry an older head this centre never saw; a live feed never goes back.
        raise Refused("stale_proof" if seen is None and via == "file" else "inconsistent",
                      f"tree head {head.tree_size} is older than the witnessed "
                      f"{previous.tree_size}" + (" and its root differs from the one witnessed: "
                                                 "the regional log was rewritten"
                                                 if seen is not None else
                                                 " and was never witnessed: the log was cut "
                                                 "off"))
    check_extension(previous, log_)
    if previous is None or head.tree_size > previous.tree_size:
        session.execute(
            text("INSERT INTO federation_heads (centre_code, tree_size, root_hash, timestamp_ms, "
                 "signature) VALUES (:c, :s, :r, :t, :g)"),
            {"c": centre.code, "s": head.tree_size, "r": head.root_hash, "t": head.timestamp_ms,
             "g": head.signature})
        return head
    return previous


#: State columns of an incident row copied into the national projection.
_COPIED = ("region", "received_at", "address", "category", "original_category", "priority",
           "status", "description", "disposition", "closed_at", "caller_lang", "h3")


def _project(session: Session, centre: Centre, log_: VerifiedLog) -> tuple[int, str, int, int]:
    """Store new verified events and the national copy; (incident id, ref, new, seen)."""
    row = log_.state["incidents"][0]
    ref = str(row["reference"])
    external_ref = f"{centre.code}:{ref}"
    seqs = [e.seq for e in log_.events]
    known: dict[int, bytes] = dict(session.execute(
        text("SELECT seq, leaf_hash FROM federation_events WHERE centre_code = :c "
             "AND seq = ANY(:s)"), {"c": centre.code, "s": seqs}).all())
    for e in log_.events:
        if e.seq in known and bytes(known[e.seq]) != e.leaf:
            raise Refused("inconsistent", f"leaf {e.seq} differs from the one verified before: "
                          "the regional log was rewritten")
    new = [e for e in log_.events if e.seq not in known]
    values = {k: row.get(k) for k in _COPIED}
    values["received_at"] = datetime.fromisoformat(str(row["received_at"]))
    values["closed_at"] = (datetime.fromisoformat(str(row["closed_at"]))
                           if row.get("closed_at") else None)
    values["h3"] = int(row["h3"]) if row.get("h3") is not None else None
    values["location"] = row.get("location")
    values["ext"] = external_ref
    existing = session.execute(
        text("SELECT id, reference FROM incidents WHERE external_ref = :x AND source = 'eido' "
             "FOR UPDATE"), {"x": external_ref}).first()
    if existing is None:
        local_ref = _free_reference(session, ref, centre.code)
        incident_id = int(session.execute(text(
            "INSERT INTO incidents (reference, region, received_at, location, h3, address, "
            "category, original_category, priority, status, description, created_by, "
            "caller_lang, sms_opt_out, source, external_ref, disposition, closed_at) VALUES "
            "(:ref, :region, :received_at, ST_GeomFromEWKB(decode(:location, 'hex')), :h3, "
            ":address, :category, :original_category, :priority, :status, :description, "
            ":by, :caller_lang, true, 'eido', :ext, :disposition, :closed_at) RETURNING id"),
            {**values, "ref": local_ref, "by": f"federation:{centre.code}"}).scalar_one())
    else:
        incident_id, local_ref = int(existing[0]), str(existing[1])
        if new:
            session.execute(text(
                "UPDATE incidents SET region = :region, received_at = :received_at, "
                "location = ST_GeomFromEWKB(decode(:location, 'hex')), h3 = :h3, "
                "address = :address, category = :category, original_category = "
                ":original_category, priority = :priority, status = :status, "
                "description = :description, disposition = :disposition, "
                "closed_at = :closed_at WHERE id = :id"), {**values, "id": incident_id})
    for e in new:
        body = e.event
        data = dict(body.get("data") or {})
        data["_origin"] = {"centre": centre.code, "seq": e.seq,
                           "incident_seq": body["incident_seq"], "leaf": e.leaf.hex()}
        nid = append_event(session=session, incident_id=incident_id, kind=str(body["kind"]),
                           actor=str(body["actor"])[:64], data=data,
                           at=datetime.fromisoformat(str(body["at"])))
        session.execute(text(
            "INSERT INTO federation_events (centre_code, seq, leaf_hash, incident_ref, "
            "incident_seq, national_event_id) VALUES (:c, :s, :h, :r, :n, :e)"),
            {"c": centre.code, "s": e.seq, "h": e.leaf, "r": ref, "n": body["incident_seq"],
             "e": nid})
    return incident_id, local_ref, len(new), len(log_.events) - len(new)


def _free_reference(session: Session, reference: str, code: str) -> str:
    taken = session.execute(text("SELECT 1 FROM incidents WHERE reference = :r"),
                            {"r": reference}).first()
    if taken is None:
        return reference
    alt = f"{reference[: 32 - len(code) - 1]}~{code}"
    if session.execute(text("SELECT 1 FROM incidents WHERE reference = :r"), {"r": alt}).first():
        raise Conflict(f"reference {reference} is taken here, and so is {alt}")
    return alt


def _refuse(session: Session, *, centre: str | None, via: str, exc: Refused, document: Any
            ) -> Received:
    raw = document if isinstance(document, str) else json.dumps(document, ensure_ascii=False)
    session.execute(text("INSERT INTO federation_refusals (centre_code, via, reason, detail, "
                         "document) VALUES (:c, :v, :r, :d, :doc)"),
                    {"c": centre, "v": via, "r": exc.code, "d": exc.detail,
                     "doc": raw.replace("\x00", "\ufffd")})
    log.warning("refused a document from %s (%s): %s: %s", centre or "?", via, exc.code,
                exc.detail)
    return Received(False, centre, exc.code, exc.detail)


def receive(*, session: Session, document: Any, via: str, standards_dir: Path,
            require_signature: bool = True) -> Received:
    """Verify one document from a regional centre and store it, or refuse it (see module doc).

    Parameters
    ----------
    document : str or mapping
        A compact JWS whose payload is an EIDO (notifications), or an EIDO object (files, when
        ``require_signature`` is False: the signed tree head then authenticates the events).
    via : str
        ``live``, ``push`` or ``file``: where it came from (kept with a refusal).
    """
    centre_code: str | None = None
    held = _held(session)
    found: Centre | None = None
    early: Refused | None = None
    # The centre is locked before the savepoint, so a refused document does not release it.
    try:
        if isinstance(document, str):
            kid = jws_header(document).get("kid")
            found = _locked(session, held, "kid", str(kid)) if kid else None
        elif not require_signature and isinstance(document, Mapping):
            found = _locked(session, held, "issuer",
                            str(document.get("issuingElementIdentification")))
    except Refused as exc:
        early = exc
    nested = session.begin_nested()
    try:
        if early is not None:
            raise early
        if isinstance(document, str):
            centre = found
            if centre is None:
                raise Refused("unknown_key", f"no registered centre has the key "
                              f"{jws_header(document).get('kid')!r}")
            centre_code = centre.code
            doc = verify_jws(document, centre.key)
        elif require_signature:
            raise Refused("unsigned", "a notification must be a JWS signed by its centre")
        elif isinstance(document, Mapping):
            doc = dict(document)
            centre = found
            if centre is None:
                raise Refused("unknown_key", "the issuer is not a registered centre")
            centre_code = centre.code
        else:
            raise Refused("malformed", "neither a JWS nor a JSON object")
        errors = eido_errors({k: v for k, v in doc.items() if k != LOG_EXTENSION},
                             standards_dir=standards_dir)
        if errors:
            raise Refused("schema", "; ".join(errors[:5]))
        if doc.get("issuingElementIdentification") != element_id(centre.code):
            raise Refused("tampered", f"issued by {doc.get('issuingElementIdentification')!r}, "
                          f"signed by centre {centre.code}")
        verified = verify_log(doc, centre.key)
        if verified.head.log_id != centre.log_id:
            raise Refused("tampered", "the tree head names another log")
        if verified.notification_id is not None:
            fresh = session.execute(text(
                "INSERT INTO federation_notifications (notification_id, centre_code) "
                "VALUES (:n, :c) ON CONFLICT DO NOTHING RETURNING 1"),
                {"n": verified.notification_id[:64], "c": centre.code}).first()
            if fresh is None:
                raise Refused("replayed", f"notification {verified.notification_id} was "
                              "received before")
        elif via != "file":
            raise Refused("replayed", "a notification without an id cannot be told from a replay")
        if centre.code not in held.heads:
            held.heads[centre.code] = witnessed_head(session=session, code=centre.code)
        newest = _witness(session, centre, verified, via, held.heads[centre.code])
        incident_id, ref, added, seen = _project(session, centre, verified)
        session.flush()
        nested.commit()
        held.heads[centre.code] = newest
    except Refused as exc:
        nested.rollback()
        return _refuse(session, centre=centre_code, via=via, exc=exc, document=document)
    except BaseException:
        nested.rollback()
        raise
    return Received(True, centre.code, reference=ref, incident_id=incident_id, events_new=added,
                    events_seen=seen, tree_size=verified.head.tree_size)


def refusals(*, session: Session, limit: int = 100) -> list[dict[str, Any]]:
    rows = session.execute(text(
        "SELECT id, received_at, centre_code, via, reason, detail FROM federation_refusals "
        "ORDER BY id DESC LIMIT :n"), {"n": limit}).mappings().all()
    return [dict(r) for r in rows]


def region_summary(*, session: Session) -> list[dict[str, Any]]:
    """Per registered centre: witnessed size, verified events, incidents, refusals."""
    rows = session.execute(text(
        "SELECT c.code, c.url, "
        "(SELECT max(tree_size) FROM federation_heads h WHERE h.centre_code = c.code) AS size, "
        "(SELECT count(*) FROM federation_events e WHERE e.centre_code = c.code) AS events, "
        "(SELECT count(*) FROM incidents i WHERE i.source = 'eido' "
        "   AND i.external_ref LIKE c.code || ':%') AS incidents, "
        "(SELECT count(*) FROM federation_refusals r WHERE r.centre_code = c.code) AS refused "
        "FROM federation_centres c ORDER BY c.code")).mappings().all()
    return [dict(r) for r in rows]


def require_centre(*, session: Session, code: str) -> Centre:
    for c in centres(session=session):
        if c.code == code:
            return c
    raise NotFound(f"centre {code} is not registered")


def documents_of(paths: Sequence[Path]) -> list[Any]:
    """EIDO objects or JWS strings read from files or folders (``*.json``, ``*.jws``)."""
    files: list[Path] = []
    for p in paths:
        files.extend(sorted([*p.glob("*.json"), *p.glob("*.jws")]) if p.is_dir() else [p])
    out: list[Any] = []
    for f in files:
        raw = f.read_text(encoding="utf-8").strip()
        if f.suffix == ".jws":
            out.append(raw)
            continue
        data = json.loads(raw)
        out.extend(data if isinstance(data, list) else [data])
    return out
