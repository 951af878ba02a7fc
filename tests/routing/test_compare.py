"""Straight line against road on a real city: the nearest-looking crew is not always the fastest."""

from __future__ import annotations

import math
from collections.abc import Callable

from geodispatch.routing.compare import straight_line_misses, summarize
from geodispatch.routing.engine import Router
from geodispatch.routing.graph import RoadGraph
from tests.routing.conftest import random_points


def test_straight_line_choice_loses_time(load_graph: Callable[[str], RoadGraph]) -> None:
    """In Porto (one-way centre, the Douro) the straight-line pick is sometimes slower."""
    g = load_graph("porto_centre_2020.osm.pbf")
    router = Router(g)
    crews = list(enumerate(random_points(g, 12, seed=21)))
    incidents = random_points(g, 60, seed=22)
    misses = straight_line_misses(router, incidents, crews)
    assert misses, "expected at least one incident where straight-line dispatch is wrong"
    for m in misses:
        assert m.straight_m <= m.fastest_straight_m  # it did look nearest...
        assert m.lost_s > 0.5  # ...and is slower by road
    worst = max(m.lost_s for m in misses if math.isfinite(m.lost_s))
    assert worst > 30
    summary = summarize(misses, len(incidents))
    assert 0 < summary["share"] < 1 and summary["lost_s_max"] == round(worst, 1)
