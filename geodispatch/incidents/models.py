"""Incidents, their append-only hash-chained event log, chain anchors and reference counters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geodispatch.db import Base

INCIDENT_STATUSES = (
    "registered",
    "queued",
    "assigned",
    "en_route",
    "on_scene",
    "cleared",
    "closed",
    "cancelled",
    "merged",
)


class Incident(Base):
    """The current state of a call; every change to it is also an :class:`IncidentEvent`.

    ``category`` is the current classification; the original one and every change, with actor
    and reason, live in the event log (``original_category`` keeps the first for display).
    """

    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_location", "location", postgresql_using="gist"),
        Index("ix_incidents_received_at", "received_at"),
        Index("ix_incidents_region_status", "region", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    region: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    caller_phone: Mapped[str | None] = mapped_column(String(32))
    caller_lang: Mapped[str] = mapped_column(String(5), default="uk")
    sms_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    location: Mapped[Any] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    h3: Mapped[int] = mapped_column(BigInteger)
    address: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(48))
    original_category: Mapped[str] = mapped_column(String(48))
    priority: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="registered")
    description: Mapped[str] = mapped_column(Text, default="")
    sector_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id"))
    district_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id"))
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    disposition: Mapped[str | None] = mapped_column(String(8))
    created_by: Mapped[str] = mapped_column(String(64))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(16), default="call")
    external_ref: Mapped[str | None] = mapped_column(String(64), index=True)


class IncidentEvent(Base):
    """One appended fact. ``hash = sha256(prev_hash || canonical(content))`` over one global chain.

    The database refuses UPDATE and DELETE on this table (trigger plus grants).
    """

    __tablename__ = "incident_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class ChainAnchor(Base):
    """A periodic record of the chain head (also appended to a file outside the database)."""

    __tablename__ = "chain_anchors"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_event_id: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str] = mapped_column(String(64))
    event_count: Mapped[int] = mapped_column(BigInteger)


class ReferenceCounter(Base):
    """Gap-free public reference numbers per region and year (row-locked on increment)."""

    __tablename__ = "reference_counters"

    region: Mapped[str] = mapped_column(String(16), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)
