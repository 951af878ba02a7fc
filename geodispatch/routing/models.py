"""Road edges in PostGIS, for display (offline map) and SQL (pgRouting comparisons)."""

from __future__ import annotations

from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from geodispatch.db import Base


class RoadEdge(Base):
    """One directed edge of the compiled graph; ``source``/``target`` are compact node indices."""

    __tablename__ = "road_edges"
    __table_args__ = (Index("ix_road_edges_geom", "geom", postgresql_using="gist"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    source: Mapped[int] = mapped_column(Integer)
    target: Mapped[int] = mapped_column(Integer)
    osm_way_id: Mapped[int | None] = mapped_column(BigInteger)
    highway: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(200))
    length_m: Mapped[float] = mapped_column(Float)
    speed_kmh: Mapped[float] = mapped_column(Float)
    travel_time_s: Mapped[float] = mapped_column(Float)
    geom: Mapped[Any] = mapped_column(Geometry("LINESTRING", srid=4326, spatial_index=False))
