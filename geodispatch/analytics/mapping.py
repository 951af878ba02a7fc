"""Column mappings: one small TOML file says how one agency's calls-for-service export maps
onto our calls, crews and assignments.

A mapping names the source column of each field, the format and time zone of the timestamps,
how the location is written and how categories and priorities translate. The shipped ones live
in ``geodispatch/analytics/mappings/`` and are addressed by their stem (``sf``, ``seattle``,
``new_orleans``); any other path is read as a file. Format (every key but the ``[columns]``
call id, ``[times] received`` and ``[location]`` is optional)::

    name = "San Francisco Fire Department: Calls for Service"
    region = "SF"                      # default region code of the imported calls
    rows = "per_unit"                  # one row per responding unit, or "per_call"
    timezone = "America/Los_Angeles"   # IANA zone of wall-clock timestamps
    null_values = ["NULL"]             # cell values that mean "no value", besides empty

    [columns]
    call_id = "Call Number"            # the source's id of the call (idempotency key)
    unit_id = "Unit ID"                # per_unit only
    unit_type = "Unit Type"
    unit_sequence = "Unit sequence in call dispatch"
    address = "Address"
    disposition = "Call Final Disposition"

    [times]
    format = "%m/%d/%Y %I:%M:%S %p"    # strftime, or "ISO8601"; [times.formats] per column
    received = "Received DtTm"         # required; entered, dispatched, en_route, on_scene,
    dispatched = "Dispatch DtTm"       # cleared are optional

    [location]
    kind = "latlon_text"               # "(lat, lon)" text; or "wkt_point" (POINT (lon lat)),
    column = "Location"                # or "columns" with lat = "..." and lon = "...", or
                                       # "address" (geocoded on import with the address index;
                                       # an address it cannot place to a street or better is a
                                       # rejected row, counted with its reason)

    [category]
    column = "Call Type"
    map = { "Medical Incident" = "medical_assist" }   # onto the classification; unmapped
                                                      # values are kept as they are and counted
    [priority]
    column = "Priority"
    take = 1                            # compare only the first N characters ("2A" -> "2")
    map = { "3" = 1, "2" = 2 }
    default = 3

    [units]
    kinds = { ENGINE = "patrol_car" }   # unit type -> crew kind (default patrol_car)
    capability_prefix = "sf"            # the unit type is kept as capability "<prefix>:<type>"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from geodispatch.errors import InvalidInput

MAPPINGS_DIR = Path(__file__).with_name("mappings")
TIME_FIELDS = ("received", "entered", "dispatched", "en_route", "on_scene", "cleared")
"""The timestamps of a call, in the order a call lives through them."""
LOCATION_KINDS = ("columns", "latlon_text", "wkt_point", "address")
CREW_KINDS = ("patrol_car", "rapid_response", "supervisor_car", "traffic")


@dataclass(frozen=True)
class CallMapping:
    """One export format, as read from its TOML file (see the module docstring)."""

    name: str
    region: str
    per_unit: bool
    timezone: str
    call_id: str
    times: dict[str, str]
    time_formats: dict[str, str]
    location_kind: str
    location_columns: tuple[str, ...]
    unit_id: str | None = None
    unit_type: str | None = None
    unit_sequence: str | None = None
    address: str | None = None
    disposition: str | None = None
    category: str | None = None
    category_map: dict[str, str] = field(default_factory=dict)
    priority: str | None = None
    priority_take: int | None = None
    priority_map: dict[str, int] = field(default_factory=dict)
    priority_default: int = 3
    unit_kinds: dict[str, str] = field(default_factory=dict)
    capability_prefix: str = "unit"
    null_values: tuple[str, ...] = ()
    source: Path | None = None

    def required_columns(self) -> list[str]:
        """Every source column the mapping reads (all must be in the file's header)."""
        cols = [self.call_id, *self.times.values(), *self.location_columns]
        cols += [c for c in (self.unit_id, self.unit_type, self.unit_sequence, self.address,
                             self.disposition, self.category, self.priority) if c]
        return list(dict.fromkeys(cols))


def builtin_mappings() -> dict[str, Path]:
    """The shipped mappings by name (file stem)."""
    return {p.stem: p for p in sorted(MAPPINGS_DIR.glob("*.toml"))}


def _str(raw: dict[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    value = raw.get(key)
    if value is None:
        if required:
            raise InvalidInput(f"{where}: {key} is required")
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{where}: {key} must be a non-empty string, not {value!r}")
    return value


def _table(raw: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: [{key}] must be a table")
    return value


def parse_mapping(raw: dict[str, Any], *, where: str = "mapping") -> CallMapping:
    """Validate a mapping read from TOML; every mistake is one :class:`InvalidInput` line."""
    known = {"name", "region", "rows", "timezone", "null_values", "source", "columns", "times",
             "location", "category", "priority", "units"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InvalidInput(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    rows = raw.get("rows", "per_call")
    if rows not in ("per_call", "per_unit"):
        raise InvalidInput(f"{where}: rows must be 'per_call' or 'per_unit', not {rows!r}")
    tz = _str(raw, "timezone", where) or "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"{where}: unknown time zone {tz!r}") from None
    cols = _table(raw, "columns", where)
    call_id = _str(cols, "call_id", f"{where} [columns]", required=True)
    assert call_id is not None
    unit_id = _str(cols, "unit_id", f"{where} [columns]")
    if rows == "per_unit" and unit_id is None:
        raise InvalidInput(f"{where}: rows = 'per_unit' needs [columns] unit_id")

    times_raw = dict(_table(raw, "times", where))
    default_fmt = times_raw.pop("format", "ISO8601")
    formats_raw = times_raw.pop("formats", {})
    if not isinstance(default_fmt, str) or not isinstance(formats_raw, dict):
        raise InvalidInput(f"{where} [times]: format must be a string, formats a table")
    bad = sorted(set(times_raw) - set(TIME_FIELDS))
    if bad:
        raise InvalidInput(f"{where} [times]: unknown fields {bad}; known: {list(TIME_FIELDS)}")
    times = {k: v for k in TIME_FIELDS
             if (v := _str(times_raw, k, f"{where} [times]", required=k == "received"))}
    bad = sorted(set(formats_raw) - set(times))
    if bad:
        raise InvalidInput(f"{where} [times.formats]: {bad} are not mapped time fields")
    time_formats = {k: str(formats_raw.get(k, default_fmt)) for k in times}

    loc = _table(raw, "location", where)
    kind = loc.get("kind")
    if kind not in LOCATION_KINDS:
        raise InvalidInput(f"{where} [location]: kind must be one of {list(LOCATION_KINDS)}, "
                           f"not {kind!r}")
    if kind == "columns":
        lat = _str(loc, "lat", f"{where} [location]", required=True)
        lon = _str(loc, "lon", f"{where} [location]", required=True)
        loc_cols: tuple[str, ...] = (str(lat), str(lon))
    else:
        loc_cols = (str(_str(loc, "column", f"{where} [location]", required=True)),)

    cat = _table(raw, "category", where)
    cat_map = _table(cat, "map", f"{where} [category]")
    pri = _table(raw, "priority", where)
    pri_map_raw = _table(pri, "map", f"{where} [priority]")
    try:
        pri_map = {str(k): int(v) for k, v in pri_map_raw.items()}
        pri_default = int(pri.get("default", 3))
        take = None if pri.get("take") is None else int(pri["take"])
    except (TypeError, ValueError):
        raise InvalidInput(f"{where} [priority]: map values, default and take are integers"
                           ) from None
    if any(not 1 <= p <= 4 for p in [*pri_map.values(), pri_default]):
        raise InvalidInput(f"{where} [priority]: priorities are 1 (most urgent) to 4")
    units = _table(raw, "units", where)
    kinds = {str(k).upper(): str(v) for k, v in _table(units, "kinds", f"{where} [units]").items()}
    bad = sorted(set(kinds.values()) - set(CREW_KINDS))
    if bad:
        raise InvalidInput(f"{where} [units]: unknown crew kinds {bad}; known: {list(CREW_KINDS)}")
    nulls = raw.get("null_values", [])
    if not isinstance(nulls, list):
        raise InvalidInput(f"{where}: null_values must be a list of strings")
    region = _str(raw, "region", where) or "IMP"
    if len(region) > 8:
        raise InvalidInput(f"{where}: region {region!r} is longer than 8 characters")
    return CallMapping(
        name=_str(raw, "name", where) or where, region=region, per_unit=rows == "per_unit",
        timezone=tz, call_id=call_id, times=times, time_formats=time_formats,
        location_kind=str(kind), location_columns=loc_cols,
        unit_id=unit_id,
        unit_type=_str(cols, "unit_type", where), unit_sequence=_str(cols, "unit_sequence", where),
        address=_str(cols, "address", where), disposition=_str(cols, "disposition", where),
        category=_str(cat, "column", f"{where} [category]"),
        category_map={str(k): str(v) for k, v in cat_map.items()},
        priority=_str(pri, "column", f"{where} [priority]"), priority_take=take,
        priority_map=pri_map, priority_default=pri_default, unit_kinds=kinds,
        capability_prefix=str(units.get("capability_prefix", "unit")),
        null_values=tuple(str(v) for v in nulls),
    )


def load_mapping(name_or_path: str | Path) -> CallMapping:
    """A shipped mapping by name (``sf``), or a mapping file by path."""
    builtin = builtin_mappings()
    path = builtin.get(str(name_or_path)) or Path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"mapping {name_or_path} not found (neither a file nor one of the "
                           f"shipped mappings {sorted(builtin)})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"mapping {path} is not readable: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"mapping {path} is not valid TOML: {exc}") from None
    mapping = parse_mapping(raw, where=str(path))
    return replace(mapping, source=path)
