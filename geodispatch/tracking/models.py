"""Units (crews), their devices, the position history and the latest position per unit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geodispatch.db import Base

UNIT_KINDS = ("patrol_car", "foot_patrol", "rapid_response", "traffic", "k9", "supervisor_car")
UNIT_STATUSES = (
    "off_duty",
    "available",
    "dispatched",
    "en_route",
    "on_scene",
    "transporting",
    "cleared",
    "out_of_service",
    "break",
)


class Unit(Base):
    """A crew with its vehicle or terminal; ``device_id`` is its MQTT username and HTTP id."""

    __tablename__ = "units"
    __table_args__ = (
        UniqueConstraint("owntracks_user", "owntracks_device"),
        Index("ix_units_call_sign_trgm", "call_sign", postgresql_using="gin",
              postgresql_ops={"call_sign": "gin_trgm_ops"}),  # the search box (migration 0017)
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    call_sign: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(24), default="patrol_car")
    capabilities: Mapped[list[str]] = mapped_column(ARRAY(String(32)), default=list)
    region: Mapped[str] = mapped_column(String(16), index=True)
    home_zone_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id"))
    status: Mapped[str] = mapped_column(String(20), default="off_duty")
    status_changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    device_id: Mapped[str] = mapped_column(String(64), unique=True)
    device_token_hash: Mapped[str] = mapped_column(String(200))
    owntracks_user: Mapped[str | None] = mapped_column(String(64))
    owntracks_device: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Position(Base):
    """One GPS fix. Range-partitioned by ``fix_time`` (monthly partitions plus a default one)."""

    __tablename__ = "positions"
    __table_args__ = (
        Index("ix_positions_geom", "geom", postgresql_using="gist"),
        Index("ix_positions_fix_time", "fix_time", postgresql_using="brin"),
        {"postgresql_partition_by": "RANGE (fix_time)"},
    )

    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)
    fix_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    geom: Mapped[Any] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    h3: Mapped[int] = mapped_column(BigInteger)
    speed_mps: Mapped[float | None] = mapped_column(Float)
    heading: Mapped[float | None] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    altitude_m: Mapped[float | None] = mapped_column(Float)
    battery: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class UnitLatest(Base):
    """The newest fix of each unit; it only ever moves forward in ``fix_time``."""

    __tablename__ = "unit_latest"
    __table_args__ = (Index("ix_unit_latest_geom", "geom", postgresql_using="gist"),)

    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)
    fix_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    geom: Mapped[Any] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    h3: Mapped[int] = mapped_column(BigInteger)
    speed_mps: Mapped[float | None] = mapped_column(Float)
    heading: Mapped[float | None] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    battery: Mapped[float | None] = mapped_column(Float)
    online: Mapped[bool] = mapped_column(Boolean, default=True)


class IngestDrop(Base):
    """Counters of rejected messages per reason (the worker also logs each one)."""

    __tablename__ = "ingest_drops"

    reason: Mapped[str] = mapped_column(String(48), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class IngestDeadLetter(Base):
    """A message kept whole because it broke (or would have broken) an ingest stage.

    ``payload`` is the raw bytes as received, for inspection and replay; ``reason`` is one of
    ``reports.DEAD_LETTER_REASONS`` and ``detail`` the error (e.g. the database's message).
    """

    __tablename__ = "ingest_dead_letters"
    __table_args__ = (Index("ix_ingest_dead_letters_received_at", "received_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    transport: Mapped[str] = mapped_column(String(8))
    topic: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(String(48))
    detail: Mapped[str] = mapped_column(Text, default="")
    unit_id: Mapped[int | None] = mapped_column(Integer)


class UnitDirectoryVersion(Base):
    """One row whose ``version`` a trigger bumps whenever a unit's logins or ``active`` change.

    Every ingest process polls it (one indexed row, once a second while messages flow) and
    reloads its device directory when it moved, so a deactivated unit is refused everywhere
    within about a second, whoever changed it (CLI, API, SQL).
    """

    __tablename__ = "unit_directory_version"
    __table_args__ = (CheckConstraint("id = 1", name="unit_directory_version_one_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
