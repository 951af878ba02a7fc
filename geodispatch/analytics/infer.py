"""Propose a column mapping for an unknown calls-for-service export (``import calls --infer``).

Reads the header and a sample of rows and decides, each with a stated reason:

* which columns hold *times* (every sampled value parses in one of :data:`TIME_FORMATS`, and it
  carries a time of day, not only a date) and which call step each is (by its name:
  "received", "queued", "create" ... "available", "closed"; the earliest-on-average time when no
  name says "received");
* where the *location* is: a "(lat, lon)" text column, a WKT ``POINT (lon lat)`` column, or a
  pair of numeric latitude/longitude columns (values in range, names saying so);
* the *call id* (a name saying call/event/item number), whether rows are *per unit* (the call id
  repeats and a unit id column exists), the *category*, *priority*, address and disposition;
* the *time zone*, guessed from where the calls are (a few known areas), since a file of
  wall-clock times cannot say it.

Whatever it could not decide is listed in :attr:`Proposal.notes`; a required field it could not
decide is left commented out in the TOML, which then does not load until the analyst fills it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from geodispatch.analytics.mapping import TIME_FIELDS
from geodispatch.analytics.reader import read_header
from geodispatch.errors import InvalidInput

SAMPLE_ROWS = 5000
TIME_FORMATS = (
    "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M",
    "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d/%m/%Y %H:%M:%S", "ISO8601",
)
"""Candidate timestamp formats, tried in this order (US month-first before day-first)."""

#: Name fragments (lower case, letters only) that say which call step a time column is.
TIME_ROLE_WORDS = {
    "received": ("received", "receive", "queued", "create", "callreceived", "opened",
                 "reported", "calltime", "incidentdate"),
    "entered": ("entry", "entered"),
    "dispatched": ("dispatch", "assigned"),
    "en_route": ("response", "enroute", "responding"),
    "on_scene": ("onscene", "atscene", "arrive", "arrival"),
    "cleared": ("available", "cleared", "clear", "closed", "close", "inservice", "completed"),
}
#: Call categories of the shipped classification guessed from words in a source category.
CATEGORY_WORDS = (
    ("armed_threat", ("weapon", "gun", "firearm", "shoot", "shots", "armed person")),
    ("robbery", ("robbery",)),
    ("domestic_violence", ("domestic", "dv -")),
    ("assault", ("assault", "battery", "fight")),
    ("burglary", ("burglary",)),
    ("alarm", ("alarm",)),
    ("fire", ("fire",)),
    ("medical_assist", ("medical", "overdose", "ems")),
    ("traffic_accident", ("traffic collision", "accident", "collision", "hit & run")),
    ("hazard", ("hazard", "gas leak", "spill", "hazmat", "odor", "smoke", "electrical")),
    ("missing_person", ("missing",)),
    ("theft", ("theft", "shoplift", "stolen", "larceny")),
    ("disturbance", ("disturbance", "noise")),
    ("welfare_check", ("welfare", "crisis", "mental")),
    ("public_order", ("suspicious", "trespass", "prowler")),
    ("assistance", ("assist", "rescue", "service call")),
)
#: Areas whose wall-clock zone is known: (zone, lat min, lat max, lng min, lng max).
ZONE_AREAS = (
    ("America/Los_Angeles", 32.0, 49.5, -125.0, -114.5),
    ("America/Denver", 31.0, 49.5, -114.5, -102.0),
    ("America/Chicago", 25.0, 49.5, -102.0, -87.5),
    ("America/New_York", 24.0, 47.5, -87.5, -66.0),
    ("Europe/Kyiv", 44.0, 52.5, 22.0, 40.5),
    ("Europe/London", 49.8, 59.0, -8.5, 1.8),
    ("Europe/Lisbon", 36.9, 42.2, -9.6, -6.1),
    ("Europe/Berlin", 47.2, 55.1, 5.8, 15.1),
)
_LATLON = re.compile(r"^\(\s*[-+]?\d+(\.\d+)?\s*,\s*[-+]?\d+(\.\d+)?\s*\)$")
_WKT = re.compile(r"^POINT\s*\(\s*[-+]?\d", re.IGNORECASE)


@dataclass
class Proposal:
    """A proposed mapping: the TOML text, the decisions taken and what was left undecided."""

    toml: str
    notes: list[str] = field(default_factory=list)
    complete: bool = True


def _key(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


def _share(values: pd.Series, mask: pd.Series | np.ndarray) -> float:
    return float(np.mean(mask)) if len(values) else 0.0


def time_format(values: pd.Series) -> tuple[str, list[str]] | None:
    """The first of :data:`TIME_FORMATS` that parses >= 90 % of ``values`` (each with a time of
    day), and the sampled values it does not parse (to be rejected, or listed as nulls)."""
    vals = values.dropna().str.strip()
    vals = vals[vals.ne("")]
    if len(vals) == 0 or vals.str.contains(r"\d{1,2}:\d{2}", regex=True).mean() < 0.9:
        return None
    for fmt in TIME_FORMATS:
        parsed = pd.to_datetime(vals, format=fmt, errors="coerce")
        if parsed.notna().mean() >= 0.9:
            return fmt, sorted(set(vals[parsed.isna()].tolist()))
    return None


def _latlng_pair(df: pd.DataFrame) -> tuple[str, str] | None:
    lat_names = [c for c in df.columns if _key(c) in ("lat", "latitude", "y", "latdd")
                 or _key(c).endswith("latitude")]
    lng_names = [c for c in df.columns if _key(c) in ("lon", "lng", "long", "longitude", "x")
                 or _key(c).endswith("longitude")]

    def in_range(col: str, bound: float) -> bool:
        v = pd.to_numeric(df[col], errors="coerce").dropna()
        return len(v) > 0 and bool((v.abs() <= bound).mean() > 0.95) and bool(
            (v != 0).mean() > 0.5)

    lats = [c for c in lat_names if in_range(c, 90)]
    lngs = [c for c in lng_names if in_range(c, 180)]
    return (lats[0], lngs[0]) if lats and lngs else None


def _best(columns: list[str], scores: dict[str, int]) -> str | None:
    ranked = sorted(((s, -i, c) for i, c in enumerate(columns) if (s := scores.get(c, 0)) > 0),
                    reverse=True)
    return ranked[0][2] if ranked else None


def _score(name: str, words: dict[str, int]) -> int:
    k = name.lower()
    return sum(w for word, w in words.items() if word in k)


def _guess_category(value: str) -> str | None:
    v = value.lower()
    for code, words in CATEGORY_WORDS:
        if any(w in v for w in words):
            return code
    return None


def _zone(lat: float, lng: float) -> str | None:
    for zone, la0, la1, ln0, ln1 in ZONE_AREAS:
        if la0 <= lat <= la1 and ln0 <= lng <= ln1:
            return zone
    return None


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def infer_mapping(path: Path, *, sample_rows: int = SAMPLE_ROWS) -> Proposal:
    """Propose a mapping for ``path`` from its header and its first ``sample_rows`` rows.

    Raises
    ------
    InvalidInput
        The file is not a readable CSV with a header and at least one row.
    """
    header = read_header(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""],
                         nrows=sample_rows, encoding="utf-8-sig")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from None
    if df.empty:
        raise InvalidInput(f"{path} has a header but no rows to learn from")
    df.columns = header[:len(df.columns)]
    notes: list[str] = []
    missing: list[str] = []

    # Times.
    found = {c: f for c in df.columns if (f := time_format(df[c])) is not None}
    formats = {c: f[0] for c, f in found.items()}
    null_values: set[str] = set()
    for col, (fmt, bad) in found.items():
        sentinels = [v for v in bad if "1900" in v or "0001" in v]
        null_values.update(sentinels)
        rest = [v for v in bad if v not in sentinels]
        if sentinels:
            notes.append(f"{col!r}: {sentinels[:3]} read as 'no value' (null_values)")
        if rest:
            notes.append(f"{col!r}: {len(rest)} sampled values are not in {fmt!r} (e.g. "
                         f"{rest[0]!r}); those rows will be rejected")
    roles: dict[str, str] = {}
    for col in formats:
        k = _key(col)
        role = next((r for r, words in TIME_ROLE_WORDS.items() if any(w in k for w in words)),
                    None)
        if role is None:
            notes.append(f"time column {col!r} is none of the call steps: left out")
        elif role in roles:
            notes.append(f"time column {col!r} also looks like {role}; took {roles[role]!r}")
        else:
            roles[role] = col
    if "received" not in roles and formats:
        free = [c for c in formats if c not in roles.values()] or list(formats)
        means = {c: pd.to_datetime(df[c], format=formats[c], errors="coerce").mean()
                 for c in free}
        earliest = min(means, key=lambda c: means[c])
        roles["received"] = earliest
        notes.append(f"no column is named like 'received': took the earliest time, {earliest!r}"
                     " - check")
    if "received" not in roles:
        missing.append("[times] received")
        notes.append("could not find a received time: no column holds date-times in a known "
                     "format")
    main_fmt = formats[roles["received"]] if "received" in roles else "ISO8601"
    for role in TIME_FIELDS:
        if role not in roles and role != "received":
            notes.append(f"no {role} time found (optional)")

    # Location.
    location: list[str] = []
    lat = lng = None
    for col in df.columns:
        vals = df[col].dropna().str.strip()
        if len(vals) == 0:
            continue
        if _share(vals, vals.str.match(_LATLON)) > 0.9:
            location = ['kind = "latlon_text"', f"column = {_q(col)}"]
            parts = vals.str.extract(r"\(([-\d.]+),\s*([-\d.]+)\)").astype(float)
            lat, lng = float(parts[0].median()), float(parts[1].median())
            break
        if _share(vals, vals.str.match(_WKT)) > 0.9:
            location = ['kind = "wkt_point"', f"column = {_q(col)}"]
            parts = vals.str.extract(r"\(\s*([-\d.eE+]+)\s+([-\d.eE+]+)").astype(float)
            lng, lat = float(parts[0].median()), float(parts[1].median())
            break
    if not location and (pair := _latlng_pair(df)) is not None:
        location = ['kind = "columns"', f"lat = {_q(pair[0])}", f"lon = {_q(pair[1])}"]
        lat = float(pd.to_numeric(df[pair[0]], errors="coerce").median())
        lng = float(pd.to_numeric(df[pair[1]], errors="coerce").median())
    if not location:
        missing.append("[location]")
        notes.append("could not find the location: no '(lat, lon)' text, WKT POINT or "
                     "latitude/longitude column pair")

    # Time zone.
    zone = _zone(lat, lng) if lat is not None and lng is not None else None
    if zone is None:
        notes.append("could not tell the time zone of the wall-clock times: set timezone "
                     "(written UTC)")
    else:
        notes.append(f"time zone {zone} guessed from where the calls are "
                     f"({lat:.3f}, {lng:.3f}) - check")

    # Identity: call id and unit.
    cols = list(df.columns)
    call_id = _best(cols, {c: _score(c, {"call": 3, "event": 2, "item": 2, "incident": 1,
                                         "number": 2, "id": 1, "no": 1, "type": -9, "date": -9,
                                         "time": -9, "unit": -9, "row": -3})
                           for c in cols if c not in formats})
    if call_id is None:
        missing.append("[columns] call_id")
        notes.append("could not find the call id column")
    unit_id = _best(cols, {c: _score(c, {"unit": 3, "id": 2, "type": -9, "sequence": -9,
                                         "time": -9, "count": -9})
                           for c in cols if c not in formats and c != call_id})
    per_unit = False
    if call_id is not None and unit_id is not None:
        dup = df[call_id].duplicated().mean()
        per_unit = bool(dup > 0.02)
        notes.append(f"{100 * dup:.0f} % of sampled call ids repeat: "
                     + ("rows are per responding unit" if per_unit else "rows are per call"))
    unit_type = _best(cols, {c: 5 for c in cols if "unit type" in c.lower()}) if per_unit else None
    unit_seq = _best(cols, {c: 5 for c in cols if "sequence" in c.lower()}) if per_unit else None

    # Category, priority, address, disposition.
    def text_cols() -> list[str]:
        return [c for c in cols if c not in formats and c not in (call_id, unit_id)]

    cat_scores = {c: _score(c, {"final call type": 6, "typetext": 6, "type text": 6,
                                "call type": 5, "category": 5, "nature": 4, "type": 2,
                                "initial": -1, "group": -1, "unit": -9, "code": -1})
                  for c in text_cols() if df[c].nunique() > 1}
    category = _best(text_cols(), cat_scores)
    if category is None:
        notes.append("could not find a category column: every call is imported as 'unknown'")
    pri_scores = {c: _score(c, {"priority": 5, "original": -2, "initial": -2, "final": -1})
                  for c in text_cols()}
    priority = _best(text_cols(), pri_scores)
    address = _best(text_cols(), {c: _score(c, {"address": 3, "block": 2, "location": -5})
                                  for c in text_cols()})
    disposition = _best(text_cols(), {c: _score(c, {"disposition": 3, "clearance": 2,
                                                    "text": 1, "description": 1, "final": 1})
                                      for c in text_cols()})

    lines = [f"# Proposed by `geodispatch import calls {path.name} --infer` from the header and "
             f"{len(df):,} sampled rows.", "# Check every line, edit, save, then: "
             f"geodispatch import calls {path.name} --mapping THIS.toml",
             f"name = {_q(path.stem)}", 'region = "IMP"',
             f'rows = "{"per_unit" if per_unit else "per_call"}"',
             f"timezone = {_q(zone or 'UTC')}"]
    if null_values:
        lines.append(f"null_values = [{', '.join(_q(v) for v in sorted(null_values))}]")
    lines += ["", "[columns]"]
    lines.append(f"call_id = {_q(call_id)}" if call_id else '# call_id = ""  # REQUIRED')
    for key, col in (("unit_id", unit_id if per_unit else None), ("unit_type", unit_type),
                     ("unit_sequence", unit_seq), ("address", address),
                     ("disposition", disposition)):
        if col:
            lines.append(f"{key} = {_q(col)}")
    lines += ["", "[times]", f"format = {_q(main_fmt)}"]
    for role in TIME_FIELDS:
        if role in roles:
            lines.append(f"{role} = {_q(roles[role])}")
    if "received" not in roles:
        lines.append('# received = ""  # REQUIRED')
    others = {r: formats[c] for r, c in roles.items() if formats[c] != main_fmt}
    if others:
        lines += ["", "[times.formats]", *(f"{r} = {_q(f)}" for r, f in others.items())]
    lines += ["", "[location]", *(location or ['# kind = ""  # REQUIRED: columns, latlon_text '
                                               "or wkt_point"])]
    if category:
        lines += ["", "[category]", f"column = {_q(category)}", "", "[category.map]"]
        counts = df[category].dropna().str.strip().value_counts()
        unmapped = []
        for value in counts.index[:200]:
            code = _guess_category(str(value))
            if code:
                lines.append(f"{_q(str(value)[:48])} = {_q(code)}")
            else:
                unmapped.append(str(value))
        if unmapped:
            notes.append(f"{len(unmapped)} sampled category values have no guess and stay as "
                         f"they are: {', '.join(repr(u) for u in unmapped[:6])}"
                         + (" ..." if len(unmapped) > 6 else ""))
    if priority:
        values = sorted(df[priority].dropna().str.strip().unique().tolist())
        take = 1 if values and all(re.fullmatch(r"\d[A-Za-z]+", v) for v in values) else None
        keys = sorted({v[:take] if take else v for v in values})
        digits = [v for v in keys if v.isdigit()]
        lines += ["", "[priority]", f"column = {_q(priority)}"]
        if take:
            lines.append("take = 1")
        lines += ["default = 3", "", "[priority.map]"]
        lines += [f"{_q(v)} = {min(max(int(v), 1), 4)}" for v in digits]
        notes.append(f"priority values {keys[:12]}: mapped as numbers clipped to 1-4; the file "
                     "cannot say whether its 1 is the most or the least urgent - check")
    else:
        notes.append("no priority column: every call gets priority 3")
    return Proposal(toml="\n".join(lines) + "\n", notes=notes, complete=not missing)
