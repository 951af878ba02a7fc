"""Incidents, their append-only event record and reference counters.

The events are the record; the ``incidents`` row (and each ``assignments`` row) is their
projection. Every event carries, in its canonical ``body``, the state of the incident's projected
rows after it, and the sequencer seals every body into the signed Merkle log
(:mod:`geodispatch.ledger`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
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


class ImportBatch(Base):
    """One archive file imported by ``geodispatch import calls`` (:mod:`geodispatch.analytics`).

    Archive rows are history, not the live record: they go in by ``COPY`` without an event per
    incident. Tamper evidence is per batch instead: the batch's one event in the signed record
    (kind ``archive_imported``) carries the file's sha256, the counts and ``rows_sha256``, a hash
    over the canonical spelling of every row the batch inserted
    (:func:`geodispatch.incidents.archive.batch_digest`), which verification recomputes.
    """

    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    region: Mapped[str] = mapped_column(String(16))
    file_name: Mapped[str] = mapped_column(Text)
    file_sha256: Mapped[str] = mapped_column(String(64))
    mapping: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=func.now())


class Incident(Base):
    """The current state of a call; every change to it is also an :class:`IncidentEvent`.

    ``category`` is the current classification; the original one and every change, with actor
    and reason, live in the event log (``original_category`` keeps the first for display).
    """

    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_location", "location", postgresql_using="gist"),
        Index("ix_incidents_received_at", "received_at"),
        Index("ix_incidents_import_batch", "import_batch_id"),
        Index("ix_incidents_region_status", "region", "status"),
        # The search box's substring matches (pg_trgm; migration 0017).
        *(Index(f"ix_incidents_{c}_trgm", c, postgresql_using="gin",
                postgresql_ops={c: "gin_trgm_ops"})
          for c in ("reference", "address", "address_resolved", "caller_phone")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    region: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                    server_default=func.now())
    caller_phone: Mapped[str | None] = mapped_column(String(32))
    caller_lang: Mapped[str] = mapped_column(String(5), default="uk")
    sms_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    #: None while the place is unknown (an address that did not resolve, a call without one);
    #: the queue shows such calls as "location unknown" until someone places them on the map.
    location: Mapped[Any | None] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False), nullable=True)
    h3: Mapped[int | None] = mapped_column(BigInteger)
    #: The address as the call-taker typed it.
    address: Mapped[str | None] = mapped_column(Text)
    #: What the geocoder made of it (or of the point): ``750, East Pratt Street``.
    address_resolved: Mapped[str | None] = mapped_column(Text)
    #: How exact ``location`` is: house, interpolated, street, area, intersection; None for a
    #: point given as coordinates (map click, caller's handset) or no location.
    location_precision: Mapped[str | None] = mapped_column(String(16))
    #: Where ``location`` came from: ``coordinates``, ``house``, ``interpolation``,
    #: ``street-near-hint`` ... (see :mod:`geodispatch.geocoding.service`).
    location_method: Mapped[str | None] = mapped_column(String(32))
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
    #: The archive import that brought this incident in (:class:`ImportBatch`), or None. Such an
    #: incident has no events of its own: its batch's one event seals a hash over its rows.
    import_batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batches.id"))
    #: How many events this incident has; the next event's ``incident_seq`` is this plus one.
    event_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class IncidentEvent(Base):
    """One appended fact, in the canonical bytes the log seals (``body``, RFC 8785 JSON).

    ``incident_id``, ``incident_seq``, ``kind``, ``actor``, ``at`` and ``data`` repeat what the
    body says, for queries; verification checks that they still do. ``incident_seq`` counts one
    incident's events 1, 2, 3 ... with no gaps. The database refuses UPDATE, DELETE and TRUNCATE
    here to the application role (grants plus a trigger); what protects the record from the
    owner or a superuser is the signed log, not the trigger.

    A call (:mod:`geodispatch.calls`) is a subject of the record of its own: its events have
    ``call_id`` set and no ``incident_id``, and are numbered 1..N per call in ``incident_seq``.
    So is a unit's crew roster (:mod:`geodispatch.crew.roster`: who signed on to the car and
    off it): ``unit_id`` set, numbered 1..N per unit.
    An archive import batch (:class:`ImportBatch`) is another kind of subject: one event with
    ``import_batch_id`` set seals the whole file's rows by their hash.
    """

    __tablename__ = "incident_events"
    __table_args__ = (
        UniqueConstraint("incident_id", "incident_seq", name="uq_incident_events_incident_seq"),
        CheckConstraint("incident_seq > 0", name="ck_incident_events_seq_positive"),
        UniqueConstraint("call_id", "incident_seq", name="uq_incident_events_call_seq"),
        UniqueConstraint("unit_id", "incident_seq", name="uq_incident_events_unit_seq"),
        CheckConstraint("num_nonnulls(incident_id, call_id, unit_id, import_batch_id) = 1",
                        name="ck_incident_events_one_subject"),
        UniqueConstraint("import_batch_id", "incident_seq", name="uq_incident_events_batch_seq"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    #: The incident the event belongs to, or None for a call's event (``call_id`` set).
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), index=True)
    #: The call whose record this event is (:mod:`geodispatch.calls`); its number among the
    #: call's events is ``incident_seq`` (``call_seq`` in the body).
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), index=True)
    #: The unit whose crew roster this event is (sign-on, sign-off); ``unit_seq`` in the body.
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    #: The archive import batch this event seals (:class:`ImportBatch`; ``batch_seq`` in the
    #: body), or None.
    import_batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batches.id"),
                                                        index=True)
    incident_seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    body: Mapped[bytes] = mapped_column(LargeBinary)


class ReferenceCounter(Base):
    """Gap-free public reference numbers per region and year (row-locked on increment)."""

    __tablename__ = "reference_counters"

    region: Mapped[str] = mapped_column(String(16), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)
