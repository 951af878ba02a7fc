"""The zone rule of the recommender: keep crews in their own zone unless an outsider is much faster.

Patrol crews know their own sector and district, and a crew that leaves its zone leaves it
uncovered, so a centre prefers its own crews. But a crew on the other side of a border that is
clearly closer by road should win: the rule below says how much closer is "clearly".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from geodispatch.settings import Settings

#: Defaults equal to the settings' defaults (``cross_border_factor``, ``cross_border_min_gain_s``).
DEFAULT_FACTOR: float = float(Settings.model_fields["cross_border_factor"].default)
DEFAULT_MIN_GAIN_S: float = float(Settings.model_fields["cross_border_min_gain_s"].default)

IN_ZONE = "in_zone"
CROSS_BORDER_FASTER = "cross_border_faster"
OUT_OF_ZONE = "out_of_zone"
NO_CREW_IN_ZONE = "no_crew_in_zone"


class ZoneRanked(NamedTuple):
    """One crew after the zone rule; ``reason`` explains its place (one of the constants above)."""

    unit_id: int
    eta_s: float
    in_zone: bool
    reason: str


def apply_zone_rule(
    ranked: Sequence[tuple[int, float, bool]],
    *,
    factor: float = DEFAULT_FACTOR,
    min_gain_s: float = DEFAULT_MIN_GAIN_S,
) -> list[ZoneRanked]:
    """Order crews: own-zone crews first, unless an outside crew is much faster.

    Parameters
    ----------
    ranked : sequence of (unit_id, eta_s, in_zone)
        Candidate crews with their road ETA to the incident in seconds and whether they belong to
        the incident's zone (the recommender decides what "belongs" means: home sector, or current
        position inside the incident's sector/district). Any order; non-finite ETAs sort last.
    factor : float
        ``settings.cross_border_factor``. An outside crew wins only if
        ``eta_out < factor * best_in_zone_eta`` ...
    min_gain_s : float
        ``settings.cross_border_min_gain_s``. ... and ``best_in_zone_eta - eta_out >= min_gain_s``.
        Both conditions are needed: the factor alone would move crews across borders for a
        few seconds' gain on short trips, the gain alone would on long trips.

    Returns
    -------
    list of ZoneRanked
        First the outside crews that beat the best in-zone crew by both margins
        (``cross_border_faster``), then the in-zone crews (``in_zone``), then the other outside
        crews (``out_of_zone``); each group by ETA, ties by unit id. When no crew is in the zone,
        every crew is ordered by ETA with reason ``no_crew_in_zone``.

    Examples
    --------
    >>> apply_zone_rule([(1, 600.0, True), (2, 300.0, False), (3, 500.0, False)])[0]
    ZoneRanked(unit_id=2, eta_s=300.0, in_zone=False, reason='cross_border_faster')
    """
    if not 0.0 < factor <= 1.0:
        raise ValueError("factor must be in (0, 1]")
    if min_gain_s < 0:
        raise ValueError("min_gain_s must be >= 0")
    items = sorted(
        ((int(u), float(e), bool(z)) for u, e, z in ranked),
        key=lambda t: (t[1] if t[1] == t[1] else float("inf"), t[0]),
    )
    inside = [t for t in items if t[2]]
    if not inside:
        return [ZoneRanked(u, e, z, NO_CREW_IN_ZONE) for u, e, z in items]
    best_in = inside[0][1]
    faster: list[ZoneRanked] = []
    others: list[ZoneRanked] = []
    for u, e, z in items:
        if z:
            continue
        if e < factor * best_in and best_in - e >= min_gain_s:
            faster.append(ZoneRanked(u, e, z, CROSS_BORDER_FASTER))
        else:
            others.append(ZoneRanked(u, e, z, OUT_OF_ZONE))
    return faster + [ZoneRanked(u, e, z, IN_ZONE) for u, e, z in inside] + others
