"""Import historical calls for service (San Francisco "Calls for Service" CSV) as incidents.

The SF Fire Department export has one row per *responding unit*. It maps onto our model as:

==========================  ====================================================================
SF column                   ours
==========================  ====================================================================
Call Number                 one incident: ``source='import'``, ``external_ref``, idempotency key
                            ``import:<region>:<call number>`` (a re-import inserts nothing twice)
Received DtTm               ``incidents.received_at`` (earliest of the call's rows)
Entry DtTm                  ``incidents.registered_at``
Dispatch DtTm               ``assignments.dispatched_at`` (one assignment per row)
Response DtTm               ``assignments.en_route_at``
On Scene DtTm               ``assignments.on_scene_at``
Available DtTm              ``assignments.cleared_at``; the latest one closes the incident
Location "(lat, lon)"       ``incidents.location`` and ``h3``
Call Type                   ``category`` (and ``original_category``)
Priority                    ``priority``: ``3``/``E``/``A`` (emergency) -> 1, ``2``/``B`` -> 2,
                            anything else -> 3
Unit ID, Unit Type          a crew per Unit ID, call sign ``<region>-<Unit ID>``, created
                            *inactive* and off duty (historical crews must never be offered to a
                            dispatcher); kind from :data:`UNIT_KINDS_BY_SF_TYPE`, the SF type kept
                            as capability ``sf:<type>``; no device token can log in as it
Unit sequence in call       ``is_lead`` for the first unit dispatched
==========================  ====================================================================

Timestamps in the file are local wall-clock time (``--tz``, default America/Los_Angeles); they are
stored in UTC. Rows without a usable location are skipped and counted. Each newly imported
incident gets an ``imported`` event in the incident record (``append_many``), carrying the state
of its rows, so imported history is sealed into the signed log like any call.

Bulk work goes through PostgreSQL ``COPY`` into temporary tables and set-based ``INSERT ...
SELECT ... ON CONFLICT DO NOTHING`` statements, so the whole file is a handful of round trips.
"""

from __future__ import annotations

import importlib.util
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h3
import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.analytics.intervals import rowcount
from geodispatch.errors import InvalidInput
from geodispatch.geo import LatLng, valid_latlng
from geodispatch.incidents.record import append_many
from geodispatch.settings import get_settings

log = logging.getLogger(__name__)

SF_TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
SF_TIME_COLUMNS = {
    "received": "Received DtTm",
    "entry": "Entry DtTm",
    "dispatch": "Dispatch DtTm",
    "response": "Response DtTm",
    "on_scene": "On Scene DtTm",
    "available": "Available DtTm",
}
SF_REQUIRED = (
    "Call Number", "Unit ID", "Call Type", "Priority", "Unit Type", "Location", "Address",
    *SF_TIME_COLUMNS.values(),
)
UNIT_KINDS_BY_SF_TYPE = {
    "ENGINE": "patrol_car",
    "TRUCK": "patrol_car",
    "AIRPORT": "patrol_car",
    "INVESTIGATION": "patrol_car",
    "MEDIC": "rapid_response",
    "PRIVATE": "rapid_response",
    "RESCUE SQUAD": "rapid_response",
    "CHIEF": "supervisor_car",
    "RESCUE CAPTAIN": "supervisor_car",
    "SUPPORT": "traffic",
}
PRIORITY_BY_SF = {"3": 1, "E": 1, "A": 1, "2": 2, "B": 2}


@dataclass(frozen=True)
class ImportResult:
    """What an import did; the ``new_*`` counts are zero on a repeated import."""

    rows: int
    calls: int
    skipped_rows: int
    new_incidents: int
    new_assignments: int
    new_units: int
    first_received: pd.Timestamp | None


def parse_location(value: object) -> LatLng | None:
    """``"(37.74, -122.45)"`` -> ``LatLng``; None for anything unusable (or the (0, 0) fix)."""
    if not isinstance(value, str):
        return None
    parts = value.strip().strip("()").split(",")
    if len(parts) != 2:
        return None
    try:
        lat, lng = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    return LatLng(lat, lng) if valid_latlng(lat, lng) else None


