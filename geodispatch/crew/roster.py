"""The crew roster: an officer's own user signs on to a unit for the shift and off it again.

Who is in which car is recorded as events of the unit's record in the signed log
(:func:`geodispatch.incidents.record.append_roster_event`): ``crew_signed_on`` when an officer
signs on, ``crew_signed_off`` when the officer, a supervisor or a later sign-on ends the shift.
The ``crew_shifts`` rows are their projection, verified against the newest event like every
other projected row.

Sign-on gives the terminal a shift token (``<shift id>.<secret>``, only its SHA-256 is kept).
The crew API accepts it as ``X-Crew-Shift`` (:func:`authenticate_shift`) for as long as the shift
is open, the officer's account active and the unit active: the request after a sign-off is
refused, and the crew stream ends (:mod:`geodispatch.crew.stream`).

An officer has one open shift at a time: signing on to another unit (or the same one again)
signs off the open shift first, in the same transaction. Lock order: the units whose rosters
change, ascending id (as the dispatch workflow locks units), then their shifts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from geodispatch.crew.models import CrewShift
from geodispatch.errors import Conflict, NotFound, PermissionDenied, Unauthenticated
from geodispatch.incidents.record import append_roster_event, iso_utc
from geodispatch.tracking.models import Unit
from geodispatch.users.credentials import OFFICER, hash_password, verify_password
from geodispatch.users.models import User

SIGNED_ON = "crew_signed_on"
SIGNED_OFF = "crew_signed_off"
MAX_REASON = 500


@dataclass(frozen=True)
class SignOn:
    """A new shift and the token the terminal presents (shown once, never stored)."""

    shift: CrewShift
    unit: Unit
    user: User
    token: str
    ended: list[int]  # shifts of the same officer this sign-on signed off


@cache
def _dummy_hash() -> str:
    return hash_password("not-a-real-password")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _lock_units(session: Session, unit_ids: set[int]) -> dict[int, Unit]:
    return {u.id: u for u in session.execute(
        select(Unit).where(Unit.id.in_(sorted(unit_ids))).order_by(Unit.id)
        .with_for_update()).scalars()}


def shift_json(shift: CrewShift, *, full_name: str = "") -> dict[str, Any]:
    return {"shift_id": shift.id, "unit_id": shift.unit_id, "username": shift.username,
            "full_name": full_name, "signed_on_at": iso_utc(shift.signed_on_at),
            "signed_off_at": iso_utc(shift.signed_off_at) if shift.signed_off_at else None,
            "signed_off_by": shift.signed_off_by, "sign_off_reason": shift.sign_off_reason}


def _end(session: Session, shift: CrewShift, unit: Unit, *, actor: str, reason: str | None,
         at: datetime) -> None:
    shift.signed_off_at = at
    shift.signed_off_by = actor
    shift.sign_off_reason = reason
    session.flush()
    append_roster_event(session=session, unit_id=unit.id, kind=SIGNED_OFF, actor=actor, at=at,
                        data={"shift_id": shift.id, "username": shift.username,
                              "call_sign": unit.call_sign, "reason": reason})


def sign_on(*, session: Session, username: str, password: str, call_sign: str) -> SignOn:
    """Check an officer's password and sign them on to the unit ``call_sign`` for the shift.

    Raises Unauthenticated for a wrong username or password, PermissionDenied for a user who is
    not an officer or a unit outside the officer's region, NotFound for an unknown or inactive
    unit. An open shift of the officer (on any unit) is signed off first.
    """
    user = session.scalar(select(User).where(User.username == username, User.active))
    ok = verify_password(password, user.password_hash if user else _dummy_hash())
    if user is None or not ok:
        raise Unauthenticated("wrong username or password")
    if user.role != OFFICER:
        raise PermissionDenied(f"a {user.role} does not sign on to a crew: only an officer does")
    target = session.scalar(select(Unit.id).where(Unit.call_sign == call_sign, Unit.active))
    if target is None:
        raise NotFound(f"no active unit {call_sign[:32]!r}")
    open_shifts = list(session.execute(select(CrewShift).where(
        CrewShift.user_id == user.id, CrewShift.signed_off_at.is_(None))
        .with_for_update()).scalars())
    units = _lock_units(session, {target, *(s.unit_id for s in open_shifts)})
    unit = units[target]
    if not unit.active:
        raise NotFound(f"no active unit {call_sign[:32]!r}")
    if user.region is not None and user.region != unit.region:
        raise PermissionDenied(f"unit {unit.call_sign} is outside your region {user.region}")
    now = datetime.now(UTC)
    for s in open_shifts:
        _end(session, s, units[s.unit_id], actor=user.username, at=now,
             reason=f"signed on to {unit.call_sign}")
    secret = secrets.token_urlsafe(32)
    shift = CrewShift(unit_id=unit.id, user_id=user.id, username=user.username,
                      token_hash=_digest(secret), signed_on_at=now)
    session.add(shift)
    session.flush()
    append_roster_event(session=session, unit_id=unit.id, kind=SIGNED_ON, actor=user.username,
                        at=now, data={"shift_id": shift.id, "username": user.username,
                                      "full_name": user.full_name, "call_sign": unit.call_sign})
    return SignOn(shift=shift, unit=unit, user=user, token=f"{shift.id}.{secret}",
                  ended=[s.id for s in open_shifts])


def sign_off(*, session: Session, shift_id: int, actor: str, reason: str | None = None,
             region: str | None = None) -> CrewShift:
    """End an open shift (the officer's own sign-off, or a supervisor's: ``region`` is the
    supervisor's, None for every region). Conflict when it has ended already."""
    shift = session.get(CrewShift, shift_id)
    if shift is None:
        raise NotFound(f"shift {shift_id} not found")
    unit = _lock_units(session, {shift.unit_id})[shift.unit_id]
    if region is not None and unit.region != region:
        raise NotFound(f"shift {shift_id} not found")
    session.refresh(shift, with_for_update=True)
    if shift.signed_off_at is not None:
        raise Conflict(f"shift {shift_id} of {shift.username} ended at "
                       f"{iso_utc(shift.signed_off_at)}")
    why = (reason or "").strip()[:MAX_REASON] or None
    _end(session, shift, unit, actor=actor, reason=why, at=datetime.now(UTC))
    return shift


def authenticate_shift(*, session: Session, token: str) -> tuple[CrewShift, Unit]:
    """The open shift and unit of a crew app's shift token; Unauthenticated when the token is
    wrong, the shift ended, the officer's account or the unit is no longer active."""
    sid, _, secret = token.partition(".")
    if not sid.isdigit() or len(sid) > 10 or not secret:
        raise Unauthenticated("malformed shift token")
    row = session.execute(
        select(CrewShift, Unit).join(Unit, Unit.id == CrewShift.unit_id)
        .join(User, User.id == CrewShift.user_id)
        .where(CrewShift.id == int(sid), User.active.is_(True), User.role == OFFICER)).first()
    if row is None or not hmac.compare_digest(row[0].token_hash, _digest(secret)):
        raise Unauthenticated("unknown shift token")
    shift, unit = row
    if shift.signed_off_at is not None:
        raise Unauthenticated(f"signed off the unit at {iso_utc(shift.signed_off_at)}"
                              + (f" by {shift.signed_off_by}" if shift.signed_off_by else ""))
    if not unit.active:
        raise Unauthenticated(f"unit {unit.call_sign} is not active")
    return shift, unit


def open_shifts(*, session: Session, shift_ids: list[int]) -> set[int]:
    """Which of these shifts are still open, with an active officer on an active unit."""
    if not shift_ids:
        return set()
    return set(session.execute(
        select(CrewShift.id).join(Unit, Unit.id == CrewShift.unit_id)
        .join(User, User.id == CrewShift.user_id)
        .where(CrewShift.id.in_(shift_ids), CrewShift.signed_off_at.is_(None),
               User.active.is_(True), Unit.active.is_(True))).scalars())


def roster(*, session: Session, region: str | None, since: datetime | None = None
           ) -> list[dict[str, Any]]:
    """Who is in which car: every active unit of ``region`` (None: all) with its officers on
    shift, and (``since``) the shifts that ended after ``since``."""
    q = (select(CrewShift, User.full_name, Unit)
         .join(Unit, Unit.id == CrewShift.unit_id).join(User, User.id == CrewShift.user_id)
         .order_by(Unit.call_sign, CrewShift.signed_on_at))
    if region is not None:
        q = q.where(Unit.region == region)
    if since is None:
        q = q.where(CrewShift.signed_off_at.is_(None))
    else:
        q = q.where((CrewShift.signed_off_at.is_(None)) | (CrewShift.signed_off_at >= since))
    units: dict[int, dict[str, Any]] = {}
    for shift, full_name, unit in session.execute(q):
        entry = units.setdefault(unit.id, {
            "unit_id": unit.id, "call_sign": unit.call_sign, "region": unit.region,
            "status": unit.status, "on_shift": [], "ended": []})
        key = "on_shift" if shift.signed_off_at is None else "ended"
        entry[key].append(shift_json(shift, full_name=full_name))
    return list(units.values())
