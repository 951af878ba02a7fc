"""The crew roster: which officer is in which car for the shift.

A row of ``crew_shifts`` is one officer's shift on one unit, from sign-on to sign-off; an officer
has at most one open shift (a partial unique index). Both tables are the projection of the
unit's roster events in the signed record (``incident_events`` rows with ``unit_id``), numbered
per unit in ``unit_rosters.event_count``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from geodispatch.db import Base


class UnitRoster(Base):
    """A unit as a subject of the record: how many roster events it has."""

    __tablename__ = "unit_rosters"

    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True,
                                         autoincrement=False)
    event_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class CrewShift(Base):
    """One officer signed on to one unit; open while ``signed_off_at`` is NULL.

    ``token_hash`` is the SHA-256 of the crew app's shift token (a random 256-bit secret): the
    terminal presents the token, the server finds the open shift by it.
    """

    __tablename__ = "crew_shifts"
    __table_args__ = (
        Index("ix_crew_shifts_unit", "unit_id"),
        Index("ux_crew_shifts_open_user", "user_id", unique=True,
              postgresql_where=text("signed_off_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    username: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64))
    signed_on_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    signed_off_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    signed_off_by: Mapped[str | None] = mapped_column(String(64))
    sign_off_reason: Mapped[str | None] = mapped_column(Text)
