"""Zones: patrol sectors within districts within regions within the country, as H3 cell sets."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from geodispatch.db import Base

LEVELS = ("country", "region", "district", "sector")


class Zone(Base):
    """One zone version. Redrawn boundaries close the old row (``valid_to``) and add a new one."""

    __tablename__ = "zones"
    __table_args__ = (Index("ix_zones_geom", "geom", postgresql_using="gist"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id"))
    region: Mapped[str] = mapped_column(String(16), index=True)
    res: Mapped[int] = mapped_column(Integer)
    cells: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), doc="compacted H3 cells")
    geom: Mapped[object | None] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=False)
    )
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ZoneCell(Base):
    """Expanded membership at the zone resolution: cell -> zone per level, an O(1) SQL lookup."""

    __tablename__ = "zone_cells"

    cell: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    level: Mapped[str] = mapped_column(String(16), primary_key=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id", ondelete="CASCADE"), index=True)


class ZoneMembershipChange(Base):
    """History of re-derived zone membership (an incident or unit moved by a boundary change)."""

    __tablename__ = "zone_membership_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[int] = mapped_column(BigInteger)
    level: Mapped[str] = mapped_column(String(16))
    old_zone_id: Mapped[int | None] = mapped_column(Integer)
    new_zone_id: Mapped[int | None] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
