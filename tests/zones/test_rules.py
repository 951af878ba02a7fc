"""The zone rule: own-zone crews first unless an outside crew is faster by both thresholds."""

from __future__ import annotations

import pytest

from geodispatch.settings import Settings
from geodispatch.zones.rules import (
    CROSS_BORDER_FASTER,
    IN_ZONE,
    NO_CREW_IN_ZONE,
    OUT_OF_ZONE,
    apply_zone_rule,
)


def _order(result: list) -> list[tuple[int, str]]:
    return [(r.unit_id, r.reason) for r in result]


def test_in_zone_preferred_when_outsider_only_slightly_faster() -> None:
    """300 s outside vs 400 s inside: 300 >= 0.7 x 400, so the own crew stays first."""
    out = apply_zone_rule([(1, 400.0, True), (2, 300.0, False)], factor=0.7, min_gain_s=60)
    assert _order(out) == [(1, IN_ZONE), (2, OUT_OF_ZONE)]


def test_outsider_wins_when_much_faster() -> None:
    """200 s outside vs 400 s inside: below 0.7 x 400 and 200 s saved: the border is crossed."""
    out = apply_zone_rule([(1, 400.0, True), (2, 200.0, False), (3, 500.0, False)],
                          factor=0.7, min_gain_s=60)
    assert _order(out) == [(2, CROSS_BORDER_FASTER), (1, IN_ZONE), (3, OUT_OF_ZONE)]


def test_minimum_gain_blocks_short_trips() -> None:
    """60 s vs 100 s passes the factor but saves only 40 s (< 60 s): no crossing."""
    out = apply_zone_rule([(1, 100.0, True), (2, 60.0, False)], factor=0.7, min_gain_s=60)
    assert out[0].unit_id == 1


@pytest.mark.parametrize(
    ("eta_out", "crosses"),
    [(279.0, True), (280.0, False), (340.0, False)],
)
def test_factor_threshold_is_strict(eta_out: float, crosses: bool) -> None:
    """The factor bound is strict: exactly 0.7 x 400 = 280 s does not cross."""
    out = apply_zone_rule([(1, 400.0, True), (2, eta_out, False)], factor=0.7, min_gain_s=60)
    assert (out[0].unit_id == 2) is crosses


def test_gain_threshold_is_inclusive() -> None:
    """Saving exactly min_gain_s is enough."""
    out = apply_zone_rule([(1, 200.0, True), (2, 140.0, False)], factor=0.8, min_gain_s=60)
    assert out[0].reason == CROSS_BORDER_FASTER


def test_no_in_zone_crew_orders_by_eta() -> None:
    """Without an own-zone crew, everyone is ordered by ETA (infinite last, ties by id)."""
    out = apply_zone_rule([(5, float("inf"), False), (4, 90.0, False), (3, 90.0, False)])
    assert _order(out) == [(3, NO_CREW_IN_ZONE), (4, NO_CREW_IN_ZONE), (5, NO_CREW_IN_ZONE)]


def test_defaults_follow_settings() -> None:
    """Omitted thresholds are the settings' defaults (0.7, 60 s)."""
    s = Settings()
    ranked = [(1, 400.0, True), (2, 0.7 * 400.0 - 1, False)]
    assert apply_zone_rule(ranked) == apply_zone_rule(
        ranked, factor=s.cross_border_factor, min_gain_s=s.cross_border_min_gain_s
    )
    assert apply_zone_rule(ranked)[0].reason == CROSS_BORDER_FASTER


def test_invalid_thresholds_rejected() -> None:
    """Out-of-range thresholds are refused."""
    with pytest.raises(ValueError):
        apply_zone_rule([], factor=1.5)
    with pytest.raises(ValueError):
        apply_zone_rule([], min_gain_s=-1)
