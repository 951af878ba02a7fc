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
from geodispatch.tracking.broker import change_passwd, mosquitto_hash
from geodispatch.tracking.decoders import decode_gpx
from geodispatch.tracking.ingest import Ingestor
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


def _queue_broker(
    session: Session, settings: Settings, *, add: list[tuple[str, str]] | None = None,
    remove: list[str] | None = None,
) -> None:
    """Change broker credentials once the surrounding transaction really commits (one rewrite
    of the password file and one SIGHUP for everything the transaction queued)."""
    pending: dict[str, list[Any]] | None = session.info.get(_PENDING_KEY)
    if pending is None:
        pending = {"add": [], "remove": []}
        session.info[_PENDING_KEY] = pending

        def after_commit(sess: Session) -> None:
            items = sess.info.pop(_PENDING_KEY, None)
            if not items or not (items["add"] or items["remove"]):
                return
            try:
                change_passwd(settings, add=[(u, mosquitto_hash(t)) for u, t in items["add"]],
                              remove=items["remove"])
            except OSError:
                log.exception("could not update the broker password file")

        def after_rollback(sess: Session) -> None:
            if not sess.in_transaction():
                sess.info.pop(_PENDING_KEY, None)

        event.listen(session, "after_commit", after_commit, once=True)
        event.listen(session, "after_soft_rollback", after_rollback, once=True)
    # A login both removed and re-added in one transaction ends added (and the reverse).
    for login, token in add or ():
        if login in pending["remove"]:
            pending["remove"].remove(login)
        pending["add"].append((login, token))
    for login in remove or ():
        pending["add"] = [(u, t) for u, t in pending["add"] if u != login]
        pending["remove"].append(login)


def _logins(unit: Unit) -> list[str]:
    """The broker usernames (and HTTP ids) of a unit: its device id and its OwnTracks user."""
    out = [unit.device_id]
    if unit.owntracks_user and unit.owntracks_user != unit.device_id:
        out.append(unit.owntracks_user)
    return out


def _check_login(value: str, what: str) -> None:
    if not value or any(c in value for c in "/+#:\x00") or len(value) > 64:
        raise InvalidInput(f"{what} {value[:64]!r} may not be empty or contain / + # : or NUL "
                           "(max 64 characters)")


def _claim_logins(session: Session, logins: Sequence[str], *, unit_id: int | None) -> None:
    """Refuse logins another unit already has as device id or OwnTracks user: device ids and
    OwnTracks users are one namespace (both are MQTT usernames and HTTP ids), so a clash would
    let one unit replace the other's broker password and publish as it."""
    # Serialise the check with other creations: two admins cannot claim one login at once.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('geodispatch.unit_logins'))"))
    names = sorted(set(logins))
    q = select(Unit.call_sign, Unit.device_id, Unit.owntracks_user).where(
        (Unit.device_id.in_(names)) | (Unit.owntracks_user.in_(names)))
    if unit_id is not None:
        q = q.where(Unit.id != unit_id)
    for call_sign, device_id, ot_user in session.execute(q):
        taken = device_id if device_id in names else ot_user
        as_what = "device id" if device_id in names else "OwnTracks user"
        raise Conflict(f"{taken!r} is already the {as_what} of unit {call_sign}: device ids and "
                       "OwnTracks users share one namespace (each is a broker login)")


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
    _check_login(device_id, "device id")
    if owntracks_user is not None:
        _check_login(owntracks_user, "OwnTracks user")
    if owntracks_device is not None and (any(c in owntracks_device for c in "/+#\x00")
                                         or len(owntracks_device) > 64):
        raise InvalidInput("OwnTracks device may not contain / + # or NUL (max 64 characters)")
    clash = session.scalar(select(Unit.id).where(Unit.call_sign == call_sign))
    if clash is not None:
        raise Conflict(f"a unit with call sign {call_sign[:32]!r} exists")
    _claim_logins(session, [device_id, *([owntracks_user] if owntracks_user else [])],
                  unit_id=None)
    token = token or secrets.token_urlsafe(32)
    unit = Unit(
        call_sign=call_sign, kind=kind, capabilities=list(capabilities), region=region,
        home_zone_id=home_zone_id, status=status, device_id=device_id,
        device_token_hash=hash_token(token), owntracks_user=owntracks_user,
        owntracks_device=owntracks_device, active=True,
    )
    session.add(unit)
    session.flush()
    _queue_broker(session, settings or get_settings(), add=[(n, token) for n in _logins(unit)])
    return unit, token


def rotate_token(*, session: Session, unit: Unit, token: str | None = None,
                 settings: Settings | None = None) -> str:
    """Give the unit a new device token (the old one stops working on every login of the unit,
    HTTP at once and the broker on its next reload); return it in clear."""
    token = token or secrets.token_urlsafe(32)
    unit.device_token_hash = hash_token(token)
    session.flush()
    _queue_broker(session, settings or get_settings(), add=[(n, token) for n in _logins(unit)])
    return token


REVOKED = "revoked"


def deactivate_unit(*, session: Session, unit: Unit, settings: Settings | None = None) -> None:
    """Take a unit out of service for good: refused at once everywhere.

    ``active`` goes false (the ingest processes' device directories reload within about a
    second: the ``unit_directory_version`` trigger), the token hash is replaced by one nothing
    verifies against (HTTP refuses its next request), and after the commit its logins leave the
    broker's password file and the broker is reloaded (Mosquitto then drops its connections and
    refuses the next connect). :func:`activate_unit` brings it back with a new token.
    """
    unit.active = False
    unit.device_token_hash = f"{REVOKED}${datetime.now(UTC).isoformat()}"
    session.flush()
    _queue_broker(session, settings or get_settings(), remove=_logins(unit))


def activate_unit(*, session: Session, unit: Unit, token: str | None = None,
                  settings: Settings | None = None) -> str:
    """Put a deactivated unit back in service with a new device token (returned in clear)."""
    _claim_logins(session, _logins(unit), unit_id=unit.id)
    unit.active = True
    return rotate_token(session=session, unit=unit, token=token, settings=settings)


def active_logins(*, session: Session) -> set[str]:
    """Every broker login an active unit may use (for a full password-file sync)."""
    out: set[str] = set()
    for device_id, ot_user in session.execute(
            select(Unit.device_id, Unit.owntracks_user).where(Unit.active.is_(True))):
        out.add(device_id)
        if ot_user:
            out.add(ot_user)
    return out


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
        raise NotFound(f"unknown device {device_id[:64]!r}")
    if not token or not verify_token(token, unit.device_token_hash):
        raise Unauthenticated(f"wrong or missing token for device {device_id[:64]!r}")
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
