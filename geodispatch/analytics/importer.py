"""Import historical calls for service, any agency's export through a column mapping.

A :class:`~geodispatch.analytics.mapping.CallMapping` (a TOML file; ``sf``, ``seattle`` and
``new_orleans`` ship in ``mappings/``) says which column is which; :mod:`.reader` turns the file
into normalised rows, rejected rows (with reasons) and flagged rows. The rows map onto our model:

==========================  ====================================================================
mapping field               ours
==========================  ====================================================================
call_id                     one incident: ``source='import'``, ``external_ref``, idempotency key
                            ``import:<region>:<call id>`` (a re-import inserts nothing twice)
times.received              ``incidents.received_at`` (earliest of the call's rows)
times.entered               ``incidents.registered_at`` (the received time when not mapped)
times.dispatched            ``assignments.dispatched_at`` (one assignment per row); when a row
                            has later steps but no dispatch time the assignment is marked
                            ``created_by = 'import-undispatched'`` and its dispatch counts as
                            unknown in the intervals
times.en_route / on_scene   ``assignments.en_route_at`` / ``on_scene_at``
times.cleared               ``assignments.cleared_at``; the latest one closes the incident
location                    ``incidents.location`` and ``h3``
category                    ``category`` (mapped onto the classification, or the value itself
                            when the mapping does not translate it) and ``original_category``
priority                    ``priority`` 1-4 through the mapping's table
unit_id, unit_type          a crew per unit id, call sign ``<region>-<unit id>``, created
                            *inactive* and off duty (historical crews must never be offered to a
                            dispatcher); kind from ``[units] kinds``, the type kept as capability
                            ``<prefix>:<type>``; no device token can log in as it. A per-call
                            file gets one such crew, ``<region>-CALLS``
unit_sequence               ``is_lead`` for the first unit dispatched
==========================  ====================================================================

Timestamps are wall-clock time of the mapping's zone (or ``tz``), stored in UTC.

An archive is history, not the live record: its rows carry the id of an *import batch*
(:mod:`geodispatch.incidents.archive`, one per file) instead of an event each, and the batch's
one ``archive_imported`` event in the signed log carries the file's sha256, the row counts and a
hash over the canonical spelling of every row it inserted, which verification recomputes (a
changed imported row is named with its batch). A repeated import inserts nothing and leaves no
batch and no event.

Bulk work goes through PostgreSQL ``COPY`` into temporary tables and set-based ``INSERT ...
SELECT ... ON CONFLICT DO NOTHING`` statements, so the whole file is a handful of round trips.
"""

from __future__ import annotations

import importlib.util
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from h3.api import basic_int as h3i
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.analytics.intervals import UNDISPATCHED, rowcount
from geodispatch.analytics.mapping import CallMapping, load_mapping
from geodispatch.analytics.reader import CallRows, read_calls, write_rejects
from geodispatch.geo import LatLng, valid_latlng
from geodispatch.incidents import archive
from geodispatch.settings import get_settings
from geodispatch.zones.index import ZoneIndex

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


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
    flagged_rows: int = 0
    unmapped_categories: dict[str, int] = field(default_factory=dict)
    reject_reasons: dict[str, int] = field(default_factory=dict)
    rejects_file: Path | None = None
    batch_id: int | None = None
    rows_sha256: str | None = None


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


def _reason_counts(data: CallRows) -> dict[str, int]:
    """Reasons of rejection with their counts (by kind: without the offending value)."""
    return {str(k): int(v) for k, v in data.rejects["kind"].value_counts().items()}


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
        lng=("lng", "first"), category=("category", "first"),
        original_category=("original_category", "first"), priority=("priority", "min"),
        address=("address", "first"), disposition=("disposition", "first"),
        closed=("available", "max"), n_rows=("unit", "size"), n_cleared=("available", "count"),
    ).reset_index()
    calls["entry"] = calls["entry"].fillna(calls["received"])
    calls["closed"] = calls["closed"].where(calls["n_cleared"] == calls["n_rows"])
    calls["status"] = np.where(calls["closed"].notna(), "closed", "cleared")
    to_cell = h3i.latlng_to_cell
    calls["h3"] = np.fromiter(
        (to_cell(a, b, h3_res) for a, b in zip(calls["lat"].tolist(), calls["lng"].tolist(),
                                                strict=True)),
        dtype=np.uint64, count=len(calls)).astype(np.int64)
    calls["reference"] = region + "-IMP-" + calls["call"]
    calls["key"] = "import:" + region + ":" + calls["call"]
    calls["description"] = "Imported call; final disposition: " + calls["disposition"]
    calls["priority"] = calls["priority"].astype(int)
    return calls


