"""Export incidents as EIDO (regional side) and import them with event verification (national side).

The regional centre exports every incident of its region with its full event record: each event
with its canonical body (the leaf of the regional signed log). The national centre imports: it
refuses the whole document when a body is not canonical, does not say what the event's fields
say, or the events are not numbered 1..N (a tampered or truncated export). Accepted incidents are
stored as read-only copies (``source="eido"``, ``external_ref`` = ``"{system}:{reference}"``), and
the regional events are appended to the national record, each carrying its original id, number
and leaf hash under ``data["_origin"]``, so a later export of the same incident only adds the new
events.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import rfc8785
from sqlalchemy import RowMapping, text
from sqlalchemy.orm import Session

from geodispatch.errors import Conflict, InvalidInput
from geodispatch.federation.eido import EidoFormatError, build_eido, parse_eido
from geodispatch.incidents.record import append_event, iso_utc
from geodispatch.ledger.merkle import leaf_hash
from geodispatch.settings import Settings, get_settings

log = logging.getLogger(__name__)

DEFAULT_SYSTEM = "geodispatch"


def _event_dict(row: Mapping[str, Any] | RowMapping) -> dict[str, Any]:
    at = row["at"]
    return {
        "id": int(row["id"]),
        "incident_id": int(row["incident_id"]),
        "incident_seq": int(row["incident_seq"]),
        "kind": row["kind"],
        "actor": row["actor"],
        "at": iso_utc(at) if isinstance(at, datetime) else str(at),
        "data": row["data"],
        "body": bytes(row["body"]).decode("utf-8"),
    }


def export_incidents(
    *,
    session: Session,
    region: str | None = None,
    since: datetime | None = None,
    references: Sequence[str] | None = None,
    system: str = DEFAULT_SYSTEM,
) -> list[dict[str, Any]]:
    """EIDO objects of the incidents of ``region`` (all when None) changed at or after ``since``.

    "Changed" means an event at or after ``since``; the export always carries the whole log of
    each incident, never a slice, so the receiver can verify it end to end.
    """
    rows = session.execute(
        text(
            "SELECT i.id, i.reference, i.region, i.status, i.category, i.priority, i.received_at, "
            "i.registered_at, i.closed_at, ST_Y(i.location) AS lat, ST_X(i.location) AS lng, "
            "i.h3, i.address, i.description, i.disposition, i.caller_lang, i.source, "
            "s.code AS sector_code, d.code AS district_code, m.reference AS merged_into "
            "FROM incidents i "
            "LEFT JOIN zones s ON s.id = i.sector_id LEFT JOIN zones d ON d.id = i.district_id "
            "LEFT JOIN incidents m ON m.id = i.merged_into_id "
            "WHERE (CAST(:region AS text) IS NULL OR i.region = :region) "
            "AND (CAST(:since AS timestamptz) IS NULL OR EXISTS (SELECT 1 FROM incident_events e "
            "     WHERE e.incident_id = i.id AND e.at >= :since)) "
            "AND (CAST(:refs AS text[]) IS NULL OR i.reference = ANY(:refs)) "
            "ORDER BY i.id"
        ),
        {"region": region, "since": since, "refs": list(references) if references else None},
    ).mappings().all()
    if not rows:
        return []
    ids = [int(r["id"]) for r in rows]
    events: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for e in session.execute(
        text(
            "SELECT id, incident_id, incident_seq, kind, actor, at, data, body FROM incident_events "
            "WHERE incident_id = ANY(:ids) ORDER BY incident_id, incident_seq"
        ),
        {"ids": ids},
    ).mappings():
        events[int(e["incident_id"])].append(_event_dict(e))
    resources: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for a in session.execute(
        text(
            "SELECT a.incident_id, u.call_sign, u.kind, a.status, a.is_lead, a.dispatched_at "
            "FROM assignments a JOIN units u ON u.id = a.unit_id "
            "WHERE a.incident_id = ANY(:ids) ORDER BY a.id"
        ),
        {"ids": ids},
    ).mappings():
        resources[int(a["incident_id"])].append(dict(a))
    return [
        build_eido(
            incident=dict(r),
            events=events[int(r["id"])],
            resources=resources[int(r["id"])],
            system=system,
            merged_into=r["merged_into"],
        )
        for r in rows
    ]


@dataclass
class ImportResult:
    """Outcome of importing one EIDO."""

    reference: str
    incident_id: int
    created: bool
    events_added: int
    events_checked: int


def _verify(events: list[dict[str, Any]]) -> int:
    """Each event's canonical body must say what its fields say, numbered 1..N without gaps."""
    if not events:
        raise InvalidInput("EIDO carries no event log")
    for n, e in enumerate(events, 1):
        try:
            raw = str(e["body"]).encode("utf-8")
            body = json.loads(raw)
        except (KeyError, ValueError) as exc:
            raise InvalidInput(f"event log rejected: event {n} has no readable body") from exc
        if rfc8785.dumps(body) != raw:
            raise InvalidInput(f"event log rejected: event {n}'s body is not canonical")
        for key in ("incident_id", "incident_seq", "kind", "actor", "at", "data"):
            if body.get(key) != e.get(key):
                raise InvalidInput(f"event log rejected: event {n}'s {key} differs from its "
                                   "sealed body")
        if body.get("incident_seq") != n:
            raise InvalidInput(f"event log rejected: event #{n} is missing or out of order")
    return len(events)


