"""Geocoding fixtures: the addresses of the shared extracts, read straight from the OSM files
(pyosmium, independent of Nominatim and of the index) as the ground truth."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import osmium
import pytest
import shapely
import shapely.affinity

from geodispatch.geo import LatLng


@dataclass(frozen=True)
class TruthAddress:
    street: str
    housenumber: str
    point: LatLng
    osm: str
    geom: shapely.Geometry  # lng/lat: the node, or the building outline

    def distance_m(self, p: LatLng) -> float:
        """Metres from ``p`` to the feature (0 inside a building), in a local plane."""
        kx = 111_320.0 * math.cos(math.radians(self.point.lat))
        ky = 110_540.0
        local = shapely.affinity.scale(self.geom, kx, ky, origin=(0, 0))
        return float(local.distance(shapely.Point(p.lng * kx, p.lat * ky)))


def read_addresses(path: Path) -> list[TruthAddress]:
    """Every node and way of ``path`` with ``addr:street`` and ``addr:housenumber``; a way's
    point is the centroid of its outline (polygon when closed)."""
    out: list[TruthAddress] = []
    fp = osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY).with_locations()
    for o in fp:
        tags = o.tags
        if "addr:street" not in tags or "addr:housenumber" not in tags:
            continue
        hn = tags["addr:housenumber"].split(";")[0].split(",")[0].strip()
        if o.is_node():
            if not o.location.valid():
                continue
            p = LatLng(o.location.lat, o.location.lon)
            geom: shapely.Geometry = shapely.Point(p.lng, p.lat)
        elif o.is_way():
            coords = [(n.lon, n.lat) for n in o.nodes if n.location.valid()]
            if len(coords) < 2:
                continue
            geom = (shapely.Polygon(coords) if len(coords) >= 4 and coords[0] == coords[-1]
                    else shapely.LineString(coords))
            c = geom.centroid
            p = LatLng(c.y, c.x)
        else:
            continue
        out.append(TruthAddress(tags["addr:street"], hn, p, f"{o.type_str()}{o.id}", geom))
    return out


def sample(items: list[TruthAddress], n: int, seed: int = 17) -> list[TruthAddress]:
    rng = random.Random(seed)
    return items if len(items) <= n else rng.sample(items, n)


@pytest.fixture(scope="session")
def osm_dir(data_dir: Path) -> Path:
    return data_dir / "osm"
