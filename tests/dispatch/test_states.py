"""The dispatch state machine on its own: no database, no side effects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from geodispatch.dispatch.states import (
    CREW_STATUSES,
    TRANSITIONS,
    apply_to_assignment,
    check_transition,
    incident_status,
    is_late,
)
from geodispatch.errors import Conflict

T0 = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


@dataclass
class _Assignment:
    status: str = "dispatched"
    en_route_at: datetime | None = None
    on_scene_at: datetime | None = None
    cleared_at: datetime | None = None


def test_every_transition_names_known_statuses() -> None:
    assert set(TRANSITIONS) == set(CREW_STATUSES)
    for targets in TRANSITIONS.values():
        assert targets <= set(CREW_STATUSES)


def test_forbidden_transition_names_the_crew_and_both_statuses() -> None:
    check_transition("K-12", "en_route", "on_scene")
    with pytest.raises(Conflict, match=r"K-12: off_duty -> on_scene"):
        check_transition("K-12", "off_duty", "on_scene")


@pytest.mark.parametrize(("statuses", "expected"), [
    ((), "queued"),
    (("cleared",), "cleared"),
    (("cleared", "dispatched"), "assigned"),
    (("acknowledged",), "assigned"),
    (("dispatched", "en_route"), "en_route"),
    (("en_route", "on_scene", "cleared"), "on_scene"),
    (("cancelled",), "queued"),
])
def test_incident_status_follows_its_most_advanced_crew(statuses: tuple[str, ...],
                                                        expected: str) -> None:
    assert incident_status(set(statuses)) == expected


def test_a_status_before_the_last_one_or_the_dispatch_is_late() -> None:
    assert not is_late(T0, last_applied=None, dispatched_at=None)
    assert is_late(T0, last_applied=T0 + timedelta(seconds=1), dispatched_at=None)
    assert is_late(T0, last_applied=None, dispatched_at=T0 + timedelta(seconds=1))
    assert not is_late(T0, last_applied=T0, dispatched_at=T0)


def test_the_first_times_stay_when_a_status_repeats() -> None:
    a = _Assignment()
    apply_to_assignment(a, "en_route", T0)
    apply_to_assignment(a, "en_route", T0 + timedelta(minutes=1))
    assert a.status == "en_route" and a.en_route_at == T0
    apply_to_assignment(a, "on_scene", T0 + timedelta(minutes=5))
    apply_to_assignment(a, "on_scene", T0 + timedelta(minutes=6))
    assert a.on_scene_at == T0 + timedelta(minutes=5)
    apply_to_assignment(a, "break", T0 + timedelta(minutes=30))
    assert a.status == "cleared" and a.cleared_at == T0 + timedelta(minutes=30)
