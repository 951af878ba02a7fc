"""Response intervals per incident, materialised for fast aggregation over years of data.

Two tables:

* ``response_intervals``: one row per incident with the standard intervals in seconds, the H3
  cells at resolutions 7, 8 and 9, the local hour of day and day of week (see
  :mod:`geodispatch.analytics.intervals` for the exact definitions);
* ``response_sketches``: per UTC day and per UTC month, per H3 cell / sector / hour / weekday,
  region, category and priority, a mergeable quantile sketch of each of the console's intervals
  (:mod:`geodispatch.analytics.sketch`), so percentiles over years of rows are read, not sorted.
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
    LargeBinary,
    SmallInteger,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from geodispatch.db import Base


class ResponseInterval(Base):
    """One row per incident: the standard intervals in seconds (NULL where a step is missing)."""

    __tablename__ = "response_intervals"
    __table_args__ = (
        Index("ix_response_intervals_received", "received_at"),
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


class ResponseSketch(Base):
    """A mergeable quantile sketch of one interval for one group of incidents and one UTC day or
    month (see :mod:`geodispatch.analytics.sketch`)."""

    __tablename__ = "response_sketches"
    __table_args__ = (
        Index("ix_response_sketches_lookup", "dim", "iv", "span", "period"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    #: ``d`` (a UTC day) or ``m`` (a UTC month, the merge of its days)
    span: Mapped[str] = mapped_column(String(1))
    #: the day, or the first day of the month
    period: Mapped[date] = mapped_column(Date)
    #: 7, 8, 9 (H3 cells of that resolution), 20 sector, 21 local hour, 22 local day of week
    dim: Mapped[int] = mapped_column(SmallInteger)
    key: Mapped[int | None] = mapped_column(BigInteger)
    region: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(48))
    priority: Mapped[int] = mapped_column(SmallInteger)
    #: index into ``sketch.SKETCHED_INTERVALS``
    iv: Mapped[int] = mapped_column(SmallInteger)
    incidents: Mapped[int] = mapped_column(Integer)
    n: Mapped[int] = mapped_column(Integer)
    #: little-endian int64 ``bucket << 32 | count`` per non-empty bucket, in bucket order
    sketch: Mapped[bytes] = mapped_column(LargeBinary)
