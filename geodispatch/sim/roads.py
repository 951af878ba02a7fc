"""Where simulated crews can drive: the real road graph (through the routing engine) or a test grid.

The simulator only needs two things from a road network: a drivable route between two points
(its geometry, length and free-flow drive time) and random points on the network, optionally near
a crew's home. :class:`RouterRoads` adapts the routing domain's ``Router``/``RoadGraph``;
:class:`GridRoads` is a synthetic Manhattan grid for unit tests and for running without a graph.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from geodispatch.geo import LatLng, haversine_m
from geodispatch.sim.motion import offset_m

if TYPE_CHECKING:
    from geodispatch.routing.engine import Router

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class Drive:
    """One drivable route: geometry in driving order, length and free-flow drive time."""

    coords: list[LatLng]
    distance_m: float
    eta_s: float

    @property
    def speed_mps(self) -> float:
        return self.distance_m / self.eta_s if self.eta_s > 0 else 0.0


class Roads(Protocol):
    """What the simulator needs from a road network."""

    def route(self, source: LatLng, target: LatLng) -> Drive | None: ...

    def random_point(
        self, rng: random.Random, near: LatLng | None = None, radius_m: float = 2000.0
    ) -> LatLng: ...

    def bbox(self) -> tuple[float, float, float, float]:
        """(min_lat, min_lng, max_lat, max_lng) of the network."""
        ...


class RouterRoads:
    """Routes and random road nodes from the routing domain's ``Router`` over a ``RoadGraph``."""

    def __init__(self, router: Router) -> None:
        self.router = router
        graph = router.graph
        self.lat = np.asarray(graph.node_lat, dtype=np.float64)
        self.lng = np.asarray(graph.node_lng, dtype=np.float64)
        # Only nodes with an outgoing and an incoming edge: a crew must be able to leave and return.
        try:
            fwd = graph.csr()
            out_deg = np.diff(fwd.indptr)
            in_deg = np.bincount(fwd.indices, minlength=len(self.lat))
            usable = np.nonzero((out_deg > 0) & (in_deg > 0))[0]
        except Exception:  # noqa: BLE001 - any graph without csr(): every node is usable
            usable = np.arange(len(self.lat))
        self.nodes = usable if len(usable) else np.arange(len(self.lat))
        self._coslat = math.cos(math.radians(float(np.mean(self.lat))))

    def _d2(self, p: LatLng) -> np.ndarray:
        dy = (self.lat[self.nodes] - p.lat) * 111_195.0
        dx = (self.lng[self.nodes] - p.lng) * 111_195.0 * self._coslat
        out: np.ndarray = dx * dx + dy * dy
        return out

    def random_point(
        self, rng: random.Random, near: LatLng | None = None, radius_m: float = 2000.0
    ) -> LatLng:
        if near is None:
            pool = self.nodes
        else:
            d2 = self._d2(near)
            pool = self.nodes[d2 <= radius_m * radius_m]
            if len(pool) == 0:  # nothing that close (a river, a park): the nearest node
                pool = self.nodes[[int(np.argmin(d2))]]
        i = int(pool[rng.randrange(len(pool))])
        return LatLng(float(self.lat[i]), float(self.lng[i]))

    def route(self, source: LatLng, target: LatLng) -> Drive | None:
        try:
            r = self.router.route(source, target)
        except Exception as exc:  # noqa: BLE001 - unreachable / off-graph: the caller picks another
            log.debug("no route %s -> %s: %s", source, target, exc)
            return None
        if r is None or not r.coords or not math.isfinite(r.eta_s):
            return None
        coords = [LatLng(float(c.lat), float(c.lng)) for c in r.coords]
        return Drive(coords=coords, distance_m=float(r.distance_m), eta_s=float(r.eta_s))

    def bbox(self) -> tuple[float, float, float, float]:
        return (float(self.lat.min()), float(self.lng.min()), float(self.lat.max()),
                float(self.lng.max()))


class GridRoads:
    """A square Manhattan grid of streets ``spacing_m`` apart driven at ``speed_kmh``.

    For tests of the simulator itself and for running it without a built graph: routes go along
    the rows first, then the columns, through every intersection on the way.
    """

    def __init__(self, center: LatLng, *, size: int = 10, spacing_m: float = 200.0,
                 speed_kmh: float = 40.0) -> None:
        self.center = center
        self.size = size
        self.spacing_m = spacing_m
        self.speed_mps = speed_kmh / 3.6
        half = (size - 1) / 2.0
        self._origin = offset_m(center, -half * spacing_m, -half * spacing_m)

    def node(self, i: int, j: int) -> LatLng:
        """Intersection of row ``i`` (south to north) and column ``j`` (west to east)."""
        return offset_m(self._origin, i * self.spacing_m, j * self.spacing_m)

    def _nearest(self, p: LatLng) -> tuple[int, int]:
        north = haversine_m(LatLng(self._origin.lat, p.lng), p) * (1 if p.lat >= self._origin.lat
                                                                   else -1)
        east = haversine_m(LatLng(p.lat, self._origin.lng), p) * (1 if p.lng >= self._origin.lng
                                                                  else -1)
        return self._clamp(north), self._clamp(east)

    def _clamp(self, metres: float) -> int:
        return min(max(int(round(metres / self.spacing_m)), 0), self.size - 1)

    def route(self, source: LatLng, target: LatLng) -> Drive | None:
        (i0, j0), (i1, j1) = self._nearest(source), self._nearest(target)
        pts = [source]
        step_j = 1 if j1 >= j0 else -1
        for j in range(j0, j1 + step_j, step_j):
            pts.append(self.node(i0, j))
        step_i = 1 if i1 >= i0 else -1
        for i in range(i0 + step_i, i1 + step_i, step_i):
            pts.append(self.node(i, j1))
        pts.append(target)
        dist = sum(haversine_m(a, b) for a, b in zip(pts, pts[1:], strict=False))
        return Drive(coords=pts, distance_m=dist, eta_s=dist / self.speed_mps)

    def random_point(
        self, rng: random.Random, near: LatLng | None = None, radius_m: float = 2000.0
    ) -> LatLng:
        if near is None:
            return self.node(rng.randrange(self.size), rng.randrange(self.size))
        i, j = self._nearest(near)
        k = max(1, int(radius_m // self.spacing_m))
        top = self.size - 1
        return self.node(rng.randint(max(0, i - k), min(top, i + k)),
                         rng.randint(max(0, j - k), min(top, j + k)))

    def bbox(self) -> tuple[float, float, float, float]:
        a, b = self.node(0, 0), self.node(self.size - 1, self.size - 1)
        return (a.lat, a.lng, b.lat, b.lng)
