"""The life of a call, from the first ring to its outcome, each step an event in its record.

A phone system (the SIP edge, Asterisk, any system through the JSON webhook) reports signalling:
:func:`ring` creates the record at the first ring, before anyone answers (idempotent on the
system's own call id, so a resent report is one call); :func:`answer`, :func:`hang_up` and
:func:`transfer` follow it. A call hung up while ringing is *abandoned*: it becomes a callback
task and the caller gets an SMS ("we missed your call; we will call you back") unless the number
opted out. An answered call cannot be closed without an outcome (:func:`set_outcome`,
:func:`close_call`); one that has hung up and has its outcome is closed at once.

Every change appends an event to the call's own record
(:func:`geodispatch.incidents.record.append_call_event`) in the caller's transaction; the
sequencer seals it into the signed log with the incidents' events.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geodispatch.calls.models import OUTCOMES, Call, CallCallback, CallLocation
from geodispatch.db import get_row
from geodispatch.errors import Conflict, InvalidInput, NotFound
from geodispatch.incidents.models import Incident
from geodispatch.incidents.nearby import NearbyIncident, nearby_open_incidents
from geodispatch.incidents.record import (
    CallEventSpec,
    append_call_event,
    append_first_call_events,
)
from geodispatch.notify.outbox import enqueue_sms_to
from geodispatch.phone import normalise_phone
from geodispatch.settings import Settings, get_settings

log = logging.getLogger(__name__)

#: Outcomes that name the incident the call belongs to.
NEEDS_INCIDENT = frozenset({"new_incident", "additional_caller"})


def caller_number(raw: str | None, settings: Settings) -> str | None:
    """The caller's number in E.164 when it is a valid number, else as given (None if absent).

    A call is never refused for its number: anonymous and odd numbers are recorded as they are.
    """
    if raw is None or not raw.strip():
        return None
    text_ = raw.strip()
    if text_.lower().startswith(("sip:", "tel:")):
        text_ = text_.split(":", 1)[1].split("@", 1)[0].split(";", 1)[0]
    try:
        return normalise_phone(text_, settings.phone_region)
    except InvalidInput:
        return text_[:64]


def _utc(at: datetime | None) -> datetime:
    when = at or datetime.now(UTC)
    if when.tzinfo is None:
        raise InvalidInput("times must carry a time zone (ISO-8601 with Z or an offset)")
    return when.astimezone(UTC)


def get_call(*, session: Session, call_id: int, lock: bool = False) -> Call:
    if lock:  # re-read under the lock: what another transaction committed meanwhile is kept
        call = session.get(Call, call_id, with_for_update=True, populate_existing=True)
        if call is None:
            raise NotFound(f"call {call_id} not found")
        return call
    return get_row(session, Call, call_id, what="call")


def find_call(*, session: Session, source: str, external_id: str, lock: bool = False
              ) -> Call | None:
    stmt = select(Call).where(Call.source == source, Call.external_id == external_id)
    if lock:
        stmt = stmt.with_for_update()
    return session.execute(stmt).scalar_one_or_none()


def ring(*, session: Session, source: str, external_id: str, caller: str | None,
         line: str | None = None, at: datetime | None = None, actor: str = "phone",
         settings: Settings | None = None) -> tuple[Call, bool]:
    """Record a call at its first ring; return it and whether it was created now.

    Its queue position is one more than the calls ringing when it started. Locations that
    arrived for the number within the matching window before the ring are attached to it.
    """
    settings = settings or get_settings()
    if not external_id or len(external_id) > 255:
        raise InvalidInput("a call needs the phone system's call id (1..255 characters)")
    existing = find_call(session=session, source=source, external_id=external_id)
    if existing is not None:
        return existing, False
    when = _utc(at)
    phone = caller_number(caller, settings)
    ahead = session.execute(select(func.count()).select_from(Call).where(
        Call.state == "ringing", Call.ring_at <= when)).scalar_one()
    try:
        with session.begin_nested():
            call = Call(source=source, external_id=external_id, caller_phone=phone,
                        line=(line or settings.calls_default_line)[:64], ring_at=when,
                        recorded_at=datetime.now(UTC), queue_position=int(ahead) + 1,
                        state="ringing", note="")
            session.add(call)
            session.flush()
    except IntegrityError:
        again = find_call(session=session, source=source, external_id=external_id)
        if again is None:
            raise Conflict("the call's first report collided and the other vanished") from None
        return again, False
    append_call_event(session=session, call_id=call.id, kind="rang", actor=actor, at=when, data={
        "source": source, "external_id": external_id, "line": call.line,
        "queue_position": call.queue_position, "has_number": phone is not None})
    window = timedelta(seconds=settings.calls_location_window_s)
    if phone:
        waiting = session.execute(select(CallLocation).where(
            CallLocation.phone == phone, CallLocation.call_id.is_(None),
            CallLocation.received_at >= when - window, CallLocation.received_at <= when + window)
            .order_by(CallLocation.received_at, CallLocation.id)).scalars().all()
        for loc in waiting:
            _attach(session, call, loc, actor)
    return call, True


@dataclass(frozen=True)
class Ring:
    """One first report of a call for :func:`ring_many`."""

    external_id: str
    caller: str | None
    line: str | None = None
    at: datetime | None = None


def ring_many(*, session: Session, source: str, rings: Sequence[Ring], actor: str = "phone",
              settings: Settings | None = None) -> dict[str, tuple[Call, bool]]:
    """:func:`ring` for many calls at once (a burst's INVITEs reported together): the same rows
    and events, in a handful of statements whatever their number. Returns external id ->
    (call, created now); a call id given twice is one call (its first report counts)."""
    settings = settings or get_settings()
    first: dict[str, Ring] = {}
    for r in rings:
        if not r.external_id or len(r.external_id) > 255:
            raise InvalidInput("a call needs the phone system's call id (1..255 characters)")
        first.setdefault(r.external_id, r)
    if not first:
        return {}
    phones = {ext: caller_number(r.caller, settings) for ext, r in first.items()}
    whens = {ext: _utc(r.at) for ext, r in first.items()}
    order = sorted(first, key=lambda ext: whens[ext])
    # One round trip: which of these the centre has already, how many calls were ringing when
    # each of the others started (as ring() counts them), which numbers have a location waiting.
    known, ahead, waiting_for = session.execute(text(
        "SELECT (SELECT coalesce(array_agg(external_id), '{}') FROM calls"
        "        WHERE source = :s AND external_id = ANY(:ids)),"
        "       (SELECT array_agg((SELECT count(*) FROM calls c WHERE c.state = 'ringing'"
        "                          AND c.ring_at <= t.w) ORDER BY t.o)"
        "        FROM unnest(CAST(:ws AS timestamptz[])) WITH ORDINALITY AS t(w, o)),"
        "       (SELECT coalesce(array_agg(DISTINCT phone), '{}') FROM call_locations"
        "        WHERE call_id IS NULL AND phone = ANY(:phones))"),
        {"s": source, "ids": order, "ws": [whens[e] for e in order],
         "phones": sorted({p for p in phones.values() if p})}).one()
    known = set(known)
    out: dict[str, tuple[Call, bool]] = {}
    if known:
        for c in session.execute(select(Call).where(
                Call.source == source, Call.external_id.in_(list(known)))).scalars():
            out[c.external_id] = (c, False)
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    k = 0
    for ext, n_ahead in zip(order, ahead, strict=True):
        if ext in known:
            continue
        r = first[ext]
        rows.append({"source": source, "external_id": ext, "caller_phone": phones[ext],
                     "line": (r.line or settings.calls_default_line)[:64], "ring_at": whens[ext],
                     "recorded_at": now, "queue_position": int(n_ahead) + k + 1,
                     "state": "ringing", "note": "", "event_count": 1})
        k += 1
    if not rows:
        return out
    # The rows come back as the database stored them: their first events are projected from
    # them (append_first_call_events), nothing is read again.
    made = list(session.scalars(
        pg_insert(Call).on_conflict_do_nothing(constraint="uq_calls_source_external_id")
        .returning(Call), rows))
    specs = []
    for c in made:
        specs.append(CallEventSpec(call_id=c.id, kind="rang", actor=actor, at=c.ring_at, data={
            "source": source, "external_id": c.external_id, "line": c.line,
            "queue_position": c.queue_position, "has_number": c.caller_phone is not None}))
        out[c.external_id] = (c, True)
    append_first_call_events(session=session, events=specs, rows={c.id: c for c in made})
    lost = [ext for ext in first if ext not in out]
    if lost:  # recorded by another transaction between our look and our insert
        for c2 in session.execute(select(Call).where(Call.source == source,
                                                     Call.external_id.in_(lost))).scalars():
            out[c2.external_id] = (c2, False)
    # Locations that arrived for these numbers before the ring (AML sent as the call started).
    if waiting_for:
        window = timedelta(seconds=settings.calls_location_window_s)
        by_phone: dict[str, list[Call]] = {}
        for c in made:
            if c.caller_phone is not None and c.caller_phone in waiting_for:
                by_phone.setdefault(c.caller_phone, []).append(c)
        waiting = session.execute(select(CallLocation).where(
            CallLocation.phone.in_(list(by_phone)), CallLocation.call_id.is_(None))
            .order_by(CallLocation.received_at, CallLocation.id)).scalars().all()
        for loc in waiting:
            match = [c for c in by_phone.get(loc.phone or "", [])
                     if c.ring_at - window <= loc.received_at <= c.ring_at + window]
            if match:
                _attach(session, max(match, key=lambda c: (c.ring_at, c.id)), loc, actor)
    return out


def answer(*, session: Session, call: Call, operator: str, at: datetime | None = None,
           actor: str | None = None) -> Call:
    """A call-taker picked up. Answering again by the same operator changes nothing."""
    when = _utc(at)
    if call.state != "ringing":
        if call.answered_at is not None and call.operator == operator:
            return call
        raise Conflict(f"call {call.id} is {call.state}, it cannot be answered")
    if when < call.ring_at:
        when = call.ring_at  # a phone system's clock behind ours: never answered before it rang
    call.state, call.answered_at, call.operator = "answered", when, operator[:64]
    append_call_event(session=session, call_id=call.id, kind="answered",
                      actor=actor or operator, at=when, data={
                          "operator": operator, "wait_s": round(
                              (when - call.ring_at).total_seconds(), 3)})
    return call


def hang_up(*, session: Session, call: Call, at: datetime | None = None, actor: str = "phone",
            reason: str = "") -> Call:
    """The line went down. While ringing the call is abandoned: a callback and an SMS."""
    when = max(_utc(at), call.ring_at)
    if call.ended_at is not None or call.state in ("abandoned", "closed"):
        return call  # a repeated report
    call.ended_at = when
    if call.state == "ringing":
        call.state = "abandoned"
        cb = CallCallback(call_id=call.id, phone=call.caller_phone, created_at=when,
                          status="pending", note="")
        session.add(cb)
        session.flush()
        msg, why = enqueue_sms_to(session=session, phone=call.caller_phone,
                                  template="missed_call")
        cb.sms_id = msg.id if msg is not None else None
        cb.sms_skipped = None if msg is not None else why
        append_call_event(session=session, call_id=call.id, kind="abandoned", actor=actor,
                          at=when, data={"reason": reason[:200], "callback_id": cb.id,
                                         "sms": why, "wait_s": round(
                                             (when - call.ring_at).total_seconds(), 3)})
        return call
    call.state = "closed" if call.outcome is not None else "ended"
    if call.state == "closed":
        call.closed_at = when
    append_call_event(session=session, call_id=call.id, kind="hung_up", actor=actor, at=when,
                      data={"reason": reason[:200], "closed": call.state == "closed"})
    return call


def transfer(*, session: Session, call: Call, to: str, at: datetime | None = None,
             actor: str = "phone") -> Call:
    """The phone system moved the call elsewhere (another centre, an agency, a queue)."""
    when = max(_utc(at), call.ring_at)
    if call.state in ("abandoned", "closed"):
        raise Conflict(f"call {call.id} is {call.state}")
    call.transferred_to = to[:128]
    if call.outcome is None:
        call.outcome, call.outcome_at, call.outcome_by = "transferred", when, actor[:64]
    call.ended_at = call.ended_at or when
    call.state, call.closed_at = "closed", when
    append_call_event(session=session, call_id=call.id, kind="transferred", actor=actor,
                      at=when, data={"to": to[:128], "answered": call.answered_at is not None})
    return call


def _incident(session: Session, reference: str | None, incident_id: int | None) -> Incident:
    if incident_id is not None:
        inc = session.get(Incident, incident_id)
    elif reference:
        inc = session.execute(select(Incident).where(
            Incident.reference == reference.strip())).scalar_one_or_none()
    else:
        raise InvalidInput("this outcome needs the incident (reference or id)")
    if inc is None:
        raise NotFound(f"incident {reference or incident_id} not found")
    return inc


def set_outcome(*, session: Session, call: Call, outcome: str, actor: str,
                incident_reference: str | None = None, incident_id: int | None = None,
                transferred_to: str | None = None, note: str = "",
                at: datetime | None = None) -> Call:
    """Record what an answered call was; a call that already hung up is closed by it.

    ``new_incident`` and ``additional_caller`` name the incident (by reference or id); the
    call is linked to it. The outcome may be corrected while the call is open.
    """
    if outcome not in OUTCOMES:
        raise InvalidInput(f"unknown outcome {outcome[:32]!r}; one of {', '.join(OUTCOMES)}")
    if call.answered_at is None:
        raise Conflict(f"call {call.id} was never answered: it has no outcome to record")
    if call.state == "closed":
        raise Conflict(f"call {call.id} is closed")
    when = _utc(at)
    linked = None
    if outcome in NEEDS_INCIDENT:
        linked = _incident(session, incident_reference, incident_id)
    previous = call.outcome
    call.outcome, call.outcome_at, call.outcome_by = outcome, when, actor[:64]
    call.incident_id = linked.id if linked is not None else None
    if outcome == "transferred" and transferred_to:
        call.transferred_to = transferred_to[:128]
    if note:
        call.note = note[:2000]
    if call.state == "ended":
        call.state, call.closed_at = "closed", when
    append_call_event(session=session, call_id=call.id, kind="outcome", actor=actor, at=when,
                      data={"outcome": outcome, "previous": previous,
                            "incident": linked.reference if linked is not None else None,
                            "transferred_to": call.transferred_to, "note": note[:2000],
                            "closed": call.state == "closed"})
    return call


def close_call(*, session: Session, call: Call, actor: str, at: datetime | None = None) -> Call:
    """Close a call; an answered call without an outcome is refused (the rule of the centre)."""
    if call.state == "closed":
        return call
    if call.state in ("ringing", "abandoned"):
        raise Conflict(f"call {call.id} is {call.state}: only an answered call is closed")
    if call.outcome is None:
        raise Conflict(f"call {call.id} has no outcome: record what the call was before closing")
    when = _utc(at)
    call.ended_at = call.ended_at or when
    call.state, call.closed_at = "closed", when
    append_call_event(session=session, call_id=call.id, kind="closed", actor=actor, at=when)
    return call


def complete_callback(*, session: Session, callback_id: int, status: str, actor: str,
                      note: str = "", at: datetime | None = None) -> CallCallback:
    """A call-taker called the number back: ``done`` (reached) or ``failed``."""
    if status not in ("done", "failed"):
        raise InvalidInput("a callback is done or failed")
    cb = session.get(CallCallback, callback_id, with_for_update=True)
    if cb is None:
        raise NotFound(f"callback {callback_id} not found")
    if cb.status != "pending":
        raise Conflict(f"callback {callback_id} is already {cb.status}")
    when = _utc(at)
    cb.status, cb.done_at, cb.done_by, cb.note = status, when, actor[:64], note[:2000]
    append_call_event(session=session, call_id=cb.call_id, kind=f"callback_{status}",
                      actor=actor, at=when, data={"callback_id": cb.id, "note": note[:2000]})
    return cb


# --- caller locations ---------------------------------------------------------------------------

def _attach(session: Session, call: Call, loc: CallLocation, actor: str) -> None:
    loc.call_id, loc.matched_at = call.id, datetime.now(UTC)
    append_call_event(session=session, call_id=call.id, kind="located", actor=actor, data={
        "location_id": loc.id, "kind": loc.kind, "lat": loc.lat, "lng": loc.lng,
        "radius_m": loc.radius_m, "method": loc.method,
        "fix_at": loc.fix_at.isoformat() if loc.fix_at else None})


def add_location(*, session: Session, kind: str, phone: str | None, lat: float | None,
                 lng: float | None, radius_m: float | None, fix_at: datetime | None,
                 method: str | None, confidence: int | None, raw: str,
                 received_at: datetime | None = None, call: Call | None = None,
                 actor: str = "phone", settings: Settings | None = None) -> CallLocation:
    """Store a caller location and match it to the call from the same number that rang within
    the window (the newest such call); otherwise it waits unmatched for a call to ring.

    ``call`` attaches it directly (a PIDF-LO body of the call's own INVITE).
    """
    settings = settings or get_settings()
    when = _utc(received_at)
    number = caller_number(phone, settings)
    loc = CallLocation(kind=kind, phone=number, received_at=when, lat=lat, lng=lng,
                       radius_m=radius_m, fix_at=fix_at, method=method, confidence=confidence,
                       raw=raw)
    session.add(loc)
    session.flush()
    if call is None and number:
        window = timedelta(seconds=settings.calls_location_window_s)
        call = session.execute(select(Call).where(
            Call.caller_phone == number, Call.ring_at >= when - window,
            Call.ring_at <= when + window).order_by(Call.ring_at.desc(), Call.id.desc())
            .limit(1).with_for_update()).scalar_one_or_none()
    if call is not None:
        _attach(session, call, loc, actor)
    return loc


def latest_locations(*, session: Session, call_ids: list[int]) -> dict[int, CallLocation]:
    """The newest location of each of these calls, in one query (the call-taker's list)."""
    if not call_ids:
        return {}
    rows = session.execute(select(CallLocation).where(CallLocation.call_id.in_(call_ids))
                           .ext(distinct_on(CallLocation.call_id))
                           .order_by(CallLocation.call_id, CallLocation.received_at.desc(),
                                     CallLocation.id.desc())).scalars()
    return {int(x.call_id): x for x in rows if x.call_id is not None}


def latest_location(*, session: Session, call_id: int) -> CallLocation | None:
    """The newest location matched to a call (later updates replace earlier ones on screen)."""
    return session.execute(select(CallLocation).where(CallLocation.call_id == call_id)
                           .order_by(CallLocation.received_at.desc(), CallLocation.id.desc())
                           .limit(1)).scalar_one_or_none()


# --- the call-taker's duplicate check -----------------------------------------------------------

#: Incident states in which a second caller is attached rather than a new incident created.
OPEN_INCIDENT_STATES = ("registered", "queued", "assigned", "en_route", "on_scene")


def nearby_for_call(*, session: Session, call: Call, lat: float | None, lng: float | None,
                    category: str | None, region: str | None, now: datetime | None = None,
                    settings: Settings | None = None) -> list[NearbyIncident]:
    """Open incidents ``call`` may be a second report of: the one duplicate check
    (:func:`geodispatch.incidents.nearby.nearby_open_incidents`) around ``lat``/``lng`` and
    from the call's number, received within ``calls_nearby_window_s``, within
    ``calls_nearby_radius_m`` (of the same category once one is chosen)."""
    settings = settings or get_settings()
    return nearby_open_incidents(
        session=session, lat=lat, lng=lng, phone=call.caller_phone,
        radius_m=settings.calls_nearby_radius_m, category=category, region=region,
        since=_utc(now) - timedelta(seconds=settings.calls_nearby_window_s),
        statuses=OPEN_INCIDENT_STATES)


# --- what a supervisor sees ---------------------------------------------------------------------

@dataclass(frozen=True)
class QueueStats:
    ringing: int
    longest_wait_s: float | None
    answered: int
    answered_within_target: int
    answered_within_target_share: float | None
    target_s: float
    abandoned: int
    awaiting_callback: int
    answered_without_outcome: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def stats(*, session: Session, since: datetime | None = None, until: datetime | None = None,
          now: datetime | None = None, settings: Settings | None = None) -> QueueStats:
    """The live queue and the answering figures of calls that rang in ``[since, until)``
    (default: the last 24 hours)."""
    settings = settings or get_settings()
    now = _utc(now)
    since = _utc(since) if since is not None else now - timedelta(hours=24)
    until = _utc(until) if until is not None else now + timedelta(days=1)
    target = settings.calls_answer_target_s
    ringing, oldest = session.execute(select(func.count(), func.min(Call.ring_at)).where(
        Call.state == "ringing")).one()
    answered, within = session.execute(select(
        func.count(Call.answered_at),
        func.count(Call.answered_at).filter(
            func.extract("epoch", Call.answered_at - Call.ring_at) <= target)).where(
        Call.ring_at >= since, Call.ring_at < until)).one()
    abandoned = session.execute(select(func.count()).select_from(Call).where(
        Call.ring_at >= since, Call.ring_at < until, Call.state == "abandoned")).scalar_one()
    awaiting = session.execute(select(func.count()).select_from(CallCallback).where(
        CallCallback.status == "pending")).scalar_one()
    no_outcome = session.execute(select(func.count()).select_from(Call).where(
        Call.answered_at.is_not(None), Call.outcome.is_(None))).scalar_one()
    return QueueStats(
        ringing=int(ringing), longest_wait_s=None if oldest is None else round(
            max(0.0, (now - oldest).total_seconds()), 3),
        answered=int(answered), answered_within_target=int(within),
        answered_within_target_share=None if not answered else round(within / answered, 4),
        target_s=target, abandoned=int(abandoned), awaiting_callback=int(awaiting),
        answered_without_outcome=int(no_outcome))


def shift_report(*, session: Session, start: datetime, end: datetime,
                 settings: Settings | None = None) -> dict[str, Any]:
    """The end-of-shift report: the shift's figures, per operator, and every answered call
    still without an outcome, naming who answered it (the number must be zero)."""
    settings = settings or get_settings()
    start, end = _utc(start), _utc(end)
    if end <= start:
        raise InvalidInput("the shift must end after it starts")
    calls = session.execute(select(Call).where(Call.ring_at >= start, Call.ring_at < end)
                            .order_by(Call.id)).scalars().all()
    target = settings.calls_answer_target_s
    per_op: dict[str, dict[str, int]] = {}
    missing = []
    outcomes: dict[str, int] = {}
    for c in calls:
        if c.answered_at is not None:
            op = per_op.setdefault(c.operator or "?", {"answered": 0, "without_outcome": 0,
                                                       "within_target": 0})
            op["answered"] += 1
            if (c.answered_at - c.ring_at).total_seconds() <= target:
                op["within_target"] += 1
            if c.outcome is None:
                op["without_outcome"] += 1
                missing.append({"call_id": c.id, "operator": c.operator,
                                "answered_at": c.answered_at.isoformat(), "state": c.state})
        if c.outcome:
            outcomes[c.outcome] = outcomes.get(c.outcome, 0) + 1
    answered = sum(o["answered"] for o in per_op.values())
    within = sum(o["within_target"] for o in per_op.values())
    return {
        "start": start.isoformat(), "end": end.isoformat(), "calls": len(calls),
        "answered": answered, "abandoned": sum(1 for c in calls if c.state == "abandoned"),
        "answered_within_target_share": round(within / answered, 4) if answered else None,
        "target_s": target, "outcomes": outcomes, "operators": per_op,
        "answered_without_outcome": len(missing), "without_outcome": missing,
        "ok": not missing,
    }
