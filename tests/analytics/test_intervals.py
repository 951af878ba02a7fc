"""Interval definitions on hand-built incidents (received, registered, crews' steps)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import h3
import numpy as np
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from geodispatch.analytics.intervals import refresh_intervals
from geodispatch.analytics.models import ResponseInterval, ResponseSketch
from geodispatch.analytics.sketch import ALPHA, N_BUCKETS, bucket_of, quantiles
from tests.analytics.factories import KYIV, make_assignment, make_incident

T0 = datetime(2031, 3, 4, 7, 30, tzinfo=UTC)  # a Tuesday; 09:30 in Kyiv (EET, UTC+2)


def _row(db: Session, incident_id: int) -> ResponseInterval:
    return db.execute(
        select(ResponseInterval).where(ResponseInterval.incident_id == incident_id)
    ).scalar_one()


def test_two_crews_first_arriving_defines_turnout_and_travel(db: Session) -> None:
    """Queue ends at the first dispatch; turnout/travel are the first-arriving crew's."""
    inc = make_incident(db, received=T0, registered_after_s=40)
    make_assignment(db, inc, dispatched_after_s=100, en_route_after_s=160, on_scene_after_s=900,
                    cleared_after_s=1500)
    make_assignment(db, inc, dispatched_after_s=130, en_route_after_s=150, on_scene_after_s=520,
                    cleared_after_s=2000)
    assert refresh_intervals(session=db, since=T0, tz="Europe/Kyiv") >= 1
    r = _row(db, inc.id)
    assert r.registration_s == 40
    assert r.queue_s == 60
    assert r.call_processing_s == 100
    assert r.turnout_s == 20  # second crew arrived first: 130 -> 150
    assert r.travel_s == 370  # 150 -> 520
    assert r.total_response_s == 520
    assert r.on_scene_s == 2000 - 520  # first on scene -> last cleared
    assert r.crews == 2
    assert (r.hour, r.dow) == (9, 1)


def test_travel_from_dispatch_when_en_route_missing(db: Session) -> None:
    """A crew that never reported en route travels from its dispatch time."""
    inc = make_incident(db, received=T0)
    make_assignment(db, inc, dispatched_after_s=60, on_scene_after_s=400)
    refresh_intervals(session=db, since=T0)
    r = _row(db, inc.id)
    assert r.turnout_s is None
    assert r.travel_s == 340
    assert r.total_response_s == 400
    assert r.on_scene_s is None


def test_no_crew_leaves_crew_intervals_null(db: Session) -> None:
    """An incident still waiting in the queue has only its registration interval."""
    inc = make_incident(db, received=T0, status="queued")
    refresh_intervals(session=db, since=T0)
    r = _row(db, inc.id)
    assert r.registration_s == 30
    assert (r.queue_s, r.turnout_s, r.travel_s, r.total_response_s, r.crews) == (
        None, None, None, None, 0)


def test_h3_cells_and_refresh_is_idempotent(db: Session) -> None:
    """Cells at res 7/8/9 match h3-py; a second refresh updates instead of duplicating."""
    inc = make_incident(db, received=T0)
    make_assignment(db, inc, dispatched_after_s=10, on_scene_after_s=300)
    refresh_intervals(session=db, since=T0)
    refresh_intervals(session=db, since=T0)
    r = _row(db, inc.id)
    for res in (7, 8, 9):
        assert getattr(r, f"h3_{res}") == h3.str_to_int(KYIV.h3_cell(res))
    n = db.execute(
        text("SELECT count(*) FROM response_intervals WHERE incident_id = :i"), {"i": inc.id}
    ).scalar_one()
    assert n == 1


