"""The call generator replays the real SF calls: timing, categories, priorities, places."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import phonenumbers

from geodispatch.geo import LatLng
from geodispatch.sim.calls import SF_CALLS_FILE, BoxMapper, load_calls, map_category, replay


def test_one_call_per_call_number(data_dir: Path) -> None:
    """7,704 unit rows collapse to the 3,560 calls, in received order, all with a place."""
    calls = load_calls(data_dir / SF_CALLS_FILE)
    assert len(calls) == 3560
    assert all(a.received_at <= b.received_at for a, b in zip(calls, calls[1:], strict=False))
    assert {c.priority for c in calls} <= {1, 2, 3}
    assert abs(calls[0].location.lat - 37.77) < 0.2


def test_replay_keeps_real_gaps_divided_by_speedup(data_dir: Path) -> None:
    """Consecutive planned delays are the real inter-arrival gaps / speed-up."""
    calls = load_calls(data_dir / SF_CALLS_FILE)
    mapper = BoxMapper([c.location for c in calls], (39.27, -76.64, 39.31, -76.57))
    planned = list(itertools.islice(
        replay(calls, speedup=10.0, mapper=mapper, rng=random.Random(1), start_index=100,
               max_gap_s=1e9), 20))
    for k in range(1, 20):
        real = (calls[100 + k].received_at - calls[99 + k].received_at).total_seconds()
        assert abs(planned[k].delay_s - real / 10.0) < 1e-6
    for p in planned:
        assert 39.27 <= p.location.lat <= 39.31 and -76.64 <= p.location.lng <= -76.57
        assert phonenumbers.is_valid_number(phonenumbers.parse(p.phone))


def test_box_mapping_keeps_relative_position() -> None:
    """A point at the middle of the source box lands in the middle of the target box."""
    src = [LatLng(37.70 + i * 0.001, -122.50 + i * 0.001) for i in range(101)]
    m = BoxMapper(src, (50.0, 30.0, 51.0, 31.0))
    mid = m(LatLng(37.75, -122.45))
    assert abs(mid.lat - 50.5) < 0.02 and abs(mid.lng - 30.5) < 0.02


def test_category_follows_the_server_list() -> None:
    """The SF type maps to the first candidate the server knows, else its first category."""
    assert map_category("Traffic Collision", None) == "traffic_accident"
    assert map_category("Traffic Collision", ["theft", "traffic"]) == "traffic"
    assert map_category("Medical Incident", ["theft", "burglary"]) == "theft"
