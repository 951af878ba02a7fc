"""The address index: streets, their names, and the addressed features along them.

Built by ``geodispatch geocode import`` from what Nominatim made of the city's own OSM extract
(:mod:`geodispatch.geocoding.importer`) and read by the search
(:mod:`geodispatch.geocoding.service`). Every name is stored with its folded ``key``
(:func:`geodispatch.geocoding.text.core_key`), which a trigram index makes searchable by
similarity and by prefix.
"""

from __future__ import annotations

from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from geodispatch.db import Base


class GeocodeStreet(Base):
    """One street: every OSM way of one name that hangs together (a same-named street in
    another part of town is another row). ``geom`` holds its ways (or, for a street the road
    data does not have, the points of its houses)."""

    __tablename__ = "geocode_streets"
    __table_args__ = (Index("ix_geocode_streets_geom", "geom", postgresql_using="gist"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    street_type: Mapped[str | None] = mapped_column(String(32))
    area: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(String(2))
    source: Mapped[str] = mapped_column(String(16))  # "road" | "addresses"
    geom: Mapped[Any] = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=False))


class GeocodeName(Base):
    """A name a street is known by (``name``, ``name:uk``, ``old_name`` ...), keyed."""

    __tablename__ = "geocode_names"
    __table_args__ = (
        Index("ix_geocode_names_key", "key"),
        Index("ix_geocode_names_key_trgm", "key", postgresql_using="gin",
              postgresql_ops={"key": "gin_trgm_ops"}),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    street_id: Mapped[int] = mapped_column(
        ForeignKey("geocode_streets.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(Text)


class GeocodeFeature(Base):
    """An addressed thing: a house (node or building), an interpolation line, a named area or
    landmark. Houses and interpolations belong to a street; areas and landmarks have a key."""

    __tablename__ = "geocode_features"
    __table_args__ = (
        Index("ix_geocode_features_street_hn", "street_id", "hn_key"),
        Index("ix_geocode_features_geom", "geom", postgresql_using="gist"),
        Index("ix_geocode_features_key_trgm", "key", postgresql_using="gin",
              postgresql_ops={"key": "gin_trgm_ops"}),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # house | interpolation | area | poi
    street_id: Mapped[int | None] = mapped_column(
        ForeignKey("geocode_streets.id", ondelete="CASCADE"))
    housenumber: Mapped[str | None] = mapped_column(Text)
    hn_key: Mapped[str | None] = mapped_column(String(32))
    hn_value: Mapped[int | None] = mapped_column(Integer)
    start_value: Mapped[int | None] = mapped_column(Integer)
    end_value: Mapped[int | None] = mapped_column(Integer)
    step: Mapped[int | None] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(Text)
    key: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str] = mapped_column(Text)
    osm_type: Mapped[str | None] = mapped_column(String(1))
    osm_id: Mapped[int | None] = mapped_column(BigInteger)
    geom: Mapped[Any] = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=False))
