"""Road edges in PostGIS: bulk write with COPY after an import, and GeoJSON reads for the map."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.routing.graph import RoadGraph

log = logging.getLogger(__name__)

COLUMNS = ("id", "source", "target", "osm_way_id", "highway", "name", "length_m", "speed_kmh",
           "travel_time_s", "geom")


def edge_frame(graph: RoadGraph) -> pd.DataFrame:
    """One row per directed edge with the ``road_edges`` columns (geometry as hex EWKB).

    ``id`` is the edge's index in the graph and ``source``/``target`` its node indices, so rows
    and the in-memory graph refer to the same things.
    """
    ptr, idx = graph.edge_coord_index()
    coords = np.column_stack([graph.coord_lng[idx], graph.coord_lat[idx]])  # (lng, lat) = (x, y)
    owner = np.repeat(np.arange(graph.n_edges), np.diff(ptr))
    lines = shapely.linestrings(coords, indices=owner)
    lines = shapely.set_srid(lines, 4326)
    wkb = shapely.to_wkb(lines, hex=True, include_srid=True)
    name_col = np.full(graph.n_edges, None, dtype=object)
    if graph.names.size:
        named = graph.edge_name >= 0
        name_col[named] = np.asarray(graph.names, dtype=object)[graph.edge_name[named]]
    classes = np.asarray(graph.classes, dtype=object)
    return pd.DataFrame({
        "id": np.arange(graph.n_edges, dtype=np.int64),
        "source": graph.edge_src.astype(np.int64),
        "target": graph.edge_dst.astype(np.int64),
        "osm_way_id": graph.edge_way.astype(np.int64),
        "highway": classes[graph.edge_class],
        "name": name_col,
        "length_m": graph.edge_length_m.round(3),
        "speed_kmh": graph.edge_speed_kmh.astype(np.float64).round(2),
        "travel_time_s": graph.edge_time_s.round(4),
        "geom": wkb,
    }, columns=list(COLUMNS))


def copy_edges(*, session: Session, graph: RoadGraph, table: str = "road_edges") -> int:
    """COPY all edges of ``graph`` into ``table`` (which must have the ``road_edges`` columns)."""
    frame = edge_frame(graph)
    buf = io.StringIO()
    frame.to_csv(buf, index=False, header=False)
    payload = buf.getvalue().encode()
    raw = session.connection().connection.driver_connection
    assert raw is not None
    cols = ", ".join(COLUMNS)
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN WITH (FORMAT csv)") as cp:
        step = 1 << 20
        for i in range(0, len(payload), step):
            cp.write(payload[i:i + step])
    return int(frame.shape[0])


def write_edges(*, session: Session, graph: RoadGraph) -> int:
    """Replace the contents of ``road_edges`` with the edges of ``graph`` (COPY); rows written."""
    session.execute(text("DELETE FROM road_edges"))
    n = copy_edges(session=session, graph=graph)
    log.info("road_edges: %d rows written", n)
    return n


def count_edges(*, session: Session) -> int:
    return int(session.execute(text("SELECT count(*) FROM road_edges")).scalar_one())


_BBOX_SQL = text("""
WITH e AS (
    SELECT id, source, target, osm_way_id, highway, name, speed_kmh, length_m, geom,
           LEAST(source, target) AS a, GREATEST(source, target) AS b,
           round(length_m::numeric, 0) AS l
    FROM road_edges
    WHERE geom && ST_MakeEnvelope(:west, :south, :east, :north, 4326)
), d AS (
    SELECT DISTINCT ON (a, b, osm_way_id, l)
           id, highway, name, speed_kmh, length_m, geom,
           count(*) OVER (PARTITION BY a, b, osm_way_id, l) AS directions
    FROM e
    ORDER BY a, b, osm_way_id, l, id
)
SELECT id, highway, name, speed_kmh, length_m, directions, ST_AsGeoJSON(geom, 6) AS g
FROM d ORDER BY id LIMIT :limit
""")


def edges_geojson(*, session: Session, west: float, south: float, east: float, north: float,
                  limit: int = 20000) -> dict[str, Any]:
    """Road edges crossing a bounding box as a GeoJSON FeatureCollection (two-way streets once).

    Each feature has ``id`` (an edge index), ``highway``, ``name``, ``speed_kmh``, ``length_m``
    and ``oneway``; coordinates are ``[lng, lat]``.
    """
    rows = session.execute(_BBOX_SQL, {"west": west, "south": south, "east": east,
                                       "north": north, "limit": limit + 1}).all()
    features = [{
        "type": "Feature",
        "id": int(r.id),
        "geometry": json.loads(r.g),
        "properties": {"highway": r.highway, "name": r.name, "speed_kmh": float(r.speed_kmh),
                       "length_m": float(r.length_m), "oneway": int(r.directions) == 1},
    } for r in rows[:limit]]
    return {"type": "FeatureCollection", "features": features, "truncated": len(rows) > limit}
