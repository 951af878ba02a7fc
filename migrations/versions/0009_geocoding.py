"""geocoding: the address index (streets, their names, addressed features) and what an
incident keeps of its geocoding (resolved address, precision, method)

The index is searched by folded name keys with pg_trgm (similarity and prefix). The incident's
new columns are projected rows like the others, so the signed record covers them.

Revision ID: 0009_geocoding
Revises: 0008_federation
Create Date: 2026-12-03 12:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op

revision: str = "0009_geocoding"
down_revision: str | None = "0008_federation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _geom() -> geoalchemy2.Geometry:
    return geoalchemy2.Geometry("GEOMETRY", srid=4326, spatial_index=False)


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "geocode_streets",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("street_type", sa.String(32), nullable=True),
        sa.Column("area", sa.Text(), nullable=True),
        sa.Column("country", sa.String(2), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("geom", _geom(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_geocode_streets_geom", "geocode_streets", ["geom"],
                    postgresql_using="gist")
    op.create_table(
        "geocode_names",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("street_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["street_id"], ["geocode_streets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_geocode_names_street_id", "geocode_names", ["street_id"])
    op.create_index("ix_geocode_names_key", "geocode_names", ["key"])
    op.create_index("ix_geocode_names_key_trgm", "geocode_names", ["key"],
                    postgresql_using="gin", postgresql_ops={"key": "gin_trgm_ops"})
    op.create_table(
        "geocode_features",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("street_id", sa.BigInteger(), nullable=True),
        sa.Column("housenumber", sa.Text(), nullable=True),
        sa.Column("hn_key", sa.String(32), nullable=True),
        sa.Column("hn_value", sa.Integer(), nullable=True),
        sa.Column("start_value", sa.Integer(), nullable=True),
        sa.Column("end_value", sa.Integer(), nullable=True),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("key", sa.Text(), nullable=True),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("osm_type", sa.String(1), nullable=True),
        sa.Column("osm_id", sa.BigInteger(), nullable=True),
        sa.Column("geom", _geom(), nullable=False),
        sa.ForeignKeyConstraint(["street_id"], ["geocode_streets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_geocode_features_street_hn", "geocode_features", ["street_id", "hn_key"])
    op.create_index("ix_geocode_features_geom", "geocode_features", ["geom"],
                    postgresql_using="gist")
    op.create_index("ix_geocode_features_key_trgm", "geocode_features", ["key"],
                    postgresql_using="gin", postgresql_ops={"key": "gin_trgm_ops"})
    op.add_column("incidents", sa.Column("address_resolved", sa.Text(), nullable=True))
    op.add_column("incidents", sa.Column("location_precision", sa.String(16), nullable=True))
    op.add_column("incidents", sa.Column("location_method", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("incidents", "location_method")
    op.drop_column("incidents", "location_precision")
    op.drop_column("incidents", "address_resolved")
    op.drop_table("geocode_features")
    op.drop_table("geocode_names")
    op.drop_table("geocode_streets")
