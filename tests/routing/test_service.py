"""Road edges in PostGIS: COPY writes every edge, and the map reads them back by bounding box."""

from __future__ import annotations

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.routing.graph import RoadGraph
from geodispatch.routing.service import count_edges, edges_geojson, write_edges


def test_edges_written_with_matching_counts(db: Session, baltimore: RoadGraph) -> None:
    """write_edges stores one row per directed edge with the graph's nodes, lengths and times."""
    assert write_edges(session=db, graph=baltimore) == baltimore.n_edges
    assert count_edges(session=db) == baltimore.n_edges
    row = db.execute(text(
        "SELECT count(DISTINCT source), sum(length_m), sum(travel_time_s), "
        "sum(ST_Length(geom::geography)) FROM road_edges")).one()
    assert row[0] == len(np.unique(baltimore.edge_src))
    assert abs(row[1] - baltimore.edge_length_m.sum()) < 1.0
    assert abs(row[2] - baltimore.edge_time_s.sum()) < 1.0
    assert abs(row[3] - baltimore.edge_length_m.sum()) / baltimore.edge_length_m.sum() < 0.005


def test_write_replaces_previous_edges(db: Session, baltimore: RoadGraph) -> None:
    """A second import replaces the table instead of appending."""
    write_edges(session=db, graph=baltimore)
    write_edges(session=db, graph=baltimore)
    assert count_edges(session=db) == baltimore.n_edges


def test_edge_endpoints_match_nodes(db: Session, baltimore: RoadGraph) -> None:
    """Each stored line starts at its source node and ends at its target node."""
    write_edges(session=db, graph=baltimore)
    rows = db.execute(text(
        "SELECT source, target, ST_X(ST_StartPoint(geom)), ST_Y(ST_StartPoint(geom)), "
        "ST_X(ST_EndPoint(geom)), ST_Y(ST_EndPoint(geom)) FROM road_edges ORDER BY id LIMIT 500"
    )).all()
    for s, t, x0, y0, x1, y1 in rows:
        assert (y0, x0) == (baltimore.node_lat[s], baltimore.node_lng[s])
        assert (y1, x1) == (baltimore.node_lat[t], baltimore.node_lng[t])


def test_bbox_geojson(db: Session, baltimore: RoadGraph) -> None:
    """The bbox query returns GeoJSON lines inside the box, two-way streets once."""
    write_edges(session=db, graph=baltimore)
    lat0, lng0 = float(np.median(baltimore.node_lat)), float(np.median(baltimore.node_lng))
    fc = edges_geojson(session=db, west=lng0 - 0.005, south=lat0 - 0.005, east=lng0 + 0.005,
                       north=lat0 + 0.005)
    assert fc["type"] == "FeatureCollection" and fc["features"]
    ids = [f["id"] for f in fc["features"]]
    assert len(ids) == len(set(ids))
    two_way = [f for f in fc["features"] if not f["properties"]["oneway"]]
    assert two_way
    f = fc["features"][0]
    lng, lat = f["geometry"]["coordinates"][0]
    assert abs(lng - lng0) < 0.05 and abs(lat - lat0) < 0.05
