"""Real call patterns for the demo: the San Francisco calls-for-service file, moved onto our city.

The file has one row per responding unit; :func:`load_calls` keeps one row per call (its first
unit), with the received time, the SF call type and priority, and the location. What the demo
replays from it is real: the gaps between calls (their daily rhythm), the mix of call types and
priorities, and the spatial clustering of calls, each mapped onto the demo city:

* **time**: inter-arrival gaps, divided by a speed-up factor;
* **category**: the SF fire/EMS call type mapped onto the police-line categories
  (:data:`CATEGORY_MAP`), restricted to the categories the server actually knows;
* **priority**: SF ``E``/``1`` -> 1, ``2``/``A``/``B``/``C`` -> 2, ``3`` -> 3;
* **place**: the call's position relative to SF's bounding box (1st-99th percentile) is placed at
  the same relative position in the demo graph's bounding box, then snapped to a road node.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from geodispatch.geo import LatLng

SF_CALLS_FILE = Path("incidents") / "sf_fire_calls_for_service_2016-12-31_to_2017-01-07.csv"

# SF call type -> our categories in order of preference (the first the server knows wins).
CATEGORY_MAP: dict[str, tuple[str, ...]] = {
    "Medical Incident": ("medical_assist", "medical", "welfare_check", "other"),
    "Alarms": ("alarm", "burglary_alarm", "burglary", "other"),
    "Structure Fire": ("fire", "arson", "other"),
    "Outside Fire": ("fire", "arson", "public_order", "other"),
    "Vehicle Fire": ("fire", "vehicle_crime", "traffic_accident", "other"),
    "Traffic Collision": ("traffic_accident", "road_accident", "traffic", "other"),
    "Citizen Assist / Service Call": ("assistance", "welfare_check", "public_order", "other"),
    "Other": ("public_order", "disturbance", "other"),
    "Electrical Hazard": ("hazard", "public_order", "other"),
    "Gas Leak (Natural and LP Gases)": ("hazard", "other"),
    "Elevator / Escalator Rescue": ("assistance", "welfare_check", "other"),
    "Odor (Strange / Unknown)": ("hazard", "suspicious", "other"),
    "Water Rescue": ("missing_person", "assistance", "other"),
    "Fuel Spill": ("hazard", "traffic_accident", "other"),
    "Confined Space / Structure Collapse": ("hazard", "assistance", "other"),
    "Smoke Investigation (Outside)": ("fire", "suspicious", "other"),
    "Industrial Accidents": ("hazard", "assistance", "other"),
    "HazMat": ("hazard", "other"),
}
SF_PRIORITY = {"E": 1, "1": 1, "A": 2, "B": 2, "C": 2, "2": 2, "3": 3}


@dataclass(slots=True, frozen=True)
class SfCall:
    """One real call: when, what, how urgent, where (in San Francisco)."""

    number: str
    received_at: datetime
    call_type: str
    priority: int
    location: LatLng
    address: str


def _parse_location(text: str) -> LatLng | None:
    try:
        lat_s, lng_s = text.strip().strip("()").split(",")
        return LatLng(float(lat_s), float(lng_s))
    except ValueError:
        return None


def load_calls(path: Path) -> list[SfCall]:
    """One :class:`SfCall` per call number (first responding unit's row), by received time."""
    seen: set[str] = set()
    calls: list[SfCall] = []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            num = row["Call Number"]
            if num in seen:
                continue
            seen.add(num)
            loc = _parse_location(row.get("Location", ""))
            if loc is None:
                continue
            calls.append(SfCall(
                number=num,
                received_at=datetime.strptime(row["Received DtTm"], "%m/%d/%Y %I:%M:%S %p"),
                call_type=row["Call Type"],
                priority=SF_PRIORITY.get(row.get("Priority", "").strip(), 3),
                location=loc,
                address=row.get("Address", ""),
            ))
    calls.sort(key=lambda c: c.received_at)
    return calls


def map_category(call_type: str, known: Sequence[str] | None) -> str:
    """Our category for an SF call type; the first candidate the server knows (or the first)."""
    candidates = CATEGORY_MAP.get(call_type, ("other",))
    if not known:
        return candidates[0]
    for c in candidates:
        if c in known:
            return c
    return known[0]


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(q * (len(s) - 1))))]


class BoxMapper:
    """Moves points from the source bounding box to the same relative place in the target box.

    The source box is the 1st-99th percentile of the calls, so a few geocoding outliers do not
    squash everything else into a corner; points outside are clamped to the box.
    """

    def __init__(self, source: Sequence[LatLng], target: tuple[float, float, float, float]) -> None:
        lats = [p.lat for p in source]
        lngs = [p.lng for p in source]
        self.src = (_quantile(lats, 0.01), _quantile(lngs, 0.01),
                    _quantile(lats, 0.99), _quantile(lngs, 0.99))
        self.dst = target

    def __call__(self, p: LatLng) -> LatLng:
        s0, s1, s2, s3 = self.src
        d0, d1, d2, d3 = self.dst
        fy = min(max((p.lat - s0) / ((s2 - s0) or 1.0), 0.0), 1.0)
        fx = min(max((p.lng - s1) / ((s3 - s1) or 1.0), 0.0), 1.0)
        return LatLng(d0 + fy * (d2 - d0), d1 + fx * (d3 - d1))


def test_phone(rng: random.Random) -> str:
    """A caller phone in E.164 from the fictional 555-01xx range (never a real subscriber)."""
    return f"+1202555{rng.randrange(100, 200):04d}"


@dataclass(slots=True, frozen=True)
class PlannedCall:
    """A call to register: after ``delay_s`` from the previous one, at a demo-city point."""

    delay_s: float
    source: SfCall
    location: LatLng
    category: str
    priority: int
    phone: str


def replay(calls: Sequence[SfCall], *, speedup: float, mapper: Callable[[LatLng], LatLng],
           known_categories: Sequence[str] | None = None, rng: random.Random | None = None,
           start_index: int | None = None, max_gap_s: float = 600.0) -> Iterator[PlannedCall]:
    """Endless stream of calls with the real gaps (divided by ``speedup``), wrapping around.

    ``max_gap_s`` caps one real gap (the quiet small hours) so a demo never idles for long.
    """
    if not calls:
        return
    rng = rng or random.Random()
    i = rng.randrange(len(calls)) if start_index is None else start_index % len(calls)
    prev = calls[i].received_at
    first = True
    while True:
        call = calls[i]
        gap = 0.0 if first else max(0.0, (call.received_at - prev).total_seconds())
        if gap < 0 or gap > 86400:  # wrapped round the end of the file
            gap = 60.0
        first = False
        prev = call.received_at
        yield PlannedCall(delay_s=min(gap, max_gap_s) / max(speedup, 1e-6), source=call,
                          location=mapper(call.location),
                          category=map_category(call.call_type, known_categories),
                          priority=call.priority, phone=test_phone(rng))
        i = (i + 1) % len(calls)
        if i == 0:
            prev = calls[0].received_at
