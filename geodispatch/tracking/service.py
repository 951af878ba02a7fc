"""Tracking services: units and their device credentials, tracks, fleet queries, GPX import.

Keyword-only functions taking the session; they flush, never commit. Device tokens are random
32-byte secrets shown once; only a salted SHA-256 is stored (a random token has full entropy, so a
slow password hash would only slow down 5,000 units' logins without adding safety). The broker's
password file gets the same token (Mosquitto's own ``$7$`` hash) once the transaction commits.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

import geodispatch.models  # noqa: F401 - every model, so foreign keys resolve at flush time
from geodispatch.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from geodispatch.settings import Settings, get_settings
from geodispatch.tracking.models import (
    UNIT_KINDS,
    UNIT_STATUSES,
    IngestDeadLetter,
    IngestDrop,
    Unit,
)

log = logging.getLogger(__name__)

_PENDING_KEY = "tracking_broker_devices"


# --- device tokens ---------------------------------------------------------------------------


def hash_token(token: str, *, salt: str | None = None) -> str:
    """``sha256$<salt hex>$<digest hex>`` of a device token."""
    salt = salt or secrets.token_hex(16)
    digest = hashlib.sha256(f"{salt}:{token}".encode()).hexdigest()
    return f"sha256${salt}${digest}"


def verify_token(token: str, hashed: str) -> bool:
    """Constant-time check of ``token`` against :func:`hash_token` output."""
    try:
        scheme, salt, _digest = hashed.split("$", 2)
    except ValueError:
        return False
    if scheme != "sha256":
        return False
    return hmac.compare_digest(hash_token(token, salt=salt), hashed)


def _queue_broker_credentials(
    session: Session, settings: Settings, creds: list[tuple[str, str]]
) -> None:
    """Write broker credentials once the surrounding transaction really commits."""
    pending: list[tuple[str, str]] | None = session.info.get(_PENDING_KEY)
    if pending is None:
        pending = []
        session.info[_PENDING_KEY] = pending

        def after_commit(sess: Session) -> None:
            items = sess.info.pop(_PENDING_KEY, [])
            if items:
                from geodispatch.tracking.broker import add_devices

                try:
                    add_devices(settings, items)
                except OSError:
                    log.exception("could not update the broker password file")

        def after_rollback(sess: Session) -> None:
            if not sess.in_transaction():
                sess.info.pop(_PENDING_KEY, None)

        event.listen(session, "after_commit", after_commit, once=True)
        event.listen(session, "after_soft_rollback", after_rollback, once=True)
    pending.extend(creds)


def create_unit(
    *,
    session: Session,
    call_sign: str,
    kind: str,
    capabilities: Sequence[str],
    region: str,
    home_zone_id: int | None = None,
    token: str | None = None,
    owntracks_user: str | None = None,
    owntracks_device: str | None = None,
    device_id: str | None = None,
    status: str = "off_duty",
    settings: Settings | None = None,
) -> tuple[Unit, str]:
    """Create a unit; return it with its device token in clear (shown once, stored hashed).

    ``device_id`` (default: the call sign) is the MQTT username and the HTTP ``id``; the token is
    the password of both. The broker account is added after the transaction commits.
    """
    if kind not in UNIT_KINDS:
        raise InvalidInput(f"unknown unit kind {kind!r}; one of {', '.join(UNIT_KINDS)}")
    if status not in UNIT_STATUSES:
        raise InvalidInput(f"unknown status {status!r}")
    device_id = device_id or call_sign
    if not device_id or any(c in device_id for c in "/+#:") or len(device_id) > 64:
        raise InvalidInput(f"device id {device_id!r} may not contain / + # : (max 64 characters)")
    clash = session.scalar(
        select(Unit.id).where((Unit.call_sign == call_sign) | (Unit.device_id == device_id))
    )
    if clash is not None:
        raise Conflict(f"a unit with call sign {call_sign!r} or device {device_id!r} exists")
    token = token or secrets.token_urlsafe(32)
    unit = Unit(
        call_sign=call_sign, kind=kind, capabilities=list(capabilities), region=region,
        home_zone_id=home_zone_id, status=status, device_id=device_id,
        device_token_hash=hash_token(token), owntracks_user=owntracks_user,
        owntracks_device=owntracks_device, active=True,
    )
    session.add(unit)
    session.flush()
    creds = [(device_id, token)]
    if owntracks_user and owntracks_user != device_id:
        creds.append((owntracks_user, token))
    _queue_broker_credentials(session, settings or get_settings(), creds)
    return unit, token


def rotate_token(*, session: Session, unit: Unit, token: str | None = None,
                 settings: Settings | None = None) -> str:
    """Give the unit a new device token (old one stops working); return it in clear."""
    token = token or secrets.token_urlsafe(32)
    unit.device_token_hash = hash_token(token)
    session.flush()
    _queue_broker_credentials(session, settings or get_settings(), [(unit.device_id, token)])
    return token


def authenticate_device(*, session: Session, device_id: str, token: str | None) -> Unit:
    """The active unit whose device is ``device_id`` and token matches.

    Raises ``NotFound`` for an unknown device and ``Unauthenticated`` for a missing or wrong
    token (the HTTP edge maps them to what each tracker protocol expects).
    """
    unit = session.scalar(select(Unit).where(Unit.device_id == device_id, Unit.active.is_(True)))
    if unit is None:
        unit = session.scalar(
            select(Unit).where(Unit.owntracks_user == device_id, Unit.active.is_(True))
        )
    if unit is None:
        raise NotFound(f"unknown device {device_id!r}")
    if not token or not verify_token(token, unit.device_token_hash):
        raise Unauthenticated(f"wrong or missing token for device {device_id!r}")
    return unit


def get_unit(*, session: Session, ref: str | int) -> Unit:
    """A unit by id, call sign or device id."""
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        unit = session.get(Unit, int(ref))
        if unit is not None:
            return unit
    unit = session.scalar(
        select(Unit).where((Unit.call_sign == str(ref)) | (Unit.device_id == str(ref)))
    )
    if unit is None:
        raise NotFound(f"unit {ref!r} not found")
    return unit


# --- queries ---------------------------------------------------------------------------------


def track_geojson(
    *, session: Session, unit_id: int, start: datetime, end: datetime, limit: int = 100_000
) -> dict[str, Any]:
    """The unit's fixes between two times as a GeoJSON FeatureCollection of one LineString
    (for playback) plus one Point feature per fix with its time, speed and heading."""
    if end < start:
        raise InvalidInput("end is before start")
    rows = session.execute(
        text(
            "SELECT fix_time, ST_Y(geom) AS lat, ST_X(geom) AS lng, speed_mps, heading, "
            "accuracy_m, source FROM positions WHERE unit_id = :u AND fix_time >= :s "
            "AND fix_time <= :e ORDER BY fix_time LIMIT :lim"
        ),
        {"u": unit_id, "s": start, "e": end, "lim": limit},
    ).all()
    points = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [r.lng, r.lat]},
            "properties": {
                "fix_time": r.fix_time.isoformat(), "speed_mps": r.speed_mps,
                "heading": r.heading, "accuracy_m": r.accuracy_m, "source": r.source,
            },
        }
        for r in rows
    ]
    features: list[dict[str, Any]] = []
    if len(rows) >= 2:
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [[r.lng, r.lat] for r in rows]},
                "properties": {
                    "unit_id": unit_id, "kind": "track",
                    "start": rows[0].fix_time.isoformat(), "end": rows[-1].fix_time.isoformat(),
                    "fixes": len(rows),
                },
            }
        )
    features.extend(points)
    return {"type": "FeatureCollection", "features": features}


def drop_counts(*, session: Session) -> dict[str, int]:
    """Dropped messages per reason since the database was created."""
    return {d.reason: int(d.count) for d in session.scalars(select(IngestDrop))}


def dead_letters(*, session: Session, limit: int = 50) -> list[IngestDeadLetter]:
    """The newest dead-lettered messages (see ``worker.py``), newest first."""
    return list(session.scalars(
        select(IngestDeadLetter).order_by(IngestDeadLetter.id.desc()).limit(limit)))


@dataclass
class ImportResult:
    """What a GPX import did."""

    points: int
    stored: int
    duplicates: int
    dropped: dict[str, int]


def import_gpx(*, session: Session, unit: Unit, path: Path, settings: Settings) -> ImportResult:
    """Import a recorded GPX track into the unit's history (old fixes allowed, checks otherwise
    as for live data; ``unit_latest`` moves only if the track is newer than what it holds)."""
    from geodispatch.tracking.decoders import decode_gpx
    from geodispatch.tracking.ingest import Ingestor

    reports = decode_gpx(path.read_bytes(), device=unit.device_id, received_at=datetime.now(UTC))
    for r in reports:
        r.unit_id = unit.id
    ingestor = Ingestor(settings)
    batch = ingestor.prepare(reports, now=datetime.now(UTC), check_age=False)
    result = ingestor.write(session=session, batch=batch)
    return ImportResult(
        points=len(reports), stored=result.inserted, duplicates=result.duplicates,
        dropped=dict(batch.drops.counts),
    )