def test_sketches_hold_every_total_of_the_day_and_month(db: Session) -> None:
    """The day row and the month row of a cell hold one count per response, in their buckets;
    an incident that closes later (a live one) moves its day's and month's sketches."""
    for total in (700, 300, 500):
        inc = make_incident(db, received=T0, region="TC")
        make_assignment(db, inc, dispatched_after_s=10, on_scene_after_s=total)
    late = make_incident(db, received=T0, region="TC")
    refresh_intervals(session=db, since=T0)
    cell = h3.str_to_int(KYIV.h3_cell(8))

    def rows() -> dict[str, tuple[int, int, list[int]]]:
        got = db.execute(select(ResponseSketch).where(
            ResponseSketch.dim == 8, ResponseSketch.region == "TC", ResponseSketch.key == cell,
            ResponseSketch.iv == 0)).scalars().all()
        return {r.span: (r.incidents, r.n, np.frombuffer(r.sketch, "<i8").tolist())
                for r in got}

    want = [int(b) for b in bucket_of(np.array([300.0, 500.0, 700.0]))]
    by_span = rows()
    assert set(by_span) == {"d", "m"}
    for span in ("d", "m"):
        incidents, n, sk = by_span[span]
        assert (incidents, n) == (4, 3)
        assert [x >> 32 for x in sk] == want and [x & 0xFFFFFFFF for x in sk] == [1, 1, 1]
    make_assignment(db, late, dispatched_after_s=10, on_scene_after_s=500)
    refresh_intervals(session=db, since=T0 + timedelta(seconds=400))
    incidents, n, sk = rows()["m"]
    assert (incidents, n) == (4, 4)
    assert [x & 0xFFFFFFFF for x in sk] == [1, 2, 1]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sketch_quantiles_are_within_the_error_bound(seed: int) -> None:
    """Median and p90 read from a sketch are within ALPHA of numpy's (percentile_cont's)."""
    rng = np.random.default_rng(seed)
    for size in (1, 2, 7, 100, 5000):
        v = np.round(rng.lognormal(6.0, 0.6, size), 3)
        hist = np.bincount(bucket_of(v), minlength=N_BUCKETS).astype(float)[None, :]
        med, p90 = quantiles(hist, (0.5, 0.9))
        for got, q in ((med[0], 0.5), (p90[0], 0.9)):
            exact = float(np.quantile(v, q))
            assert abs(got - exact) <= ALPHA * exact * (1 + 1e-9), (size, q, got, exact)


def test_since_picks_up_old_incidents_with_new_crew_steps(db: Session) -> None:
    """An incident received before ``since`` is refreshed when a crew step happens after it."""
    inc = make_incident(db, received=T0)
    refresh_intervals(session=db, since=T0)
    assert _row(db, inc.id).total_response_s is None
    make_assignment(db, inc, dispatched_after_s=3600, on_scene_after_s=4000)
    refresh_intervals(session=db, since=T0 + timedelta(minutes=30))
    assert _row(db, inc.id).total_response_s == 4000


def test_merged_incidents_and_clock_errors(db: Session) -> None:
    """Merged duplicates leave the analytics; negative spans are stored as NULL."""
    inc = make_incident(db, received=T0, registered_after_s=-5)
    make_assignment(db, inc, dispatched_after_s=60, on_scene_after_s=30)
    refresh_intervals(session=db, since=T0)
    r = _row(db, inc.id)
    assert (r.registration_s, r.travel_s) == (None, None)
    assert r.total_response_s == 30
    inc.status = "merged"
    refresh_intervals(session=db, since=T0)
    gone = db.execute(
        text("SELECT count(*) FROM response_intervals WHERE incident_id = :i"), {"i": inc.id}
    ).scalar_one()
    assert gone == 0


def test_an_incident_without_a_place_waits_for_it(db: Session) -> None:
    """A call whose location is still unknown has no interval row (no cell to put it in) and
    does not stop the refresh; once placed on the map it gets one."""
    placed = make_incident(db, received=T0)
    unplaced = make_incident(db, received=T0)
    db.execute(text("UPDATE incidents SET location = NULL, h3 = NULL WHERE id = :i"),
               {"i": unplaced.id})
    refresh_intervals(session=db, since=T0)
    assert _row(db, placed.id).registration_s == 30
    assert db.get(ResponseInterval, unplaced.id) is None
    db.execute(text("UPDATE incidents SET location = ST_SetSRID(ST_MakePoint(30.52, 50.45), "
                    "4326) WHERE id = :i"), {"i": unplaced.id})
    refresh_intervals(session=db, since=T0)
    assert _row(db, unplaced.id).h3_9 is not None
