"""A synthetic city-scale road graph for benchmarks (no real city extract of that size ships here).

The city is a perturbed grid, built through the same way-folding assembler as a real import:

* ``rows x cols`` junctions ``spacing_m`` apart around ``centre``, each moved by a random offset of
  up to ~25 m so blocks are not identical;
* every row and column is an OSM-like way: every 10th is a ``primary`` arterial (two-way), every
  30th a ``trunk`` with ``maxspeed=70``, every 5th a ``tertiary``, the rest ``residential``;
* 40 % of residential streets are one-way, alternating direction street by street (one-way grids
  as in old city centres), and arterial rows 20, 60, 100... form one-way couplets;
* ``drop`` (default 8 %) of residential blocks are missing (dead ends, parks, rail lines),
  which makes detours;
* only the largest strongly connected component is kept, as for a real import.

With the defaults (330 x 330) that is about 108,000 nodes and 335,000 directed edges.
:func:`write_osm` writes the same ways as an ``.osm``/``.osm.pbf`` file, so importers can be timed
on it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import osmium

from geodispatch.geo import LatLng
from geodispatch.routing.graph import RoadGraph
from geodispatch.routing.importer import WayBatch, build_graph
from geodispatch.routing.speeds import load_speed_table

KYIV = LatLng(50.4501, 30.5234)


def _street_tags(i: int, rng: np.random.Generator, vertical: bool) -> dict[str, str]:
    if i % 30 == 0:
        return {"highway": "trunk", "maxspeed": "70"}
    if i % 10 == 0:
        tags = {"highway": "primary"}
        if not vertical and i % 40 == 20:
            tags["oneway"] = "yes" if (i // 40) % 2 == 0 else "-1"
        return tags
    if i % 5 == 0:
        return {"highway": "tertiary"}
    tags = {"highway": "residential"}
    if rng.random() < 0.4:
        tags["oneway"] = "yes" if i % 2 == 0 else "-1"
    return tags


Way = tuple[int, dict[str, str], list[tuple[int, float, float]]]


def synthetic_ways(rows: int = 330, cols: int = 330, *, spacing_m: float = 110.0,
                   centre: LatLng = KYIV, drop: float = 0.08, seed: int = 7) -> list[Way]:
    """The city's ways as ``(way id, tags, [(node id, lat, lng), ...])`` (parameters as below)."""
    rng = np.random.default_rng(seed)
    dlat = spacing_m / 111_320.0
    dlng = spacing_m / (111_320.0 * math.cos(math.radians(centre.lat)))
    jitter = rng.uniform(-0.22, 0.22, size=(rows, cols, 2))
    lat = centre.lat + (np.arange(rows)[:, None] - rows / 2 + jitter[..., 0]) * dlat
    lng = centre.lng + (np.arange(cols)[None, :] - cols / 2 + jitter[..., 1]) * dlng
    lat_l, lng_l = lat.tolist(), lng.tolist()
    ways: list[Way] = []

    def add_line(cells: list[tuple[int, int]], tags: dict[str, str]) -> None:
        piece: list[tuple[int, float, float]] = []
        local = tags["highway"] == "residential"
        for j, (r, c) in enumerate(cells):
            piece.append((r * cols + c + 1, lat_l[r][c], lng_l[r][c]))
            if local and j + 1 < len(cells) and rng.random() < drop:
                if len(piece) > 1:
                    ways.append((len(ways) + 1, tags, piece))
                piece = []
        if len(piece) > 1:
            ways.append((len(ways) + 1, tags, piece))

    for r in range(rows):
        add_line([(r, c) for c in range(cols)], _street_tags(r, rng, vertical=False))
    for c in range(cols):
        add_line([(r, c) for r in range(rows)], _street_tags(c, rng, vertical=True))
    return ways


def synthetic_city(rows: int = 330, cols: int = 330, *, spacing_m: float = 110.0,
                   centre: LatLng = KYIV, drop: float = 0.08, seed: int = 7) -> RoadGraph:
    """Generate the perturbed-grid city described in the module docstring.

    Parameters
    ----------
    rows, cols
        Junctions per column and per row.
    spacing_m
        Block length in metres.
    centre
        Where the grid is centred (default: Kyiv).
    drop
        Share of residential blocks removed.
    seed
        Random seed (the same seed gives the same city).

    Returns
    -------
    RoadGraph
    """
    table = load_speed_table(None)
    batch = WayBatch()
    for way_id, tags, refs in synthetic_ways(rows, cols, spacing_m=spacing_m, centre=centre,
                                             drop=drop, seed=seed):
        batch.add_way(way_id, tags, refs, table)
    return build_graph(batch, meta={"source": f"synthetic perturbed grid {rows}x{cols}, "
                                              f"{spacing_m:.0f} m blocks, seed {seed}"})


def write_osm(ways: list[Way], path: Path) -> Path:
    """Write ways (and their nodes, sorted by id) as an OSM file; the suffix picks the format."""
    nodes: dict[int, tuple[float, float]] = {}
    for _, _, refs in ways:
        for node_id, la, ln in refs:
            nodes[node_id] = (la, ln)
    path.unlink(missing_ok=True)
    writer = osmium.SimpleWriter(str(path))
    try:
        for node_id in sorted(nodes):
            la, ln = nodes[node_id]
            writer.add_node(osmium.osm.mutable.Node(id=node_id, location=(ln, la), version=1))
        for way_id, tags, refs in ways:
            writer.add_way(osmium.osm.mutable.Way(id=way_id, nodes=[r[0] for r in refs],
                                                  tags=tags, version=1))
    finally:
        writer.close()
    return path
