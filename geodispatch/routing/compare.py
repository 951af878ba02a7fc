"""Straight line against road: where sending the crew that *looks* nearest costs time.

Road distance in a city is on average 1.2-1.35x the straight-line distance, with large outliers
(rivers, rail lines, one-way systems). :func:`straight_line_misses` finds, for a set of incidents
and crews, every incident where the crew nearest as the crow flies is not the fastest by road,
and how many seconds that choice would lose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geodispatch.geo import LatLng
from geodispatch.routing.engine import Router
from geodispatch.routing.graph import haversine_arrays


@dataclass(frozen=True)
class StraightLineMiss:
    """One incident where the straight-line choice is not the fastest crew."""

    incident: LatLng
    straight_unit: int
    straight_m: float
    straight_eta_s: float  # inf when that crew cannot reach the incident by road
    fastest_unit: int
    fastest_eta_s: float
    fastest_straight_m: float

    @property
    def lost_s(self) -> float:
        """Seconds lost by sending the straight-line nearest crew."""
        return self.straight_eta_s - self.fastest_eta_s


def straight_line_misses(router: Router, incidents: Sequence[LatLng],
                         crews: Sequence[tuple[int, LatLng]], *, limit_s: float = 3600.0
                         ) -> list[StraightLineMiss]:
    """Incidents where the straight-line nearest crew is not the fastest by road.

    Parameters
    ----------
    router
        The drive-time engine.
    incidents
        Incident positions.
    crews
        ``(unit_id, position)`` of the available crews.
    limit_s
        Search bound; a straight-line choice that cannot arrive within it counts as infinite.

    Returns
    -------
    list of StraightLineMiss
        One entry per incident where the choices differ (ties within 0.5 s are not misses),
        in the order of ``incidents``.
    """
    if not crews:
        return []
    ids = np.array([c[0] for c in crews], dtype=np.int64)
    clat = np.array([c[1].lat for c in crews], dtype=np.float64)
    clng = np.array([c[1].lng for c in crews], dtype=np.float64)
    out: list[StraightLineMiss] = []
    for p in incidents:
        straight = haversine_arrays(np.full_like(clat, p.lat), np.full_like(clng, p.lng),
                                    clat, clng)
        nearest = int(np.argmin(straight))
        ranked = router.rank(p, crews, k=None, limit_s=limit_s)
        if not ranked:
            continue
        best = ranked[0]
        etas = {c.unit_id: c.eta_s for c in ranked}
        chosen_eta = etas.get(int(ids[nearest]), float("inf"))
        if chosen_eta - best.eta_s <= 0.5:
            continue
        out.append(StraightLineMiss(
            incident=p,
            straight_unit=int(ids[nearest]),
            straight_m=float(straight[nearest]),
            straight_eta_s=chosen_eta,
            fastest_unit=best.unit_id,
            fastest_eta_s=best.eta_s,
            fastest_straight_m=float(straight[int(np.flatnonzero(ids == best.unit_id)[0])]),
        ))
    return out


def summarize(misses: Sequence[StraightLineMiss], n_incidents: int) -> dict[str, Any]:
    """Share of incidents affected and the seconds lost (median, 90th percentile, worst)."""
    lost = np.array([m.lost_s for m in misses if np.isfinite(m.lost_s)], dtype=np.float64)
    return {
        "incidents": n_incidents,
        "misses": len(misses),
        "share": round(len(misses) / n_incidents, 4) if n_incidents else 0.0,
        "unreachable_choices": sum(1 for m in misses if not np.isfinite(m.lost_s)),
        "lost_s_median": round(float(np.median(lost)), 1) if lost.size else 0.0,
        "lost_s_p90": round(float(np.percentile(lost, 90)), 1) if lost.size else 0.0,
        "lost_s_max": round(float(lost.max()), 1) if lost.size else 0.0,
    }