_INCIDENT_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS _imp_calls (call text, reference text, key text,
    received timestamptz, entry timestamptz, lat float8, lng float8, h3 bigint,
    address text, category text, original_category text,
    priority int, status text, closed timestamptz, description text, sector_id int)
ON COMMIT DROP
"""
_ASSIGN_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS _imp_rows (key text, call_sign text, dispatched timestamptz,
    en_route timestamptz, on_scene timestamptz, cleared timestamptz, is_lead boolean,
    status text, created_by text)
ON COMMIT DROP
"""
_NEW_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS _imp_new (id int PRIMARY KEY) ON COMMIT DROP
"""
_UNIT_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS _imp_units (call_sign text, kind text, capability text)
ON COMMIT DROP
"""


def _stage(session: Session, ddl: str, name: str) -> None:
    session.execute(text(ddl))
    session.execute(text(f"TRUNCATE {name}"))


def _analyze(session: Session, name: str) -> None:
    """Statistics of a freshly COPYed staging table (autovacuum never analyses temp tables, and
    without them the planner guesses a few rows and may join a big file badly)."""
    session.execute(text(f"ANALYZE {name}"))


def _sector_ids(session: Session, calls: pd.DataFrame) -> list[int | None]:
    """Sector of every call from the zones domain's index, when that domain is installed."""
    if importlib.util.find_spec("geodispatch.zones.index") is None:
        return [None] * len(calls)

    try:
        index: Any = ZoneIndex.load(session, get_settings())
    except Exception:  # noqa: BLE001 - zones are optional for analytics
        log.warning("zone index unavailable; imported incidents get no sector", exc_info=True)
        return [None] * len(calls)
    return [index.lookup(LatLng(a, b)).sector_id
            for a, b in zip(calls["lat"], calls["lng"], strict=True)]


def _geocoder(session: Session, say: Progress) -> Callable[[list[str]], dict[str, Any]]:
    """Distinct addresses -> (lat, lng) of the geocoder's best candidate (the address index of
    :mod:`geodispatch.geocoding`), None for an address it cannot place to a street or better (an
    "area" answer, a district or a town, says nothing about where the call was)."""
    from geodispatch.geocoding.service import IndexGeocoder

    coder = IndexGeocoder(session)

    def run(addresses: list[str]) -> dict[str, Any]:
        say(f"geocoding {len(addresses):,} distinct addresses")
        out: dict[str, Any] = {}
        for a in addresses:
            hits = [h for h in coder.forward(a, limit=3) if h.precision != "area"]
            out[a] = (hits[0].point.lat, hits[0].point.lng) if hits else None
        return out

    return run


def import_sf_calls(
    *, session: Session, path: Path, region: str = "SF", tz: str = "America/Los_Angeles"
) -> ImportResult:
    """Import an SF "Calls for Service" CSV (shipped mapping ``sf``); see :func:`import_calls`."""
    return import_calls(session=session, path=path, mapping=load_mapping("sf"), region=region,
                        tz=tz)


