"""Assignments: which crew goes to which incident, and the times of each step."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from geodispatch.db import Base

ASSIGNMENT_STATUSES = ("dispatched", "acknowledged", "en_route", "on_scene", "cleared", "cancelled")


class Assignment(Base):
    """A crew sent to an incident. One incident may have several; one is the lead."""

    __tablename__ = "assignments"
    __table_args__ = (
        Index("ix_assignments_incident", "incident_id"),
        Index("ix_assignments_unit_status", "unit_id", "status"),
        Index("ix_assignments_import_batch", "import_batch_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    status: Mapped[str] = mapped_column(String(16), default="dispatched")
    is_lead: Mapped[bool] = mapped_column(Boolean, default=False)
    was_recommended: Mapped[bool] = mapped_column(Boolean, default=True)
    override_reason: Mapped[str | None] = mapped_column(Text)
    eta_s: Mapped[float | None] = mapped_column(Float)
    distance_m: Mapped[float | None] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(64))
    recommended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispatched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                    server_default=func.now())
    #: Delivery to the crew terminal: first successful publish, first receipt, the crew's press.
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    send_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    en_route_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    on_scene_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The archive import that brought this assignment in, or None (see ``ImportBatch``).
    import_batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batches.id"))


class CrewReportKey(Base):
    """The idempotency key of a crew terminal's report: a resent press is stored once."""

    __tablename__ = "crew_report_keys"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    status: Mapped[str] = mapped_column(String(32))
    result: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                  server_default=func.now())
