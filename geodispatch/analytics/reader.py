"""Read a calls-for-service export through a :class:`~geodispatch.analytics.mapping.CallMapping`.

The result is one normalised row per source row (UTC timestamps, parsed location, category
mapped onto the classification, priority 1-4), plus every row that could not be used with the
reason why (never silently dropped) and every row whose clock steps are implausible: a step
before the one it follows, or more than :data:`MAX_INTERVAL_S` after it. Those rows are kept;
the implausible interval is left out of the figures by
:func:`~geodispatch.analytics.intervals.refresh_intervals`.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from geodispatch.analytics.intervals import MAX_INTERVAL_S
from geodispatch.analytics.mapping import TIME_FIELDS, CallMapping
from geodispatch.errors import InvalidInput

CHUNK_ROWS = 500_000
"""Rows read at a time (the progress output's step)."""
#: Our names of the six timestamps in the normalised frame.
FRAME_TIME = {"received": "received", "entered": "entry", "dispatched": "dispatch",
              "en_route": "response", "on_scene": "on_scene", "cleared": "available"}
#: The intervals checked for plausibility: (from, to) timestamps of one row.
CHECKED_STEPS = (("received", "entered"), ("received", "dispatched"),
                 ("dispatched", "en_route"), ("en_route", "on_scene"),
                 ("received", "on_scene"), ("on_scene", "cleared"))
_LATLON = re.compile(r"^\s*\(?\s*([-+]?\d+(?:\.\d+)?)\s*,\s*([-+]?\d+(?:\.\d+)?)\s*\)?\s*$")
_WKT = re.compile(r"^\s*POINT\s*\(\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s+"
                  r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*\)\s*$", re.IGNORECASE)


@dataclass
class CallRows:
    """What :func:`read_calls` made of a file."""

    rows: pd.DataFrame
    """Usable rows, normalised (columns: line, call, unit, received ... available, lat, lng,
    category, original_category, priority, unit_type, address, disposition, sequence)."""
    rejects: pd.DataFrame
    """Unusable rows: line (1 = header), reason, kind (the reason without the value), and the
    row's own values."""
    flagged: pd.DataFrame
    """Kept rows with an implausible step: line, reason."""
    unmapped_categories: Counter[str] = field(default_factory=Counter)
    """Category values the mapping does not translate (kept as they are), with their counts."""
    total_rows: int = 0


def _latlon_from_text(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    parts = values.str.extract(_LATLON)
    return pd.to_numeric(parts[0], errors="coerce"), pd.to_numeric(parts[1], errors="coerce")


def _wkt(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    parts = values.str.extract(_WKT)  # POINT (lon lat)
    return pd.to_numeric(parts[1], errors="coerce"), pd.to_numeric(parts[0], errors="coerce")


Geocode = Callable[[list[str]], dict[str, tuple[float, float] | None]]
"""Distinct addresses -> (lat, lng) or None (what the importer builds on the geocoder)."""


def _location(df: pd.DataFrame, m: CallMapping, geocode: Geocode | None
              ) -> tuple[np.ndarray, np.ndarray]:
    if m.location_kind == "address":
        if geocode is None:
            raise InvalidInput(f"mapping {m.name!r} locates calls by address: that needs the "
                               "address index (`geodispatch geocode import`)")
        query = df[m.location_columns[0]].fillna("").str.strip()
        found = geocode(sorted(set(query[query.ne("")].tolist())))
        pts = query.map(lambda q: found.get(q))
        lat = pd.Series([p[0] if p else np.nan for p in pts], index=df.index, dtype=float)
        lng = pd.Series([p[1] if p else np.nan for p in pts], index=df.index, dtype=float)
    elif m.location_kind == "columns":
        lat = pd.to_numeric(df[m.location_columns[0]], errors="coerce")
        lng = pd.to_numeric(df[m.location_columns[1]], errors="coerce")
    elif m.location_kind == "latlon_text":
        lat, lng = _latlon_from_text(df[m.location_columns[0]].fillna(""))
    else:
        lat, lng = _wkt(df[m.location_columns[0]].fillna(""))
    a, b = lat.to_numpy(dtype=float), lng.to_numpy(dtype=float)
    ok = valid_latlngs(a, b)
    return np.where(ok, a, np.nan), np.where(ok, b, np.nan)


def valid_latlngs(lat: np.ndarray, lng: np.ndarray) -> np.ndarray:
    """:func:`geodispatch.geo.valid_latlng` of many points at once (NaN is not valid)."""
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(lat) & np.isfinite(lng) & (np.abs(lat) <= 90.0) & (np.abs(lng) <= 180.0)
    return np.asarray(ok & ~((lat == 0.0) & (lng == 0.0)), dtype=bool)


def parse_times(values: pd.Series, fmt: str, tz: str) -> pd.Series:
    """Wall-clock strings -> UTC timestamps (NaT where empty or not in ``fmt``).

    In the repeated hour of autumn the earlier (daylight) reading is taken; a time that does not
    exist (the skipped spring hour) is moved forward. Values that carry their own offset
    (ISO 8601 with ``Z`` or ``+hh:mm``) are converted, not relocalised.
    """
    if fmt.upper() == "ISO8601":
        parsed = pd.to_datetime(values, format="ISO8601", errors="coerce", utc=False)
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            return parsed.dt.tz_convert("UTC")
    else:
        parsed = pd.to_datetime(values, format=fmt, errors="coerce")
    return parsed.dt.tz_localize(tz, ambiguous=np.ones(len(parsed), dtype=bool),
                                 nonexistent="shift_forward").dt.tz_convert("UTC")


def _priority(df: pd.DataFrame, m: CallMapping) -> pd.Series:
    if m.priority is None:
        return pd.Series(m.priority_default, index=df.index, dtype=int)
    raw = df[m.priority].fillna("").str.strip()
    if m.priority_take:
        raw = raw.str.slice(0, m.priority_take)
    return raw.map(m.priority_map).fillna(m.priority_default).astype(int)


def read_header(path: Path) -> list[str]:
    """The header of a CSV file, or one clear error for anything that is not one."""
    if path.is_dir():
        raise InvalidInput(f"{path} is a directory, not a CSV file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), None)
    except FileNotFoundError:
        raise InvalidInput(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInput(f"cannot read {path} as a UTF-8 CSV file: {exc}") from None
    if not header:
        raise InvalidInput(f"{path} is empty")
    return [h.strip() for h in header]


def read_calls(path: Path, mapping: CallMapping, *, tz: str | None = None,
               progress: Callable[[str], None] | None = None,
               geocode: Geocode | None = None) -> CallRows:
    """Read and normalise a calls-for-service CSV through ``mapping``.

    Parameters
    ----------
    path : Path
        The CSV file (UTF-8, header row).
    mapping : CallMapping
        Which column is which.
    tz : str, optional
        Time zone of wall-clock times; default the mapping's.
    progress : callable, optional
        Told how many rows are read so far, every :data:`CHUNK_ROWS` rows.
    geocode : callable, optional
        Places the distinct addresses of a mapping whose location is an address.

    Returns
    -------
    CallRows
        Usable rows, rejected rows with their reasons, flagged rows and unmapped categories.

    Raises
    ------
    InvalidInput
        The file is not a readable CSV or lacks a column the mapping names.
    """
    header = read_header(path)
    missing = [c for c in mapping.required_columns() if c not in header]
    if missing:
        raise InvalidInput(f"{path.name} does not match mapping {mapping.name!r}: missing "
                           f"columns {missing} (try --infer to propose a mapping)")
    usecols = mapping.required_columns()
    parts: list[pd.DataFrame] = []
    try:
        with pd.read_csv(path, dtype=str, keep_default_na=False,
                         na_values=["", *mapping.null_values], encoding="utf-8-sig",
                         usecols=usecols, chunksize=CHUNK_ROWS) as chunks:
            for chunk in chunks:
                parts.append(chunk)
                if progress is not None:
                    progress(f"read {sum(len(p) for p in parts):,} rows")
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from None
    df = (pd.concat(parts, ignore_index=True) if parts
          else pd.DataFrame({c: pd.Series(dtype=object) for c in usecols}))
    df.columns = [c.strip() for c in df.columns]
    tz = tz or mapping.timezone
    n = len(df)
    out = pd.DataFrame({"line": np.arange(2, n + 2), "call": df[mapping.call_id].str.strip()})
    out["unit"] = (df[mapping.unit_id].str.strip() if mapping.unit_id
                   else pd.Series("CALLS", index=df.index))
    reasons = pd.Series("", index=df.index)
    kinds = pd.Series("", index=df.index)

    def reject(mask: pd.Series | np.ndarray, why: str | pd.Series, kind: str | None = None
               ) -> None:
        fresh = np.asarray(mask) & reasons.eq("").to_numpy()
        reasons[fresh] = why if isinstance(why, str) else why[fresh]
        kinds[fresh] = kind or why

    reject(out["call"].fillna("").eq(""), "no call id")
    reject(out["call"].fillna("").str.len() > 24, "call id longer than 24 characters")
    if mapping.unit_id:
        reject(out["unit"].fillna("").eq(""), "no unit id")
    for key in TIME_FIELDS:
        col = FRAME_TIME[key]
        if key not in mapping.times:
            out[col] = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns, UTC]")
            continue
        src = mapping.times[key]
        raw = df[src].str.strip()
        out[col] = parse_times(raw, mapping.time_formats[key], tz)
        bad = raw.notna() & out[col].isna()
        what = f"{src}: not a time in format {mapping.time_formats[key]!r}"
        reject(bad, what + ": " + raw.fillna("").str.slice(0, 40), what)
        if key == "received":
            reject(raw.isna(), f"no received time ({src})")
    lat, lng = _location(df, mapping, geocode)
    out["lat"], out["lng"] = lat, lng
    if mapping.location_kind == "address":
        addr = df[mapping.location_columns[0]].fillna("").str.strip()
        reject(np.isnan(lat) & addr.eq("").to_numpy(),
               f"no address ({mapping.location_columns[0]})")
        reject(np.isnan(lat), "address not found by the geocoder: " + addr.str.slice(0, 60),
               "address not found by the geocoder")
    reject(np.isnan(lat), "no usable location (" + ", ".join(mapping.location_columns) + ")")

    if mapping.category:
        original = df[mapping.category].fillna("unknown").str.strip().str.slice(0, 48)
    else:
        original = pd.Series("unknown", index=df.index)
    cat_map = mapping.category_map
    out["original_category"] = original
    out["category"] = original.map(lambda v: cat_map.get(v, v)).str.slice(0, 48)
    out["priority"] = _priority(df, mapping)
    out["unit_type"] = (df[mapping.unit_type].fillna("").str.strip().str.upper()
                        if mapping.unit_type else "")
    out["address"] = df[mapping.address].fillna("") if mapping.address else ""
    out["disposition"] = df[mapping.disposition].fillna("") if mapping.disposition else ""
    out["sequence"] = (pd.to_numeric(df[mapping.unit_sequence], errors="coerce")
                       if mapping.unit_sequence else np.nan)

    key_cols = ["call", "unit", "dispatch"] if mapping.per_unit else ["call"]
    first_line = out.groupby(key_cols, dropna=False)["line"].transform("min")
    dup = out.duplicated(key_cols, keep="first") & reasons.eq("")
    what = "call, unit and dispatch time" if mapping.per_unit else "call id"
    reject(dup, f"duplicate {what} (first at line " + first_line.astype(str) + ")",
           f"duplicate {what}")

    ok = reasons.eq("")
    rejects = pd.concat([pd.DataFrame({"line": out["line"], "reason": reasons,
                                       "kind": kinds}), df],
                        axis=1)[~ok]
    rows = out[ok].reset_index(drop=True)
    flag_lines: list[int] = []
    flag_reasons: list[str] = []
    for a, b in CHECKED_STEPS:
        ca, cb = FRAME_TIME[a], FRAME_TIME[b]
        secs = (rows[cb] - rows[ca]).dt.total_seconds()
        for label, mask in (("negative", secs < 0), ("longer than 24 h", secs > MAX_INTERVAL_S)):
            for line, s in zip(rows["line"][mask].tolist(), secs[mask].tolist(), strict=True):
                flag_lines.append(int(line))
                flag_reasons.append(f"{a} -> {b} {label}: {s:+.0f} s (kept; interval not "
                                    "counted)")
    flagged = pd.DataFrame({"line": flag_lines, "reason": flag_reasons})
    unmapped: Counter[str] = Counter()
    if mapping.category:
        keep = ~rows["original_category"].isin(list(mapping.category_map))
        unmapped.update(rows.loc[keep, "original_category"].tolist())
    return CallRows(rows=rows, rejects=rejects.reset_index(drop=True), flagged=flagged,
                    unmapped_categories=unmapped, total_rows=n)


def write_rejects(path: Path, data: CallRows) -> int:
    """Write the rejected and flagged rows to ``path`` (CSV); returns the number written."""
    rej = data.rejects.drop(columns="kind")
    rej.insert(1, "action", "rejected")
    flg = data.flagged.copy()
    flg.insert(1, "action", "flagged")
    both = pd.concat([rej, flg], ignore_index=True).sort_values("line", kind="stable")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        both.to_csv(path, index=False)
    except OSError as exc:
        raise InvalidInput(f"cannot write the rejects file {path}: {exc}") from None
    return len(both)