def import_calls(
    *, session: Session, path: Path, mapping: CallMapping, region: str | None = None,
    tz: str | None = None, rejects_file: Path | None = None, progress: Progress | None = None,
) -> ImportResult:
    """Import a calls-for-service CSV into incidents, crews and assignments (idempotent).

    Parameters
    ----------
    session : Session
        The caller's unit of work (flushed, never committed).
    path : Path
        The CSV file.
    mapping : CallMapping
        Which column is which (:mod:`geodispatch.analytics.mapping`).
    region : str, optional
        Region code given to the incidents and crews (and part of their keys); default the
        mapping's.
    tz : str, optional
        IANA time zone of the file's wall-clock timestamps; default the mapping's.
    rejects_file : Path, optional
        Where to write the rejected and flagged rows (CSV), when there are any.
    progress : callable, optional
        Called with a short line as each stage starts.

    Returns
    -------
    ImportResult
    """
    say = progress or (lambda _msg: None)
    region = region or mapping.region
    say(f"reading {path.name} with mapping {mapping.name!r}")
    geocode = _geocoder(session, say) if mapping.location_kind == "address" else None
    data = read_calls(path, mapping, tz=tz, progress=say, geocode=geocode)
    rows = data.rows
    written_rejects = None
    if rejects_file is not None and (len(data.rejects) or len(data.flagged)):
        write_rejects(rejects_file, data)
        written_rejects = rejects_file
    say(f"{data.total_rows:,} rows read: {len(rows):,} usable, {len(data.rejects):,} rejected, "
        f"{len(data.flagged):,} flagged")
    settings = get_settings()
    session.flush()
    common: dict[str, Any] = {
        "skipped_rows": len(data.rejects), "flagged_rows": len(data.flagged),
        "unmapped_categories": dict(data.unmapped_categories.most_common()),
        "reject_reasons": _reason_counts(data), "rejects_file": written_rejects,
    }
    if rows.empty:
        return ImportResult(rows=0, calls=0, new_incidents=0, new_assignments=0, new_units=0,
                            first_received=None, **common)
    say(f"locating {rows['call'].nunique():,} calls (H3, sectors)")
    calls = _calls_frame(rows, region, settings.h3_incident_res)
    calls["sector_id"] = pd.array(_sector_ids(session, calls), dtype="Int64")

    # Crews.
    say("COPY crews")
    units = rows.drop_duplicates("unit")[["unit", "unit_type"]]
    kinds = mapping.unit_kinds
    kind = units["unit_type"].map(lambda t: kinds.get(t, "patrol_car"))
    stage_units = pd.DataFrame({
        "call_sign": region + "-" + units["unit"],
        "kind": kind,
        "capability": mapping.capability_prefix + ":" + units["unit_type"].str.lower()
        .str.replace(" ", "_").replace("", "unit"),
    })
    _stage(session, _UNIT_STAGE, "_imp_units")
    _copy(session, "_imp_units", list(stage_units.columns), stage_units)
    _analyze(session, "_imp_units")
    new_units = rowcount(session.execute(text(
        "INSERT INTO units (call_sign, kind, capabilities, region, status, device_id, "
        "device_token_hash, active) SELECT u.call_sign, u.kind, ARRAY[u.capability], :region, "
        "'off_duty', u.call_sign, '!', false FROM _imp_units u "
        "ON CONFLICT DO NOTHING"), {"region": region}))

    # The batch every new row names.
    file_sha = archive.file_sha256(path)
    batch = archive.open_batch(session, region=region, file_name=path.name,
                               file_sha256=file_sha, mapping=mapping.name)

    # Incidents.
    say(f"COPY {len(calls):,} incidents")
    _stage(session, _INCIDENT_STAGE, "_imp_calls")
    cols = ["call", "reference", "key", "received", "entry", "lat", "lng", "h3", "address",
            "category", "original_category", "priority", "status", "closed", "description",
            "sector_id"]
    _copy(session, "_imp_calls", cols, calls[cols])
    _analyze(session, "_imp_calls")
    inserted = session.execute(text(
        "INSERT INTO incidents (reference, idempotency_key, region, received_at, registered_at, "
        "caller_lang, sms_opt_out, location, h3, address, category, original_category, priority, "
        "status, description, sector_id, created_by, closed_at, source, external_ref, "
        "import_batch_id) "
        "SELECT c.reference, c.key, :region, c.received, c.entry, 'en', true, "
        "ST_SetSRID(ST_MakePoint(c.lng, c.lat), 4326), c.h3, c.address, c.category, "
        "c.original_category, "
        "c.priority, c.status, c.description, c.sector_id, 'import', c.closed, 'import', c.call, "
        ":batch FROM _imp_calls c ON CONFLICT DO NOTHING RETURNING id"),
        {"region": region, "batch": batch}).all()

    # Assignments: one per unit row, keyed by (incident, crew, dispatch time). A row without a
    # dispatch time but with a later step is an assignment whose dispatch time is unknown; a row
    # with no step at all (a call nobody was sent to) has none.
    undispatched = rows["dispatch"].isna()
    stepped = ~undispatched | rows[["response", "on_scene", "available"]].notna().any(axis=1)
    rows = rows[stepped]
    undispatched = undispatched[stepped]
    if rows["sequence"].notna().any():
        lead = rows["sequence"] == rows.groupby("call")["sequence"].transform("min")
    else:
        lead = ~rows.duplicated("call")
    status = np.select(
        [rows["available"].notna(), rows["on_scene"].notna(), rows["response"].notna()],
        ["cleared", "on_scene", "en_route"], default="dispatched")
    stage_rows = pd.DataFrame({
        "key": "import:" + region + ":" + rows["call"],
        "call_sign": region + "-" + rows["unit"],
        "dispatched": rows["dispatch"].fillna(rows["received"]), "en_route": rows["response"],
        "on_scene": rows["on_scene"], "cleared": rows["available"],
        "is_lead": lead.map({True: "t", False: "f"}),
        "status": status,
        "created_by": np.where(undispatched, UNDISPATCHED, "import"),
    })
    say(f"COPY {len(stage_rows):,} assignments")
    _stage(session, _ASSIGN_STAGE, "_imp_rows")
    _copy(session, "_imp_rows", list(stage_rows.columns), stage_rows)
    _analyze(session, "_imp_rows")
    # The incidents this import created cannot have assignments yet: their rows go in without
    # looking; only rows of incidents that were already there (a re-import, an export that grew)
    # are checked against the existing assignments. One anti-join over a whole big file is what
    # a planner with stale statistics turns into a scan of assignments per row.
    _stage(session, _NEW_STAGE, "_imp_new")
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy("COPY _imp_new (id) FROM STDIN") as copy:
        for row in inserted:
            copy.write_row((row[0],))
    _analyze(session, "_imp_new")
    insert = (
        "INSERT INTO assignments (incident_id, unit_id, status, is_lead, was_recommended, "
        "created_by, dispatched_at, en_route_at, on_scene_at, cleared_at, import_batch_id) "
        "SELECT i.id, u.id, r.status, coalesce(r.is_lead, false), false, r.created_by, "
        "r.dispatched, r.en_route, r.on_scene, r.cleared, :batch FROM _imp_rows r "
        "JOIN incidents i ON i.idempotency_key = r.key JOIN units u ON u.call_sign = r.call_sign "
    )
    new_assignments = rowcount(session.execute(text(
        insert + "WHERE i.id IN (SELECT id FROM _imp_new)"), {"batch": batch}))
    new_assignments += rowcount(session.execute(text(
        insert + "WHERE i.id NOT IN (SELECT id FROM _imp_new) AND NOT EXISTS (SELECT 1 FROM "
        "assignments a WHERE a.incident_id = i.id AND a.unit_id = u.id "
        "AND a.dispatched_at = r.dispatched)"), {"batch": batch}))
    batch_id: int | None = batch
    digest = None
    if inserted or new_assignments:
        say(f"sealing batch {batch} ({len(inserted):,} incidents, {new_assignments:,} "
            "assignments) into the signed record")
        _event, digest = archive.seal_batch(session, batch_id=batch, data={
            "file": path.name, "file_sha256": file_sha,
            "mapping": mapping.name, "region": region, "source_rows": data.total_rows,
            "rejected_rows": len(data.rejects)})
    else:
        archive.discard_batch(session, batch)
        batch_id = None
    session.flush()
    log.info("imported %s: %d rows, %d calls, %d new incidents, %d new assignments, "
             "%d new crews, batch %s, %d rows rejected, %d flagged", path, len(data.rows),
             len(calls), len(inserted), new_assignments, new_units, batch_id, len(data.rejects),
             len(data.flagged))
    return ImportResult(
        rows=len(data.rows), calls=len(calls), new_incidents=len(inserted),
        new_assignments=new_assignments, new_units=new_units,
        first_received=calls["received"].min(), batch_id=batch_id,
        rows_sha256=digest.rows_sha256 if digest else None, **common,
    )
