"""EIDO export (regional side) and import (national side) of files and single documents.

Export writes what the live feed sends, without the JWS: each EIDO with the ``geodispatchLog``
proof of its sealed events. Import takes any schema-valid EIDO: one that comes from a registered
centre (its issuer, or its log proof) is verified and witnessed exactly like a live notification
(:func:`geodispatch.federation.national.receive`); one from any other system is mapped to an
unverified incident of this centre, and what could not be mapped is reported.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.federation.conveyance import Refused
from geodispatch.federation.eido import LOG_EXTENSION, EidoFormatError, element_id, parse_eido
from geodispatch.federation.national import Received, _refuse, centres, receive
from geodispatch.federation.publish import LogTree, current_head, sealed_documents
from geodispatch.federation.schema import eido_errors
from geodispatch.incidents.classification import load_classification
from geodispatch.incidents.record import append_event
from geodispatch.settings import Settings

log = logging.getLogger(__name__)


def export_incidents(
    *,
    session: Session,
    settings: Settings,
    region: str | None = None,
    since: datetime | None = None,
    references: Sequence[str] | None = None,
    from_size: int | None = None,
) -> list[dict[str, Any]]:
    """EIDO objects (with their log proofs) of this centre's incidents changed since ``since``.

    Only sealed events are described. ``from_size`` adds the consistency proof from a tree
    size the receiver witnessed (omit it for a receiver that has witnessed nothing yet).
    """
    head = current_head(session)
    if head is None:
        return []
    ids = [int(i) for i in session.execute(
        text("SELECT i.id FROM incidents i WHERE i.source <> 'eido' "
             "AND (CAST(:region AS text) IS NULL OR i.region = :region) "
             "AND (CAST(:since AS timestamptz) IS NULL OR EXISTS (SELECT 1 FROM incident_events e "
             "     WHERE e.incident_id = i.id AND e.at >= :since)) "
             "AND (CAST(:refs AS text[]) IS NULL OR i.reference = ANY(:refs)) ORDER BY i.id"),
        {"region": region, "since": since,
         "refs": list(references) if references else None}).scalars()]
    mirror = LogTree()
    tree = mirror.sync(session, head.tree_size)
    docs = sealed_documents(session=session, incident_ids=ids, head=head, tree=tree,
                            centre=settings.resolved_federation_centre,
                            standards_dir=settings.standards_dir)
    consistency = None
    if from_size is not None:
        consistency = (from_size, tree.consistency_proof(from_size, head.tree_size))
    return [d.with_log(head, consistency) for d in docs]


def _external_ref(issuer: str, tracking: str) -> str:
    key = f"{issuer}|{tracking}"
    return "eido:" + hashlib.sha256(key.encode()).hexdigest()[:59]


def import_foreign(*, session: Session, doc: Mapping[str, Any], settings: Settings) -> Received:
    """Map an EIDO from another system to an (unverified) incident; report what was not mapped.

    Idempotent on (issuer, tracking id): a later EIDO of the same incident updates the copy.
    """
    errors = eido_errors(doc, standards_dir=settings.standards_dir)
    if errors:
        return _refuse(session, centre=None, via="file",
                       exc=Refused("schema", "; ".join(errors[:5])), document=doc)
    cls = load_classification(settings)
    try:
        m = parse_eido(doc, categories=frozenset(cls.categories),
                       standards_dir=settings.standards_dir)
    except EidoFormatError as exc:
        return _refuse(session, centre=None, via="file", exc=Refused("malformed", str(exc)),
                       document=doc)
    ext = _external_ref(m.issuer, m.tracking_id)
    region = settings.default_region
    values = {
        "region": region, "received_at": m.received_at or datetime.now(UTC), "lat": m.lat,
        "lng": m.lng, "address": m.address, "category": m.category, "priority": m.priority,
        "status": m.status, "description": m.description, "disposition": m.disposition,
        "closed_at": (m.received_at or datetime.now(UTC)) if m.status in ("closed", "cancelled")
        else None, "ext": ext,
    }
    existing = session.execute(text("SELECT id, reference FROM incidents WHERE external_ref = :x "
                                    "AND source = 'eido' FOR UPDATE"), {"x": ext}).first()
    point = ("CASE WHEN CAST(:lat AS float8) IS NULL THEN NULL ELSE "
             "ST_SetSRID(ST_MakePoint(:lng, :lat), 4326) END")
    if existing is None:
        ref = (m.reference or "")[:32]
        if not ref or session.execute(text("SELECT 1 FROM incidents WHERE reference = :r"),
                                      {"r": ref}).first():
            ref = "EXT-" + ext[5:21]
        incident_id = int(session.execute(text(
            "INSERT INTO incidents (reference, region, received_at, location, address, category, "
            "original_category, priority, status, description, created_by, caller_lang, "
            f"sms_opt_out, source, external_ref, disposition, closed_at) VALUES (:ref, :region, "
            f":received_at, {point}, :address, :category, :category, :priority, :status, "
            ":description, 'eido-import', 'uk', true, 'eido', :ext, :disposition, :closed_at) "
            "RETURNING id"), {**values, "ref": ref}).scalar_one())
    else:
        incident_id, ref = int(existing[0]), str(existing[1])
        session.execute(text(
            f"UPDATE incidents SET location = {point}, address = :address, category = :category, "
            "priority = :priority, status = :status, description = :description, "
            "disposition = :disposition, closed_at = :closed_at WHERE id = :id"),
            {**values, "id": incident_id})
    append_event(session=session, incident_id=incident_id, kind="eido_imported",
                 actor="eido-import", data={"issuer": m.issuer, "tracking_id": m.tracking_id,
                                            "verified": False, "unmapped": m.unmapped})
    session.flush()
    return Received(True, None, reference=ref, incident_id=incident_id, unmapped=m.unmapped)


def import_documents(*, session: Session, docs: Sequence[Any], settings: Settings
                     ) -> list[Received]:
    """Import EIDO objects or signed notifications (JWS strings) read from files.

    A document from a registered centre is verified and witnessed (refused and kept with the
    reason when it does not verify); any other schema-valid EIDO is mapped as a foreign one.
    """
    issuers = {element_id(c.code) for c in centres(session=session)}
    out = []
    for d in docs:
        if isinstance(d, str) or not isinstance(d, Mapping):
            out.append(receive(session=session, document=d, via="file",
                               standards_dir=settings.standards_dir))
        elif LOG_EXTENSION in d or d.get("issuingElementIdentification") in issuers:
            out.append(receive(session=session, document=d, via="file",
                               standards_dir=settings.standards_dir, require_signature=False))
        else:
            out.append(import_foreign(session=session, doc=d, settings=settings))
    return out
