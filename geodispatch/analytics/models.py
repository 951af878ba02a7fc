"""Response intervals per incident, materialised for fast aggregation over years of data."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from geodispatch.db import Base


class ResponseInterval(Base):
    """One row per incident: the standard intervals in seconds (NULL where a step never happened)."""

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
    turnout_s: Mapped[float | None] = mapped_column(Float)
    travel_s: Mapped[float | None] = mapped_column(Float)
    total_response_s: Mapped[float | None] = mapped_column(Float)
    on_scene_s: Mapped[float | None] = mapped_column(Float)
