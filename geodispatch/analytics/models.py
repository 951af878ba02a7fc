"""Response intervals per incident, materialised for fast aggregation over years of data.

Two tables:

* ``response_intervals``: one row per incident with the standard intervals in seconds, the H3
  cells at resolutions 7, 8 and 9, the local hour of day and day of week (see
  :mod:`geodispatch.analytics.intervals` for the exact definitions);
* ``response_cell_days``: per H3 cell (res 7/8/9) and UTC day, the number of incidents and the
  *sorted* array of their total response times. Percentiles per cell over whole days are then
  computed exactly from these short sorted arrays instead of sorting a year of rows
  (:mod:`geodispatch.analytics.aggregates`).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
)
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION
from sqlalchemy.orm import Mapped, mapped_column

from geodispatch.db import Base


class ResponseInterval(Base):
    """One row per incident: the standard intervals in seconds (NULL where a step is missing)."""

    __tablename__ = "response_intervals"
    __table_args__ = (
        Index("ix_response_intervals_received", "received_at", postgresql_using="brin"),
        Index("ix_response_intervals_h3_8", "h3_8"),
    )

    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    region: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(48))
    priority: Mapped[int] = mapped_column(Integer)
    sector_id: Mapped[int | None] = mapped_column(Integer)
    h3_7: Mapped[int] = mapped_column(BigInteger)
    h3_8: Mapped[int] = mapped_column(BigInteger)
    h3_9: Mapped[int] = mapped_column(BigInteger)
    hour: Mapped[int] = mapped_column(SmallInteger)
    dow: Mapped[int] = mapped_column(SmallInteger)
    registration_s: Mapped[float | None] = mapped_column(Float)
    queue_s: Mapped[float | None] = mapped_column(Float)
    call_processing_s: Mapped[float | None] = mapped_column(Float)
    turnout_s: Mapped[float | None] = mapped_column(Float)
    travel_s: Mapped[float | None] = mapped_column(Float)
    total_response_s: Mapped[float | None] = mapped_column(Float)
    on_scene_s: Mapped[float | None] = mapped_column(Float)
    crews: Mapped[int] = mapped_column(SmallInteger, default=0)


class ResponseCellDay(Base):
    """Per H3 cell and UTC day: incident count and the ascending total response times."""

    __tablename__ = "response_cell_days"

    res: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    cell: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    region: Mapped[str] = mapped_column(String(16), primary_key=True)
    incidents: Mapped[int] = mapped_column(Integer)
    total_response_s: Mapped[list[float]] = mapped_column(ARRAY(DOUBLE_PRECISION))
