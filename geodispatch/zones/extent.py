"""The extent of an OSM extract, for generating zones where there are no official boundaries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import osmium

DRIVABLE = frozenset(
    {
        "motorway", "trunk", "primary", "secondary", "tertiary", "unclassified", "residential",
        "motorway_link", "trunk_link", "primary_link", "secondary_link", "tertiary_link",
        "living_street", "service",
    }
)


def osm_road_extent(path: Path) -> tuple[float, float, float, float]:
    """Bounding box ``(min_lat, min_lng, max_lat, max_lng)`` of the drivable roads in an extract.

    Uses pyosmium directly (any format it reads: ``.pbf``, ``.osm``, ``.osm.gz``, ``.osm.bz2``);
    only nodes of drivable ``highway`` ways count, so stray far-away nodes of boundary relations
    do not blow up the extent.
    """
    lats: list[float] = []
    lngs: list[float] = []
    fp = osmium.FileProcessor(str(path)).with_locations()
    for obj in fp:
        if isinstance(obj, osmium.osm.Way) and obj.tags.get("highway") in DRIVABLE:
            for n in obj.nodes:
                if n.location.valid():
                    lats.append(n.location.lat)
                    lngs.append(n.location.lon)
    if not lats:
        raise ValueError(f"{path}: no drivable roads found")
    la, ln = np.asarray(lats), np.asarray(lngs)
    return float(la.min()), float(ln.min()), float(la.max()), float(ln.max())
