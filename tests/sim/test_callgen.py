"""The dispatcher bot accepts the best recommendation and closes cleared incidents."""

from __future__ import annotations

import random
from typing import Any

from geodispatch.sim.callgen import ApiError, CallgenStats, DispatcherBot, ranked_units


class FakeApi:
    def __init__(self) -> None:
        self.assigned: list[tuple[int, int]] = []
        self.closed: list[tuple[int, str]] = []
        self.busy = {11}

    def recommend(self, incident_id: int) -> dict[str, Any]:
        return {"ranked": [{"unit_id": 11, "eta_s": 60.0}, {"unit_id": 12, "eta_s": 90.0}],
                "excluded": [], "straight_line_fallback": False}

    def assign(self, incident_id: int, unit_id: int) -> dict[str, Any]:
        if unit_id in self.busy:
            raise ApiError(409, "unit not available")
        self.assigned.append((incident_id, unit_id))
        return {"id": 1}

    def incidents(self, status: str) -> list[dict[str, Any]]:
        return [{"id": 5, "status": "cleared"}] if status == "cleared" else []

    def close_incident(self, incident_id: int, disposition: str) -> None:
        self.closed.append((incident_id, disposition))


def test_bot_takes_the_next_crew_when_the_first_was_taken() -> None:
    """A 409 on the top crew moves on to the second-ranked one."""
    api = FakeApi()
    stats = CallgenStats()
    bot = DispatcherBot(api, stats, rng=random.Random(1))  # type: ignore[arg-type]
    assert bot._dispatch(7, 0)
    assert api.assigned == [(7, 12)] and stats.assigned == 1 and stats.recommended == 1


def test_bot_closes_cleared_incidents_with_an_apco_code() -> None:
    """Cleared incidents are closed with a two-digit disposition code."""
    api = FakeApi()
    bot = DispatcherBot(api, CallgenStats(), rng=random.Random(1))  # type: ignore[arg-type]
    bot._close_cleared()
    assert len(api.closed) == 1 and api.closed[0][0] == 5 and len(api.closed[0][1]) == 2


def test_ranked_units_reads_the_recommendation() -> None:
    """Unit ids come out best first; malformed rows are skipped."""
    assert ranked_units({"ranked": [{"unit_id": 3}, {"x": 1}, {"unit_id": 4}]}) == [3, 4]
    assert ranked_units({}) == []
