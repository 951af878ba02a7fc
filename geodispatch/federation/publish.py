"""The regional side: EIDO documents built from the *sealed* record, with their log proofs.

A document describes an incident as its last sealed event left it (the ``state`` in that
event's body), never the live rows: what the EIDO body says is then exactly what the receiver
can verify. Events committed but not sealed yet go out with the next signed tree head.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from shapely import wkb
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.federation.conveyance import LogEvent, attach_log
from geodispatch.federation.eido import OPEN_STATUSES, build_eido, tracking_id
from geodispatch.ledger.merkle import MerkleTree
from geodispatch.ledger.service import newest_head
from geodispatch.ledger.signing import TreeHead


class LogTree:
    """An in-memory copy of this centre's Merkle tree, extended as leaves are sealed."""

    def __init__(self) -> None:
        self.tree = MerkleTree()
        self.lock = threading.Lock()

    def sync(self, session: Session, size: int) -> MerkleTree:
        """Make sure the tree holds at least ``size`` leaves; returns it (hold ``lock``)."""
        if self.tree.size < size:
            rows = session.execute(
                text("SELECT seq, leaf_hash FROM log_leaves WHERE seq >= :a AND seq < :b "
                     "ORDER BY seq"), {"a": self.tree.size, "b": size}).all()
            for seq, lh in rows:
                if seq != self.tree.size:
                    raise LookupError(f"leaf {self.tree.size} is missing from the log")
                self.tree.append(bytes(lh))
        return self.tree


@dataclass(frozen=True)
class Document:
    """An EIDO with its sealed events and proofs, before the per-receiver parts are added."""

    reference: str
    eido: dict[str, Any]
    events: list[LogEvent]

    def with_log(self, head: TreeHead, consistency: tuple[int, Sequence[bytes]] | None = None,
                 notification_id: str | None = None) -> dict[str, Any]:
        return attach_log(self.eido, head=head, events=self.events, consistency=consistency,
                          notification_id=notification_id)


def current_head(session: Session) -> TreeHead | None:
    return newest_head(session)


def changed_incidents(*, session: Session, from_size: int, to_size: int) -> list[int]:
    """Incidents with an event sealed in leaves ``[from_size, to_size)``."""
    return [int(i) for i in session.execute(
        text("SELECT DISTINCT e.incident_id FROM log_leaves l "
             "JOIN incident_events e ON e.id = l.event_id WHERE l.seq >= :a AND l.seq < :b "
             "AND e.incident_id IS NOT NULL ORDER BY 1"), {"a": from_size, "b": to_size}).scalars()]


def active_incidents(*, session: Session) -> list[int]:
    return [int(i) for i in session.execute(
        text("SELECT id FROM incidents WHERE status = ANY(:s) AND source <> 'eido' ORDER BY id"),
        {"s": sorted(OPEN_STATUSES)}).scalars()]


def find_incident(*, session: Session, key: str, centre: str) -> int | None:
    """The incident a STA-024 ``incidentId`` (tracking id or our reference) names."""
    ref = key
    prefix = "urn:emergency:uid:incidentid:"
    if key.startswith(prefix):
        parts = key[len(prefix):].split(":")
        if len(parts) != 2 or tracking_id(parts[0], centre) != key:
            return None
        ref = parts[0]
    found = session.execute(text("SELECT id FROM incidents WHERE reference = :r"),
                            {"r": ref}).scalar()
    return None if found is None else int(found)


def _point(ewkb_hex: Any) -> tuple[float | None, float | None]:
    if not ewkb_hex:
        return None, None
    g = wkb.loads(bytes.fromhex(str(ewkb_hex)))
    return float(g.y), float(g.x)


def sealed_documents(*, session: Session, incident_ids: Sequence[int], head: TreeHead,
                     tree: MerkleTree, centre: str, standards_dir: Path) -> list[Document]:
    """One :class:`Document` per incident that has sealed events under ``head``.

    ``tree`` must hold at least ``head.tree_size`` leaves (:meth:`LogTree.sync`).
    """
    if not incident_ids:
        return []
    per: dict[int, list[tuple[int, bytes]]] = {}
    for iid, seq, body in session.execute(
            text("SELECT e.incident_id, l.seq, e.body FROM incident_events e "
                 "JOIN log_leaves l ON l.event_id = e.id "
                 "WHERE e.incident_id = ANY(:ids) AND l.seq < :n "
                 "ORDER BY e.incident_id, e.incident_seq"),
            {"ids": list(incident_ids), "n": head.tree_size}):
        per.setdefault(int(iid), []).append((int(seq), bytes(body)))
    parsed = {iid: [orjson.loads(b) for _, b in evs] for iid, evs in per.items()}
    zone_ids: set[int] = set()
    unit_ids: set[int] = set()
    merged_ids: set[int] = set()
    for bodies in parsed.values():
        st = bodies[-1].get("state") or {}
        for row in st.get("incidents") or []:
            zone_ids.update(z for z in (row.get("sector_id"), row.get("district_id")) if z)
            if row.get("merged_into_id"):
                merged_ids.add(int(row["merged_into_id"]))
        unit_ids.update(int(a["unit_id"]) for a in st.get("assignments") or [])
    zones: dict[int, str] = dict(session.execute(text("SELECT id, code FROM zones WHERE id = ANY(:i)"),
                                 {"i": sorted(zone_ids)}).all()) if zone_ids else {}
    units = {int(r[0]): r for r in session.execute(
        text("SELECT id, call_sign, kind, capabilities FROM units WHERE id = ANY(:i)"),
        {"i": sorted(unit_ids)}).all()} if unit_ids else {}
    merged: dict[int, str] = dict(session.execute(text("SELECT id, reference FROM incidents WHERE id = ANY(:i)"),
                                  {"i": sorted(merged_ids)}).all()) if merged_ids else {}
    out = []
    for iid in incident_ids:
        if iid not in per:
            continue
        bodies = parsed[iid]
        st = bodies[-1].get("state") or {}
        rows = st.get("incidents") or []
        if not rows:
            continue
        row = rows[0]
        lat, lng = _point(row.get("location"))
        incident = {**row, "lat": lat, "lng": lng,
                    "sector_code": zones.get(row.get("sector_id")),
                    "district_code": zones.get(row.get("district_id"))}
        resources = []
        for a in st.get("assignments") or []:
            u = units.get(int(a["unit_id"]))
            resources.append({"call_sign": u[1] if u else f"unit-{a['unit_id']}",
                              "kind": u[2] if u else None,
                              "capabilities": list(u[3] or []) if u else [],
                              "status": a.get("status"), "is_lead": a.get("is_lead"),
                              "updated_at": a.get("updated_at") or a.get("dispatched_at")})
        events = [{"kind": b["kind"], "actor": b["actor"], "at": b["at"], "data": b.get("data")}
                  for b in bodies]
        eido = build_eido(incident=incident, events=events, resources=resources, centre=centre,
                          standards_dir=standards_dir,
                          merged_into=merged.get(row.get("merged_into_id")))
        log_events = [LogEvent(seq, body, tree.inclusion_proof(seq, head.tree_size))
                      for seq, body in per[iid]]
        out.append(Document(str(row["reference"]), eido, log_events))
    return out
