"""Zone versioning: apply a level's new boundaries, re-derive membership when they move.

Generation for places without official boundaries is :mod:`.generation`; GeoJSON import and
export is :mod:`.geojson`.

A zone is a set of H3 cells at ``settings.h3_zone_res``. Each version is one ``zones`` row holding
the compacted cells and the outline polygon; ``zone_cells`` holds the expanded cells of the
*current* versions only (primary key ``(cell, level)``, so zones of one level never overlap).
Changing a boundary closes the old row (``valid_to``), adds a new one, moves the ``zone_cells``
rows, re-points children and units, and re-derives the sector and district of open incidents,
recording every move in ``zone_membership_history``.

All functions are keyword-only, take the session, ``flush()`` and never commit.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from geoalchemy2.shape import from_shape
from sqlalchemy import delete, insert, select, text
from sqlalchemy.orm import Session

from geodispatch.errors import InvalidInput, NotFound
from geodispatch.geo import LatLng
from geodispatch.incidents.record import append_many
from geodispatch.settings import Settings, get_settings
from geodispatch.zones import cells as hc
from geodispatch.zones.index import ZoneRef
from geodispatch.zones.models import LEVELS, Zone, ZoneCell, ZoneMembershipChange

log = logging.getLogger(__name__)

OPEN_INCIDENT_EXCLUDED = ("closed", "cancelled", "merged")


@dataclass
class ZoneSpec:
    """A zone as wanted: code, name, level, region and its cells at the zone resolution."""

    code: str
    name: str
    level: str
    region: str
    cells: set[int]
    parent_id: int | None = None


@dataclass
class LevelChange:
    """What applying zone specs to one level did."""

    created: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)  # new version ids of changed zones
    unchanged: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)  # ids given a valid_to
    moved_incidents: int = 0
    moved_units: int = 0


@dataclass
class Overlap:
    a: str
    b: str
    cells: int


@dataclass
class ImportReport:
    """Validation and outcome of a GeoJSON import (``applied`` False for a dry run)."""

    level: str
    features: int
    cells: int
    overlaps: list[Overlap]
    overlap_cells: list[int]
    uncovered_cells: list[int]
    empty_features: list[str]
    applied: bool = False
    change: LevelChange | None = None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "level": self.level,
            "features": self.features,
            "cells": self.cells,
            "overlaps": [o.__dict__ for o in self.overlaps],
            "overlap_cells": len(self.overlap_cells),
            "uncovered_cells": len(self.uncovered_cells),
            "empty_features": self.empty_features,
            "applied": self.applied,
        }
        if self.change is not None:
            c = self.change
            out.update(
                created=len(c.created),
                updated=len(c.updated),
                unchanged=len(c.unchanged),
                moved_incidents=c.moved_incidents,
                moved_units=c.moved_units,
            )
        return out


def _now() -> datetime:
    return datetime.now(UTC)


def _parent_level(level: str) -> str | None:
    i = LEVELS.index(level)
    return LEVELS[i - 1] if i > 0 else None


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise InvalidInput(f"unknown zone level {level!r}; one of {', '.join(LEVELS)}")


def current_zones(*, session: Session, level: str | None = None) -> list[Zone]:
    """Current zone versions, optionally of one level."""
    q = select(Zone).where(Zone.valid_to.is_(None)).order_by(Zone.level, Zone.code)
    if level is not None:
        q = q.where(Zone.level == level)
    return list(session.scalars(q))


def zone_cells(*, session: Session, zone_id: int) -> set[int]:
    """Expanded cells of a zone version (from its compacted array)."""
    zone = session.get(Zone, zone_id)
    if zone is None:
        raise NotFound(f"zone {zone_id}")
    return hc.uncompact(zone.cells, zone.res)


def _insert_zone(*, session: Session, spec: ZoneSpec, res: int, at: datetime | None) -> Zone:
    if not spec.cells:
        raise InvalidInput(f"zone {spec.code} has no cells")
    zone = Zone(
        code=spec.code,
        name=spec.name,
        level=spec.level,
        parent_id=spec.parent_id,
        region=spec.region,
        res=res,
        cells=hc.compact(spec.cells),
        geom=from_shape(hc.cells_to_multipolygon(spec.cells), srid=4326),
    )
    if at is not None:
        zone.valid_from = at
    session.add(zone)
    session.flush()
    session.execute(
        insert(ZoneCell),
        [{"cell": c, "level": spec.level, "zone_id": zone.id} for c in sorted(spec.cells)],
    )
    return zone


def _level_cells(*, session: Session, level: str) -> dict[int, int]:
    """cell -> current zone id at ``level``."""
    rows = session.execute(
        select(ZoneCell.cell, ZoneCell.zone_id).where(ZoneCell.level == level)
    ).all()
    return {int(c): int(z) for c, z in rows}


def _majority_parent(cells: Iterable[int], parent_map: Mapping[int, int]) -> int | None:
    votes = Counter(parent_map[c] for c in cells if c in parent_map)
    return votes.most_common(1)[0][0] if votes else None


def apply_level(
    *,
    session: Session,
    level: str,
    specs: Sequence[ZoneSpec],
    settings: Settings | None = None,
    at: datetime | None = None,
) -> LevelChange:
    """Make the current zones of ``level`` match ``specs``, versioning whatever changes.

    Parameters
    ----------
    session : Session
        Flushed, not committed.
    level : str
        One of :data:`~geodispatch.zones.models.LEVELS`.
    specs : sequence of ZoneSpec
        Wanted zones, disjoint cell sets, identified by ``code``. Existing zones of the level that
        are not named keep their cells except those a spec claims (they get a new version too).
    settings : Settings, optional
        Gives the zone resolution; :func:`get_settings` when omitted.
    at : datetime, optional
        Time of the change (``valid_to`` of old versions, ``valid_from`` of new ones).

    Returns
    -------
    LevelChange

    Notes
    -----
    A spec without ``parent_id`` gets the current zone of the level above holding most of its
    cells. After the change, children of replaced zones are re-pointed to the new versions and
    membership of units and open incidents is re-derived (:func:`rederive_membership`).
    """
    _check_level(level)
    settings = settings or get_settings()
    res = settings.h3_zone_res
    at = at or _now()
    seen: dict[int, str] = {}
    for s in specs:
        for c in s.cells:
            if c in seen:
                raise InvalidInput(f"zones {seen[c]} and {s.code} overlap at cell {c:x}")
            seen[c] = s.code
    existing = {z.code: z for z in current_zones(session=session, level=level)}
    claimed = set(seen)
    parent_level = _parent_level(level)
    parent_map = _level_cells(session=session, level=parent_level) if parent_level else {}

    # What each existing zone should become: its spec, or its old cells minus claimed ones.
    wanted: dict[str, ZoneSpec] = {}
    for s in specs:
        if s.parent_id is None and parent_map:
            s.parent_id = _majority_parent(s.cells, parent_map)
        wanted[s.code] = s
    for code, zone in existing.items():
        if code in wanted:
            continue
        held = hc.uncompact(zone.cells, zone.res)
        if held & claimed:
            wanted[code] = ZoneSpec(
                code=code,
                name=zone.name,
                level=level,
                region=zone.region,
                cells=held - claimed,
                parent_id=zone.parent_id,
            )

    change = LevelChange()
    replaced: dict[int, int | None] = {}  # old id -> new id (None: zone vanished)
    # Close changed versions first so their cells are free for the new rows.
    for code, spec in wanted.items():
        old = existing.get(code)
        if old is None:
            continue
        same_cells = old.res == res and hc.uncompact(old.cells, old.res) == spec.cells
        if same_cells and old.name == spec.name and old.region == spec.region and (
            old.parent_id == spec.parent_id
        ):
            change.unchanged.append(old.id)
            continue
        old.valid_to = at
        change.closed.append(old.id)
        replaced[old.id] = None
        session.execute(delete(ZoneCell).where(ZoneCell.zone_id == old.id))
    session.flush()
    for code, spec in wanted.items():
        old = existing.get(code)
        if old is not None and old.id not in replaced:
            continue
        if not spec.cells:
            continue  # a zone whose every cell was taken by others simply ends
        new = _insert_zone(session=session, spec=spec, res=res, at=at)
        if old is None:
            change.created.append(new.id)
        else:
            change.updated.append(new.id)
            replaced[old.id] = new.id
    if replaced:
        _repoint_children(session=session, level=level, replaced=replaced)
    session.flush()
    if replaced or change.created:
        moved = rederive_membership(session=session, settings=settings, replaced=replaced, at=at)
        change.moved_incidents, change.moved_units = moved
    return change


def _repoint_children(*, session: Session, level: str, replaced: Mapping[int, int | None]) -> None:
    """Children of replaced zones follow the new version holding most of their cells."""
    i = LEVELS.index(level)
    if i + 1 >= len(LEVELS):
        return
    child_level = LEVELS[i + 1]
    level_map = _level_cells(session=session, level=level)
    children = session.scalars(
        select(Zone).where(
            Zone.valid_to.is_(None),
            Zone.level == child_level,
            Zone.parent_id.in_(list(replaced)),
        )
    ).all()
    for child in children:
        child.parent_id = _majority_parent(hc.uncompact(child.cells, child.res), level_map)


def rederive_membership(
    *,
    session: Session,
    settings: Settings | None = None,
    replaced: Mapping[int, int | None] | None = None,
    at: datetime | None = None,
) -> tuple[int, int]:
    """Re-derive the sector/district of open incidents and the home sector of units.

    Parameters
    ----------
    replaced : mapping, optional
        Old zone id -> new version id (None when the zone ended), used for units' home sectors.
    at : datetime, optional
        ``changed_at`` of the history rows.

    Returns
    -------
    (int, int)
        Number of incidents and of units whose membership changed.

    Notes
    -----
    An incident's zones follow from its location's cell at the zone resolution and the current
    ``zone_cells`` (the location, not the stored finer cell: H3 children do not nest exactly in
    their parent, so near cell edges the parent of a res-9 cell is not the point's res-8 cell);
    closed, cancelled and merged incidents keep the zones they were handled in.
    A unit's home sector is an assignment, not a position: it moves to the new version of the
    same sector (or to none when the sector ended). Every change appends a
    ``zone_membership_history`` row with the old and new zone.
    """
    settings = settings or get_settings()
    at = at or _now()
    res = settings.h3_zone_res
    sector_map = _level_cells(session=session, level="sector")
    district_map = _level_cells(session=session, level="district")
    history: list[dict[str, Any]] = []
    rows = session.execute(
        text(
            "SELECT id, ST_Y(location), ST_X(location), sector_id, district_id FROM incidents "
            "WHERE status <> ALL(:excluded)"
        ),
        {"excluded": list(OPEN_INCIDENT_EXCLUDED)},
    ).all()
    moved_incidents = 0
    rezoned: list[tuple[int, dict[str, Any]]] = []
    for iid, lat, lng, sector_id, district_id in rows:
        if lat is None or lng is None:
            continue
        zc = hc.cell_of(LatLng(float(lat), float(lng)), res)
        new_s, new_d = sector_map.get(zc), district_map.get(zc)
        if new_s == sector_id and new_d == district_id:
            continue
        moved_incidents += 1
        session.execute(
            text("UPDATE incidents SET sector_id = :s, district_id = :d WHERE id = :i"),
            {"s": new_s, "d": new_d, "i": iid},
        )
        rezoned.append((int(iid), {"sector_id": new_s, "district_id": new_d,
                                   "previous": {"sector_id": sector_id,
                                                "district_id": district_id}}))
        for lv, old, new in (("sector", sector_id, new_s), ("district", district_id, new_d)):
            if old != new:
                history.append(
                    dict(entity="incident", entity_id=iid, level=lv, old_zone_id=old,
                         new_zone_id=new, changed_at=at)
                )
    # The incident record follows: every moved incident gets a ``rezoned`` event.
    append_many(session=session, kind="rezoned", actor="zones", events=rezoned, at=at)
    moved_units = 0
    if replaced:
        units = session.execute(
            text("SELECT id, home_zone_id FROM units WHERE home_zone_id = ANY(:ids)"),
            {"ids": list(replaced)},
        ).all()
        for uid, old in units:
            new = replaced[int(old)]
            moved_units += 1
            session.execute(
                text("UPDATE units SET home_zone_id = :z WHERE id = :u"), {"z": new, "u": uid}
            )
            history.append(
                dict(entity="unit", entity_id=uid, level="sector", old_zone_id=old,
                     new_zone_id=new, changed_at=at)
            )
    if history:
        session.execute(insert(ZoneMembershipChange), history)
    session.flush()
    return moved_incidents, moved_units


def membership_history(
    *, session: Session, entity: str, entity_id: int
) -> list[ZoneMembershipChange]:
    """History rows of one incident or unit, oldest first."""
    return list(
        session.scalars(
            select(ZoneMembershipChange)
            .where(
                ZoneMembershipChange.entity == entity,
                ZoneMembershipChange.entity_id == entity_id,
            )
            .order_by(ZoneMembershipChange.id)
        )
    )


# --- validation of what is stored --------------------------------------------------------------


def validate_hierarchy(*, session: Session) -> dict[str, dict[str, int]]:
    """Per level: cells of the parent level not covered (``uncovered``) and cells outside it
    (``orphans``); zones of one level cannot overlap (primary key ``(cell, level)``)."""
    out: dict[str, dict[str, int]] = {}
    for level in LEVELS[1:]:
        parent = _parent_level(level)
        mine = set(_level_cells(session=session, level=level))
        above = set(_level_cells(session=session, level=parent)) if parent else set()
        out[level] = {
            "cells": len(mine),
            "uncovered": len(above - mine) if mine else 0,
            "orphans": len(mine - above) if above else 0,
        }
    return out


def sql_lookup(*, session: Session, cell: int, settings: Settings | None = None) -> ZoneRef:
    """Zones of an H3 cell from ``zone_cells`` in SQL: one primary-key probe per level.

    The same answer as :meth:`ZoneIndex.lookup_cell`, for processes without the index in memory.
    A finer cell is brought to its parent at the zone resolution; for a point, pass its own cell at
    the zone resolution (H3 children do not nest exactly, so the two can differ near cell edges).
    """
    settings = settings or get_settings()
    zc = hc.to_res(int(cell), settings.h3_zone_res)
    rows = session.execute(
        text(
            "SELECT zc.level, zc.zone_id, z.region FROM zone_cells zc "
            "JOIN zones z ON z.id = zc.zone_id WHERE zc.cell = :c"
        ),
        {"c": zc},
    ).all()
    by_level = {str(lv): (int(zid), str(region)) for lv, zid, region in rows}
    region = settings.default_region
    for lv in ("sector", "district", "region"):
        if lv in by_level:
            region = by_level[lv][1]
            break
    return ZoneRef(
        sector_id=by_level["sector"][0] if "sector" in by_level else None,
        district_id=by_level["district"][0] if "district" in by_level else None,
        region=region,
    )


def set_home_zone(*, session: Session, unit_id: int, zone_id: int | None) -> None:
    """Give a unit a home sector (a current sector zone) or none."""
    if zone_id is not None:
        z = session.get(Zone, zone_id)
        if z is None or z.valid_to is not None or z.level != "sector":
            raise InvalidInput(f"zone {zone_id} is not a current sector")
    session.execute(
        text("UPDATE units SET home_zone_id = :z WHERE id = :u"), {"z": zone_id, "u": unit_id}
    )
    session.flush()


__all__ = [
    "ImportReport",
    "LevelChange",
    "ZoneSpec",
    "apply_level",
    "current_zones",
    "membership_history",
    "rederive_membership",
    "set_home_zone",
    "sql_lookup",
    "validate_hierarchy",
    "zone_cells",
]