def read_sf_calls(path: Path, *, tz: str = "America/Los_Angeles") -> tuple[pd.DataFrame, int]:
    """Read and normalise the SF CSV: UTC timestamps, parsed locations, one row per unit.

    Returns the frame (rows without a location dropped) and the number of dropped rows.
    """
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (OSError, pd.errors.ParserError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from None
    missing = [c for c in SF_REQUIRED if c not in df.columns]
    if missing:
        raise InvalidInput(f"{path} is not an SF calls-for-service file; missing {missing}")
    out = pd.DataFrame({"call": df["Call Number"].str.strip(), "unit": df["Unit ID"].str.strip()})
    for key, col in SF_TIME_COLUMNS.items():
        local = pd.to_datetime(df[col], format=SF_TIME_FORMAT, errors="coerce")
        # Wall-clock times: in the repeated hour of autumn the earlier (daylight) reading is taken.
        out[key] = local.dt.tz_localize(tz, ambiguous=np.ones(len(local), dtype=bool),
                                        nonexistent="shift_forward").dt.tz_convert("UTC")
    locs = [parse_location(v) for v in df["Location"]]
    out["lat"] = [p.lat if p else np.nan for p in locs]
    out["lng"] = [p.lng if p else np.nan for p in locs]
    out["category"] = df["Call Type"].fillna("unknown").str.strip().str.slice(0, 48)
    out["priority"] = df["Priority"].fillna("").str.strip().map(PRIORITY_BY_SF).fillna(3)
    out["unit_type"] = df["Unit Type"].fillna("").str.strip().str.upper()
    out["address"] = df["Address"].fillna("")
    out["disposition"] = df.get("Call Final Disposition", pd.Series("", index=df.index)).fillna("")
    seq = pd.to_numeric(df.get("Unit sequence in call dispatch",
                               pd.Series(np.nan, index=df.index)), errors="coerce")
    out["sequence"] = seq
    ok = out["lat"].notna() & out["received"].notna() & out["dispatch"].notna()
    ok &= out["call"].fillna("").ne("") & out["unit"].fillna("").ne("")
    return out[ok].reset_index(drop=True), int((~ok).sum())


def _copy(session: Session, table: str, columns: list[str], frame: pd.DataFrame) -> None:
    """COPY a frame into an (existing, usually temporary) table as CSV."""
    buf = io.StringIO()
    frame.to_csv(buf, index=False, header=False, date_format="%Y-%m-%dT%H:%M:%S%z")
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(
        f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)"
    ) as copy:
        copy.write(buf.getvalue())


def _calls_frame(rows: pd.DataFrame, region: str, h3_res: int) -> pd.DataFrame:
    g = rows.sort_values(["call", "received"]).groupby("call", sort=False)
    calls = g.agg(
        received=("received", "min"), entry=("entry", "min"), lat=("lat", "first"),
        lng=("lng", "first"), category=("category", "first"), priority=("priority", "min"),
        address=("address", "first"), disposition=("disposition", "first"),
        closed=("available", "max"), n_rows=("unit", "size"), n_cleared=("available", "count"),
    ).reset_index()
    calls["entry"] = calls["entry"].fillna(calls["received"])
    calls["closed"] = calls["closed"].where(calls["n_cleared"] == calls["n_rows"])
    calls["status"] = np.where(calls["closed"].notna(), "closed", "cleared")
    calls["h3"] = [
        h3.str_to_int(LatLng(a, b).h3_cell(h3_res)) for a, b in zip(calls["lat"], calls["lng"],
                                                                     strict=True)
    ]
    calls["reference"] = region + "-IMP-" + calls["call"]
    calls["key"] = "import:" + region + ":" + calls["call"]
    calls["description"] = "Imported call; final disposition: " + calls["disposition"]
    calls["priority"] = calls["priority"].astype(int)
    return calls


_INCIDENT_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS _imp_calls (call text, reference text, key text,
    received timestamptz, entry timestamptz, lat float8, lng float8, h3 bigint,
    address text, category text,
    priority int, status text, closed timestamptz, description text, sector_id int)
ON COMMIT DROP
"""
_ASSIGN_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS _imp_rows (key text, call_sign text, dispatched timestamptz,
    en_route timestamptz, on_scene timestamptz, cleared timestamptz, is_lead boolean,
    status text)
ON COMMIT DROP
"""
_UNIT_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS _imp_units (call_sign text, kind text, capability text)
ON COMMIT DROP
"""


def _stage(session: Session, ddl: str, name: str) -> None:
    session.execute(text(ddl))
    session.execute(text(f"TRUNCATE {name}"))


def _sector_ids(session: Session, calls: pd.DataFrame) -> list[int | None]:
    """Sector of every call from the zones domain's index, when that domain is installed."""
    if importlib.util.find_spec("geodispatch.zones.index") is None:
        return [None] * len(calls)
    from geodispatch.zones.index import ZoneIndex  # optional producer: zones

    try:
        index: Any = ZoneIndex.load(session, get_settings())
    except Exception:  # noqa: BLE001 - zones are optional for analytics
        log.warning("zone index unavailable; imported incidents get no sector", exc_info=True)
        return [None] * len(calls)
    return [index.lookup(LatLng(a, b)).sector_id
            for a, b in zip(calls["lat"], calls["lng"], strict=True)]


def _append_imported_events(session: Session, new: list[tuple[int, str]], source: str) -> int:
    return append_many(session=session, kind="imported", actor="import",
                       events=[(iid, {"source": source, "external_ref": ref}) for iid, ref in new])


