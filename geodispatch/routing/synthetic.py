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

With the defaults (330 x 330) that is about 108,000 nodes and 400,000 directed edges.
"""

from __future__ import annotations

import math

import numpy as np

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


def synthetic_city(rows: int = 330, cols: int = 330, *, spacing_m: float = 110.0,
                   centre: LatLng = KYIV, drop: float = 0.08,
                   seed: int = 7) -> RoadGraph:
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
    rng = np.random.default_rng(seed)
    dlat = spacing_m / 111_320.0
    dlng = spacing_m / (111_320.0 * math.cos(math.radians(centre.lat)))
    jitter = rng.uniform(-0.22, 0.22, size=(rows, cols, 2))
    lat = centre.lat + (np.arange(rows)[:, None] - rows / 2 + jitter[..., 0]) * dlat
    lng = centre.lng + (np.arange(cols)[None, :] - cols / 2 + jitter[..., 1]) * dlng
    lat_l, lng_l = lat.tolist(), lng.tolist()
    table = load_speed_table(None)
    batch = WayBatch()
    way_id = 1

    def add_line(cells: list[tuple[int, int]], tags: dict[str, str]) -> None:
        nonlocal way_id
        piece: list[tuple[int, float, float]] = []
        local = tags["highway"] == "residential"
        for j, (r, c) in enumerate(cells):
            piece.append((r * cols + c + 1, lat_l[r][c], lng_l[r][c]))
            if local and j + 1 < len(cells) and rng.random() < drop:
                batch.add_way(way_id, tags, piece, table)
                way_id += 1
                piece = []
        batch.add_way(way_id, tags, piece, table)
        way_id += 1

    for r in range(rows):
        add_line([(r, c) for c in range(cols)], _street_tags(r, rng, vertical=False))
    for c in range(cols):
        add_line([(r, c) for r in range(rows)], _street_tags(c, rng, vertical=True))
    return build_graph(batch, meta={"source": f"synthetic perturbed grid {rows}x{cols}, "
                                              f"{spacing_m:.0f} m blocks, seed {seed}"})
