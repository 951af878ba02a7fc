"""Movement along a road polyline and the GPS receiver model (noise, accuracy, coverage dropouts).

A :class:`Path` is the geometry of one drive (the coordinates a route returned) with cumulative
distances, so a simulated crew's position after ``s`` metres is an interpolation on one segment.
:class:`GpsModel` turns a true position into what a phone or tracker would report: gaussian noise
in metres, a plausible accuracy figure and occasional loss of coverage.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from geodispatch.geo import EARTH_RADIUS_M, LatLng, haversine_m


def bearing_deg(a: LatLng, b: LatLng) -> float:
    """Initial great-circle bearing from ``a`` to ``b``, degrees clockwise from north, [0, 360)."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dl = math.radians(b.lng - a.lng)
    x = math.sin(dl) * math.cos(p2)
    y = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(x, y)) % 360.0


def offset_m(p: LatLng, north_m: float, east_m: float) -> LatLng:
    """The point ``north_m`` metres north and ``east_m`` metres east of ``p`` (small offsets)."""
    dlat = math.degrees(north_m / EARTH_RADIUS_M)
    dlng = math.degrees(east_m / (EARTH_RADIUS_M * max(math.cos(math.radians(p.lat)), 1e-6)))
    return LatLng(p.lat + dlat, p.lng + dlng)


class Path:
    """A drivable polyline with cumulative lengths; positions are looked up by distance driven.

    Parameters
    ----------
    coords
        The vertices in driving order (at least one). Consecutive duplicates are dropped.
    """

    __slots__ = ("coords", "cum", "length_m")

    def __init__(self, coords: Sequence[LatLng]) -> None:
        if not coords:
            raise ValueError("a path needs at least one point")
        pts: list[LatLng] = [coords[0]]
        for c in coords[1:]:
            if c != pts[-1]:
                pts.append(c)
        self.coords = pts
        cum = [0.0]
        for a, b in zip(pts, pts[1:], strict=False):
            cum.append(cum[-1] + haversine_m(a, b))
        self.cum = cum
        self.length_m = cum[-1]

    def locate(self, s: float) -> tuple[LatLng, float | None, int]:
        """Position, heading and segment index after ``s`` metres (clamped to the path).

        Interpolating linearly in degrees is accurate to centimetres over road segments of a few
        hundred metres, which is all a simplified road graph has.
        """
        if len(self.coords) == 1:
            return self.coords[0], None, 0
        s = min(max(s, 0.0), self.length_m)
        i = min(max(bisect.bisect_right(self.cum, s) - 1, 0), len(self.coords) - 2)
        a, b = self.coords[i], self.coords[i + 1]
        seg = self.cum[i + 1] - self.cum[i]
        f = 0.0 if seg <= 0 else (s - self.cum[i]) / seg
        p = LatLng(a.lat + (b.lat - a.lat) * f, a.lng + (b.lng - a.lng) * f)
        return p, bearing_deg(a, b), i

    @property
    def end(self) -> LatLng:
        return self.coords[-1]


@dataclass(slots=True)
class GpsModel:
    """What the receiver reports: noisy position, accuracy, and coverage dropouts.

    Attributes
    ----------
    noise_m
        Standard deviation of the gaussian horizontal error, metres (per axis).
    dropout_rate_per_h
        Expected number of coverage losses per unit per hour (tunnels, dead spots).
    dropout_s
        (min, max) duration of one loss in seconds, uniform.
    """

    noise_m: float = 5.0
    dropout_rate_per_h: float = 2.0
    dropout_s: tuple[float, float] = (20.0, 90.0)

    def observe(self, true: LatLng, rng: random.Random) -> tuple[LatLng, float]:
        """A noisy fix of ``true`` and the accuracy (metres) the device would claim for it."""
        if self.noise_m <= 0:
            return true, 3.0
        p = offset_m(true, rng.gauss(0.0, self.noise_m), rng.gauss(0.0, self.noise_m))
        # Receivers report roughly the 68% radius; 1.5 sigma is close to what phones show.
        acc = max(3.0, self.noise_m * 1.5 * rng.uniform(0.8, 1.3))
        return p, acc

    def starts_dropout(self, dt_s: float, rng: random.Random) -> float:
        """Seconds of coverage loss starting in this ``dt_s`` step (0 = stays covered)."""
        if self.dropout_rate_per_h <= 0 or dt_s <= 0:
            return 0.0
        p = 1.0 - math.exp(-self.dropout_rate_per_h * dt_s / 3600.0)
        if rng.random() >= p:
            return 0.0
        return rng.uniform(*self.dropout_s)