def import_sf_calls(
    *, session: Session, path: Path, region: str = "SF", tz: str = "America/Los_Angeles"
) -> ImportResult:
    """Import an SF "Calls for Service" CSV into incidents, crews and assignments (idempotent).

    Parameters
    ----------
    session : Session
        The caller's unit of work (flushed, never committed).
    path : Path
        The CSV file.
    region : str
        Region code given to the incidents and crews (and part of their keys).
    tz : str
        IANA time zone of the file's wall-clock timestamps.

    Returns
    -------
    ImportResult
    """
    rows, skipped = read_sf_calls(path, tz=tz)
    settings = get_settings()
    session.flush()
    if rows.empty:
        return ImportResult(0, 0, skipped, 0, 0, 0, None)
    calls = _calls_frame(rows, region, settings.h3_incident_res)
    calls["sector_id"] = pd.array(_sector_ids(session, calls), dtype="Int64")

    # Crews.
    units = rows.drop_duplicates("unit")[["unit", "unit_type"]]
    stage_units = pd.DataFrame({
        "call_sign": region + "-" + units["unit"],
        "kind": units["unit_type"].map(UNIT_KINDS_BY_SF_TYPE).fillna("patrol_car"),
        "capability": "sf:" + units["unit_type"].str.lower().str.replace(" ", "_"),
    })
    _stage(session, _UNIT_STAGE, "_imp_units")
    _copy(session, "_imp_units", list(stage_units.columns), stage_units)
    new_units = rowcount(session.execute(text(
        "INSERT INTO units (call_sign, kind, capabilities, region, status, device_id, "
        "device_token_hash, active) SELECT u.call_sign, u.kind, ARRAY[u.capability], :region, "
        "'off_duty', u.call_sign, '!', false FROM _imp_units u "
        "ON CONFLICT DO NOTHING"), {"region": region}))

    # Incidents.
    _stage(session, _INCIDENT_STAGE, "_imp_calls")
    cols = ["call", "reference", "key", "received", "entry", "lat", "lng", "h3", "address",
            "category", "priority", "status", "closed", "description", "sector_id"]
    _copy(session, "_imp_calls", cols, calls[cols])
    inserted = session.execute(text(
        "INSERT INTO incidents (reference, idempotency_key, region, received_at, registered_at, "
        "caller_lang, sms_opt_out, location, h3, address, category, original_category, priority, "
        "status, description, sector_id, created_by, closed_at, source, external_ref) "
        "SELECT c.reference, c.key, :region, c.received, c.entry, 'en', true, "
        "ST_SetSRID(ST_MakePoint(c.lng, c.lat), 4326), c.h3, c.address, c.category, c.category, "
        "c.priority, c.status, c.description, c.sector_id, 'import', c.closed, 'import', c.call "
        "FROM _imp_calls c ON CONFLICT DO NOTHING RETURNING id, external_ref"),
        {"region": region}).all()

    # Assignments: one per unit row, keyed by (incident, crew, dispatch time).
    lead_seq = rows.groupby("call")["sequence"].transform("min")
    status = np.select(
        [rows["available"].notna(), rows["on_scene"].notna(), rows["response"].notna()],
        ["cleared", "on_scene", "en_route"], default="dispatched")
    stage_rows = pd.DataFrame({
        "key": "import:" + region + ":" + rows["call"],
        "call_sign": region + "-" + rows["unit"],
        "dispatched": rows["dispatch"], "en_route": rows["response"],
        "on_scene": rows["on_scene"], "cleared": rows["available"],
        "is_lead": (rows["sequence"] == lead_seq).map({True: "t", False: "f"}),
        "status": status,
    })
    _stage(session, _ASSIGN_STAGE, "_imp_rows")
    _copy(session, "_imp_rows", list(stage_rows.columns), stage_rows)
    new_assignments = rowcount(session.execute(text(
        "INSERT INTO assignments (incident_id, unit_id, status, is_lead, was_recommended, "
        "created_by, dispatched_at, en_route_at, on_scene_at, cleared_at) "
        "SELECT i.id, u.id, r.status, coalesce(r.is_lead, false), false, 'import', r.dispatched, "
        "r.en_route, r.on_scene, r.cleared FROM _imp_rows r "
        "JOIN incidents i ON i.idempotency_key = r.key JOIN units u ON u.call_sign = r.call_sign "
        "WHERE NOT EXISTS (SELECT 1 FROM assignments a WHERE a.incident_id = i.id "
        "AND a.unit_id = u.id AND a.dispatched_at = r.dispatched)")))
    events = _append_imported_events(session, [(r[0], r[1]) for r in inserted], path.name)
    session.flush()
    log.info("imported %s: %d rows, %d calls, %d new incidents, %d new assignments, "
             "%d new crews, %d events, %d rows skipped", path, len(rows), len(calls),
             len(inserted), new_assignments, new_units, events, skipped)
    return ImportResult(
        rows=len(rows), calls=len(calls), skipped_rows=skipped, new_incidents=len(inserted),
        new_assignments=new_assignments, new_units=new_units,
        first_received=calls["received"].min(),
    )
