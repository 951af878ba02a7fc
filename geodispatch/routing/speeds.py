"""Speeds: which OSM roads a patrol car drives, how fast, and how that changes with the hour.

Three documented tables live here.

**Drivable classes** (:data:`HIGHWAY_CLASSES`): the ``highway=*`` values kept by the importer. Ways
with ``area=yes``, ``access=no|private`` (unless ``emergency``/``motor_vehicle``/``motorcar`` says
otherwise), ``motor_vehicle=no``/``motorcar=no`` and the service roads ``parking_aisle``,
``driveway``, ``parking`` and ``drive-through`` are dropped. Alleys and ``emergency_access`` service
roads are kept on purpose: a police car may use them.

**Urban emergency-driving speeds** (:data:`DEFAULT_SPEEDS_KMH`), used when a way has no usable
``maxspeed``. They are average speeds a patrol car with lights on sustains in a city, lower than the
legal limit on fast roads (junctions, traffic) and a little higher on small streets:

================  ======  ==============================================
class             km/h    note
================  ======  ==============================================
motorway          90      urban ring roads and motorways
motorway_link     50
trunk             70
trunk_link        45
primary           50      main avenues
primary_link      40
secondary         45
secondary_link    35
tertiary          40
tertiary_link     30
unclassified      30
residential       30
living_street     15
service           15
road              25      unknown class
================  ======  ==============================================

Override any of them with a JSON file ``{"residential": 25, ...}`` named by
``GEODISPATCH_SPEED_TABLE_FILE``. A tagged ``maxspeed`` (``50``, ``30 mph``, ``RU:urban``,
``walk``...; the lowest of ``50;30``; ``maxspeed:forward``/``:backward`` per direction) wins over
the table.

**Time-of-day factors** (:data:`DEFAULT_TIME_FACTORS`), applied only when
``GEODISPATCH_RUSH_HOUR_FACTORS`` is on: a speed multiplier per road group (``major`` =
motorway/trunk/primary/secondary and their links, ``minor`` = everything else) for a local-time
window. Defaults (local time of ``GEODISPATCH_ROUTING_TIMEZONE``):

===========  ===========  =====  =====
days         hours        major  minor
===========  ===========  =====  =====
Mon-Fri      07:00-10:00  0.60   0.80
Mon-Fri      10:00-16:00  0.85   0.95
Mon-Fri      16:00-20:00  0.60   0.80
Sat-Sun      11:00-20:00  0.85   0.95
every day    22:00-06:00  1.10   1.05
===========  ===========  =====  =====

Hours not covered run at factor 1. The first matching rule wins. Replace the table with a JSON
file (same shape as :data:`DEFAULT_TIME_FACTORS`) named by ``GEODISPATCH_SPEED_FACTORS_FILE``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from geodispatch.errors import ConfigurationError

HIGHWAY_CLASSES: tuple[str, ...] = (
    "motorway",
    "motorway_link",
    "trunk",
    "trunk_link",
    "primary",
    "primary_link",
    "secondary",
    "secondary_link",
    "tertiary",
    "tertiary_link",
    "unclassified",
    "residential",
    "living_street",
    "service",
    "road",
)
"""Drivable ``highway`` values, in a fixed order (the graph stores the index)."""

CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(HIGHWAY_CLASSES)}

MAJOR_CLASSES = frozenset(
    {"motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link",
     "secondary", "secondary_link"}
)

DEFAULT_SPEEDS_KMH: dict[str, float] = {
    "motorway": 90.0,
    "motorway_link": 50.0,
    "trunk": 70.0,
    "trunk_link": 45.0,
    "primary": 50.0,
    "primary_link": 40.0,
    "secondary": 45.0,
    "secondary_link": 35.0,
    "tertiary": 40.0,
    "tertiary_link": 30.0,
    "unclassified": 30.0,
    "residential": 30.0,
    "living_street": 15.0,
    "service": 15.0,
    "road": 25.0,
}

EXCLUDED_SERVICE = frozenset({"parking_aisle", "driveway", "parking", "drive-through"})
_NO = frozenset({"no", "private"})
_YES = frozenset({"yes", "designated", "permissive", "official"})

# Implicit limits written as "<country>:<zone>"; the zone decides, except where a country differs.
ZONE_SPEEDS_KMH: dict[str, float] = {
    "urban": 50.0,
    "rural": 90.0,
    "trunk": 90.0,
    "motorway": 120.0,
    "living_street": 20.0,
    "walk": 7.0,
    "bicycle_road": 30.0,
    "zone30": 30.0,
    "zone:30": 30.0,
}
COUNTRY_ZONE_SPEEDS_KMH: dict[str, float] = {
    "RU:urban": 60.0,
    "RU:motorway": 110.0,
    "UA:urban": 50.0,
    "UA:rural": 90.0,
    "UA:motorway": 130.0,
    "DE:motorway": 130.0,
    "AT:motorway": 130.0,
    "AT:rural": 100.0,
    "DE:rural": 100.0,
    "PT:rural": 90.0,
    "US:urban": 40.0,
}
_MPH = 1.609344
_KNOT = 1.852
_NUM_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(mph|km/h|kmh|kph|knots)?\s*$")


def load_speed_table(path: Path | None) -> dict[str, float]:
    """The default per-class table, updated from a JSON file ``{class: km/h}`` when given."""
    table = dict(DEFAULT_SPEEDS_KMH)
    if path is None:
        return table
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"speed table {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"speed table {path}: expected a JSON object {{class: km/h}}")
    for key, value in data.items():
        if key not in CLASS_INDEX:
            raise ConfigurationError(
                f"speed table {path}: unknown class {key!r} (known: {', '.join(HIGHWAY_CLASSES)})"
            )
        if not isinstance(value, int | float) or not 0 < float(value) <= 200:
            raise ConfigurationError(f"speed table {path}: {key} must be a speed in km/h")
        table[key] = float(value)
    return table


def parse_maxspeed(value: str | None) -> float | None:
    """A ``maxspeed`` tag in km/h, or None when it says nothing usable.

    Parameters
    ----------
    value
        The raw tag: ``"50"``, ``"30 mph"``, ``"RU:urban"``, ``"walk"``, ``"50;30"`` (lowest wins),
        ``"none"``/``"signals"``/``"variable"`` (no number: None).

    Returns
    -------
    float or None
        Speed in km/h, between 1 and 200.
    """
    if not value:
        return None
    best: float | None = None
    for part in value.replace(",", ";").split(";"):
        part = part.strip()
        speed: float | None = None
        m = _NUM_RE.match(part)
        if m:
            speed = float(m.group(1))
            unit = m.group(2)
            if unit == "mph":
                speed *= _MPH
            elif unit == "knots":
                speed *= _KNOT
        elif part in COUNTRY_ZONE_SPEEDS_KMH:
            speed = COUNTRY_ZONE_SPEEDS_KMH[part]
        elif ":" in part:
            speed = ZONE_SPEEDS_KMH.get(part.split(":", 1)[1])
        elif part in ZONE_SPEEDS_KMH:
            speed = ZONE_SPEEDS_KMH[part]
        if speed is not None and 1.0 <= speed <= 200.0:
            best = speed if best is None else min(best, speed)
    return best


def is_drivable(tags: Mapping[str, str]) -> bool:
    """True for a way a patrol car may use (see the module docstring for the rules)."""
    highway = tags.get("highway")
    if highway not in CLASS_INDEX:
        return False
    if tags.get("area") == "yes":
        return False
    if highway == "service" and tags.get("service") in EXCLUDED_SERVICE:
        return False
    allowed = any(tags.get(k) in _YES for k in ("emergency", "motor_vehicle", "motorcar"))
    if tags.get("motor_vehicle") in _NO or tags.get("motorcar") in _NO:
        return tags.get("emergency") in _YES
    return not (tags.get("access") in _NO and not allowed)


def oneway_direction(tags: Mapping[str, str]) -> int:
    """Direction of travel allowed on a way: 1 along it, -1 against it, 0 both.

    ``oneway=yes|true|1`` is 1, ``oneway=-1|reverse`` is -1, ``oneway=no|false|0`` and the
    time-dependent ``reversible``/``alternating`` are 0 (the car may find it open either way);
    without a ``oneway`` tag roundabouts (``junction=roundabout|circular``) and ``highway=motorway``
    are one-way along the way.
    """
    value = (tags.get("oneway") or "").strip().lower()
    if value in ("yes", "true", "1"):
        return 1
    if value in ("-1", "reverse"):
        return -1
    if value in ("no", "false", "0", "reversible", "alternating"):
        return 0
    if tags.get("junction") in ("roundabout", "circular"):
        return 1
    if tags.get("highway") == "motorway":
        return 1
    return 0


def way_speeds(tags: Mapping[str, str], table: Mapping[str, float]) -> tuple[float, float, bool]:
    """Forward and backward speed (km/h) of a way, and whether a ``maxspeed`` tag decided it."""
    default = table.get(tags.get("highway", "road"), table["road"])
    both = parse_maxspeed(tags.get("maxspeed"))
    fwd = parse_maxspeed(tags.get("maxspeed:forward")) or both
    bwd = parse_maxspeed(tags.get("maxspeed:backward")) or both
    tagged = fwd is not None or bwd is not None
    return (fwd or default), (bwd or default), tagged


# --- time of day ---------------------------------------------------------------------------------

DEFAULT_TIME_FACTORS: dict[str, Any] = {
    "rules": [
        {"days": "mon-fri", "from": "07:00", "to": "10:00", "major": 0.60, "minor": 0.80},
        {"days": "mon-fri", "from": "10:00", "to": "16:00", "major": 0.85, "minor": 0.95},
        {"days": "mon-fri", "from": "16:00", "to": "20:00", "major": 0.60, "minor": 0.80},
        {"days": "sat-sun", "from": "11:00", "to": "20:00", "major": 0.85, "minor": 0.95},
        {"days": "mon-sun", "from": "22:00", "to": "06:00", "major": 1.10, "minor": 1.05},
    ]
}
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _parse_days(spec: str) -> frozenset[int]:
    days: set[int] = set()
    for part in spec.lower().split(","):
        part = part.strip()
        if "-" in part:
            a, b = (_DAYS.index(x.strip()) for x in part.split("-", 1))
            i = a
            while True:
                days.add(i)
                if i == b:
                    break
                i = (i + 1) % 7
        else:
            days.add(_DAYS.index(part))
    return frozenset(days)


@dataclass(frozen=True)
class TimeRule:
    """Speed multipliers for the ``major`` and ``minor`` road groups inside a weekly window."""

    days: frozenset[int]
    start: time
    end: time
    major: float
    minor: float

    def matches(self, local: datetime) -> bool:
        t = local.time()
        if self.start <= self.end:
            return local.weekday() in self.days and self.start <= t < self.end
        # A window across midnight belongs to the day it starts on.
        if t >= self.start:
            return local.weekday() in self.days
        return t < self.end and (local.weekday() - 1) % 7 in self.days


@dataclass(frozen=True)
class TimeFactors:
    """The time-of-day table: the first rule matching the local time gives the speed factors."""

    rules: tuple[TimeRule, ...]
    tz: ZoneInfo

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], tz: str) -> TimeFactors:
        try:
            rules = tuple(
                TimeRule(
                    days=_parse_days(str(r.get("days", "mon-sun"))),
                    start=time.fromisoformat(str(r["from"])),
                    end=time.fromisoformat(str(r["to"])),
                    major=float(r["major"]),
                    minor=float(r["minor"]),
                )
                for r in data["rules"]
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"time-of-day speed factors: {exc!r}") from None
        for r in rules:
            if not (0.05 <= r.major <= 5 and 0.05 <= r.minor <= 5):
                raise ConfigurationError("time-of-day speed factors must lie between 0.05 and 5")
        return cls(rules=rules, tz=ZoneInfo(tz))

    @classmethod
    def load(cls, path: Path | None, tz: str) -> TimeFactors:
        """The documented default table, or the JSON file at ``path``."""
        if path is None:
            return cls.from_dict(DEFAULT_TIME_FACTORS, tz)
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"speed factors {path}: {exc}") from None
        return cls.from_dict(data, tz)

    def factors(self, at: datetime) -> tuple[float, float]:
        """(major, minor) speed multipliers at ``at`` (naive = already local time)."""
        local = at.astimezone(self.tz) if at.tzinfo is not None else at
        for rule in self.rules:
            if rule.matches(local):
                return rule.major, rule.minor
        return 1.0, 1.0

    def class_factors(self, at: datetime, classes: Sequence[str]) -> tuple[float, ...]:
        """Speed multiplier for each class name in ``classes`` at ``at``."""
        major, minor = self.factors(at)
        return tuple(major if c in MAJOR_CLASSES else minor for c in classes)


def kmh_to_mps(kmh: float) -> float:
    return kmh / 3.6


def travel_time_s(length_m: float, speed_kmh: float) -> float:
    return length_m / kmh_to_mps(speed_kmh) if speed_kmh > 0 else math.inf
