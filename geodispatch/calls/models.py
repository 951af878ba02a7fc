"""Calls, callbacks, caller locations (AML, PIDF-LO) and refused location messages.

A :class:`Call` row exists from the first ring. It, its callbacks and the locations matched to
it are the projection of the call's events in the signed record (``incident_events`` rows whose
``call_id`` is set; see :func:`geodispatch.incidents.record.append_call_event`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from geodispatch.db import Base

CALL_STATES = ("ringing", "answered", "ended", "abandoned", "closed")
OUTCOMES = ("new_incident", "additional_caller", "information", "prank", "wrong_number",
            "silent", "transferred")
CALLBACK_STATUSES = ("pending", "done", "failed")


class Call(Base):
    """One call to the centre: ringing -> answered -> ended -> closed (with an outcome), or
    ringing -> abandoned (a callback task)."""

    __tablename__ = "calls"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_calls_source_external_id"),
        CheckConstraint("state IN ('ringing','answered','ended','abandoned','closed')",
                        name="ck_calls_state"),
        CheckConstraint("outcome IS NULL OR outcome IN ('new_incident','additional_caller',"
                        "'information','prank','wrong_number','silent','transferred')",
                        name="ck_calls_outcome"),
        CheckConstraint("state <> 'closed' OR outcome IS NOT NULL OR answered_at IS NULL",
                        name="ck_calls_closed_has_outcome"),
        Index("ix_calls_state", "state"),
        Index("ix_calls_ring_at", "ring_at"),
        Index("ix_calls_caller_phone", "caller_phone"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Who reported it (``webhook``, ``sip``, ``ari`` ...) and its id there (Call-ID, channel id).
    source: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(255))
    #: E.164 when the number is a valid one; else as the phone system gave it (or None).
    caller_phone: Mapped[str | None] = mapped_column(String(64))
    line: Mapped[str] = mapped_column(String(64), default="")
    ring_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                  server_default=func.now())
    #: 1 = first in the queue when it started ringing.
    queue_position: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="ringing")
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    operator: Mapped[str | None] = mapped_column(String(64))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(24))
    outcome_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome_by: Mapped[str | None] = mapped_column(String(64))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), index=True)
    transferred_to: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str] = mapped_column(Text, default="")
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: How many events the call has; the next one's number is this plus one.
    event_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class CallCallback(Base):
    """A call abandoned while ringing: somebody must call the number back."""

    __tablename__ = "call_callbacks"
    __table_args__ = (
        CheckConstraint("status IN ('pending','done','failed')", name="ck_call_callbacks_status"),
        Index("ix_call_callbacks_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    phone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    #: The "we missed your call" SMS queued in the outbox (None: opted out, or not a number).
    sms_id: Mapped[int | None] = mapped_column(ForeignKey("sms_outbox.id"))
    sms_skipped: Mapped[str | None] = mapped_column(String(64))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    done_by: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")


class CallLocation(Base):
    """A caller's location from the network or the handset (AML, PIDF-LO), matched to a call
    from the same number within the matching window, or waiting unmatched."""

    __tablename__ = "call_locations"
    __table_args__ = (Index("ix_call_locations_phone", "phone", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: ``aml-sms-v1``, ``aml-sms-v2``, ``aml-https``, ``pidf-lo``.
    kind: Mapped[str] = mapped_column(String(16))
    phone: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    lat: Mapped[float | None] = mapped_column(Float)
    lng: Mapped[float | None] = mapped_column(Float)
    radius_m: Mapped[float | None] = mapped_column(Float)
    fix_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: GNSS, WIFI, CELL, FUSED, NONE, UNKNOWN (AML); PIDF-LO: its ``method`` element.
    method: Mapped[str | None] = mapped_column(String(32))
    confidence: Mapped[int | None] = mapped_column(Integer)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), index=True)
    matched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    raw: Mapped[str] = mapped_column(Text)


class CallLocationReject(Base):
    """A location message refused by strict validation, kept whole with the reason."""

    __tablename__ = "call_location_rejects"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                  server_default=func.now())
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text)