def _free_reference(*, session: Session, reference: str, system: str) -> str:
    """The regional reference, or (when this centre already uses it) one suffixed by the system."""
    taken = session.execute(
        text("SELECT 1 FROM incidents WHERE reference = :r"), {"r": reference}
    ).first()
    if taken is None:
        return reference
    suffix = hashlib.sha1(system.encode()).hexdigest()[:6]
    alt = f"{reference[: 32 - 7]}~{suffix}"
    if session.execute(text("SELECT 1 FROM incidents WHERE reference = :r"), {"r": alt}).first():
        raise Conflict(f"reference {reference} is taken here, and so is {alt}")
    return alt


def _parse_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def import_eido(
    *, session: Session, doc: Mapping[str, Any], settings: Settings | None = None
) -> ImportResult:
    """Verify and store one EIDO from a regional centre.

    Parameters
    ----------
    doc : mapping
        An EIDO produced by :func:`export_incidents` (any regional instance).

    Returns
    -------
    ImportResult

    Raises
    ------
    InvalidInput
        Malformed document, or an event log whose hashes do not verify (nothing is stored).
    Conflict
        Neither the regional reference nor its system-suffixed form is free here.

    Notes
    -----
    A copy is identified by ``external_ref = "{system}:{reference}"``; it keeps the regional
    reference unless this centre already uses it (then ``reference~xxxxxx``, a hash of the system).
    """
    from geodispatch.geo import LatLng
    from geodispatch.zones.cells import cell_of

    settings = settings or get_settings()
    try:
        parsed = parse_eido(doc)
    except EidoFormatError as exc:
        raise InvalidInput(str(exc)) from None
    events: list[dict[str, Any]] = parsed["events"]
    checked = _verify(events)
    ids = {int(e["incident_id"]) for e in events}
    if len(ids) != 1:
        raise InvalidInput("event log mixes several incidents")

    ref = parsed["reference"]
    external_ref = f"{parsed['system']}:{ref}"
    if len(external_ref) > 64:
        raise InvalidInput(f"sending system id too long for {external_ref!r}")
    existing = session.execute(
        text("SELECT id, reference FROM incidents WHERE external_ref = :x AND source = 'eido'"),
        {"x": external_ref},
    ).mappings().first()
    local_ref = existing["reference"] if existing is not None else _free_reference(
        session=session, reference=ref, system=parsed["system"]
    )
    cell = parsed["h3"]
    sector_id = district_id = None
    if cell and parsed["lat"] is not None:
        zc = cell_of(LatLng(parsed["lat"], parsed["lng"]), settings.h3_zone_res)
        zones: dict[str, int] = dict(
            session.execute(
                text("SELECT level, zone_id FROM zone_cells WHERE cell = :c"), {"c": zc}
            ).all()
        )
        sector_id, district_id = zones.get("sector"), zones.get("district")
    values = {
        "ref": local_ref,
        "region": parsed["region"],
        "received_at": _parse_time(parsed["received_at"]) or _parse_time(events[0]["at"]),
        "lat": parsed["lat"],
        "lng": parsed["lng"],
        "h3": int(cell) if cell and parsed["lat"] is not None else None,
        "address": parsed["address"],
        "category": parsed["category"],
        "priority": parsed["priority"],
        "status": parsed["status"] or "registered",
        "description": parsed["description"],
        "disposition": parsed["disposition"],
        "closed_at": _parse_time(parsed["closed_at"]),
        "caller_lang": parsed["caller_lang"],
        "sector": sector_id,
        "district": district_id,
        "ext": external_ref,
    }
    if existing is None:
        incident_id = int(
            session.execute(
                text(
                    "INSERT INTO incidents (reference, region, received_at, location, h3, address, "
                    "category, original_category, priority, status, description, created_by, "
                    "caller_lang, sms_opt_out, source, external_ref, disposition, closed_at, "
                    "sector_id, district_id) VALUES (:ref, :region, :received_at, "
                    "ST_SetSRID(ST_MakePoint(:lng, :lat), 4326), :h3, :address, :category, "
                    ":category, :priority, :status, :description, 'eido-import', :caller_lang, "
                    "true, 'eido', :ext, :disposition, :closed_at, :sector, :district) RETURNING id"
                ),
                values,
            ).scalar_one()
        )
        created = True
    else:
        incident_id = int(existing["id"])
        session.execute(
            text(
                "UPDATE incidents SET status = :status, category = :category, "
                "priority = :priority, "
                "description = :description, disposition = :disposition, closed_at = :closed_at, "
                "address = :address, location = ST_SetSRID(ST_MakePoint(:lng, :lat), 4326), "
                "h3 = :h3, sector_id = :sector, district_id = :district WHERE id = :id"
            ),
            {**values, "id": incident_id},
        )
        created = False
    known = {
        str(h)
        for (h,) in session.execute(
            text(
                "SELECT data->'_origin'->>'leaf' FROM incident_events WHERE incident_id = :i"
            ),
            {"i": incident_id},
        )
    }
    added = 0
    for e in events:
        leaf = leaf_hash(str(e["body"]).encode("utf-8")).hex()
        if leaf in known:
            continue
        data = dict(e["data"] or {})
        data["_origin"] = {"system": parsed["system"], "id": e["id"],
                           "incident_seq": e["incident_seq"], "leaf": leaf}
        append_event(
            session=session,
            incident_id=incident_id,
            kind=e["kind"],
            actor=e["actor"],
            data=data,
            at=_parse_time(e["at"]),
        )
        added += 1
    if not added and not created:
        # The row was refreshed from the document without a new regional event.
        append_event(session=session, incident_id=incident_id, kind="eido_refreshed",
                     actor="eido-import", data={"system": parsed["system"]})
    session.flush()
    log.info("EIDO %s: %s, %d new events", ref, "created" if created else "updated", added)
    return ImportResult(local_ref, incident_id, created, added, checked)


def import_many(
    *, session: Session, docs: Sequence[Mapping[str, Any]], settings: Settings | None = None
) -> list[ImportResult]:
    """Import several EIDOs in one transaction (all or nothing)."""
    return [import_eido(session=session, doc=d, settings=settings) for d in docs]
