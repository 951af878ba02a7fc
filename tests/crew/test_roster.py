"""The crew roster (geodispatch.crew.roster) on the real PostGIS, each test rolled back: sign-on
and sign-off as events of the unit's signed record, one open shift per officer, the shift token,
and verification naming a quiet change to a shift."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.crew import roster
from geodispatch.errors import Conflict, NotFound, PermissionDenied, Unauthenticated
from geodispatch.incidents.record import roster_events
from geodispatch.incidents.verify import verify_record
from geodispatch.ledger.service import public_key
from geodispatch.settings import get_settings
from geodispatch.tracking.models import Unit
from geodispatch.users.service import upsert_user
from tests.dispatch.conftest import KYIV, add_crew


def _officer(db: Session, region: str | None = "KV", role: str = "officer") -> str:
    name = "o_" + uuid.uuid4().hex[:8]
    upsert_user(session=db, username=name, password="pw-" + name, role=role, region=region,
                full_name="Officer " + name)
    return name


def _call_sign(db: Session, unit_id: int) -> str:
    unit = db.get(Unit, unit_id)
    assert unit is not None
    return unit.call_sign


def _findings(db: Session) -> list[str]:
    report = verify_record(session=db, public_key=public_key(get_settings()))
    return [f.what for f in report.findings if f.what.startswith("unit ")
            or "(unit " in f.what]


def test_sign_on_and_off_are_events_of_the_units_record(db: Session) -> None:
    """Sign-on and sign-off append crew_signed_on / crew_signed_off to the unit's record
    (numbered 1, 2, their state the unit's shifts) and the record verifies."""
    u = add_crew(db, KYIV)
    name = _officer(db)
    on = roster.sign_on(session=db, username=name, password="pw-" + name,
                        call_sign=_call_sign(db, u))
    assert on.shift.unit_id == u and on.ended == []
    shift, unit = roster.authenticate_shift(session=db, token=on.token)
    assert shift.id == on.shift.id and unit.id == u
    roster.sign_off(session=db, shift_id=on.shift.id, actor="sup1", reason="end of shift")
    events = roster_events(session=db, unit_id=u)
    assert [(e.kind, e.incident_seq, e.actor) for e in events] == [
        ("crew_signed_on", 1, name), ("crew_signed_off", 2, "sup1")]
    assert events[0].data["username"] == name and events[1].data["reason"] == "end of shift"
    body = events[1].body.decode()
    assert '"unit_seq":2' in body and '"crew_shifts":[' in body
    assert on.token.split(".", 1)[1] not in body  # neither the token...
    assert on.shift.token_hash not in body  # ...nor its hash: the record holds a commitment
    assert _findings(db) == []
    with pytest.raises(Unauthenticated, match="signed off"):
        roster.authenticate_shift(session=db, token=on.token)
    with pytest.raises(Conflict):
        roster.sign_off(session=db, shift_id=on.shift.id, actor="sup1")


def test_an_officer_is_in_one_car_at_a_time(db: Session) -> None:
    """Signing on to a second unit signs the officer off the first (an event on each unit);
    the first shift's token stops working; the roster shows the officer in the second car."""
    u1, u2 = add_crew(db, KYIV), add_crew(db, KYIV)
    name = _officer(db)
    first = roster.sign_on(session=db, username=name, password="pw-" + name,
                           call_sign=_call_sign(db, u1))
    second = roster.sign_on(session=db, username=name, password="pw-" + name,
                            call_sign=_call_sign(db, u2))
    assert second.ended == [first.shift.id]
    assert [e.kind for e in roster_events(session=db, unit_id=u1)] == [
        "crew_signed_on", "crew_signed_off"]
    assert [e.kind for e in roster_events(session=db, unit_id=u2)] == ["crew_signed_on"]
    with pytest.raises(Unauthenticated):
        roster.authenticate_shift(session=db, token=first.token)
    roster.authenticate_shift(session=db, token=second.token)
    now = {r["unit_id"]: r for r in roster.roster(session=db, region="KV")}
    assert [s["username"] for s in now[u2]["on_shift"]] == [name]
    assert u1 not in now
    assert _findings(db) == []


def test_who_may_sign_on(db: Session) -> None:
    """Wrong password, unknown user, a dispatcher, an officer of another region, an unknown
    unit: each refused, and nothing recorded."""
    u = add_crew(db, KYIV)
    cs = _call_sign(db, u)
    name = _officer(db)
    with pytest.raises(Unauthenticated):
        roster.sign_on(session=db, username=name, password="wrong", call_sign=cs)
    with pytest.raises(Unauthenticated):
        roster.sign_on(session=db, username="nobody-" + name, password="x", call_sign=cs)
    disp = _officer(db, role="dispatcher")
    with pytest.raises(PermissionDenied):
        roster.sign_on(session=db, username=disp, password="pw-" + disp, call_sign=cs)
    lviv = _officer(db, region="LV")
    with pytest.raises(PermissionDenied, match="region"):
        roster.sign_on(session=db, username=lviv, password="pw-" + lviv, call_sign=cs)
    with pytest.raises(NotFound):
        roster.sign_on(session=db, username=name, password="pw-" + name, call_sign="NO-SUCH")
    assert roster_events(session=db, unit_id=u) == []


def test_a_token_is_refused_when_the_officer_is_deactivated(db: Session) -> None:
    """A shift token stops working when the officer's account is deactivated."""
    u = add_crew(db, KYIV)
    name = _officer(db)
    on = roster.sign_on(session=db, username=name, password="pw-" + name,
                        call_sign=_call_sign(db, u))
    for bad in (on.token + "x", "7", "x.y", f"{on.shift.id}.", ""):
        with pytest.raises(Unauthenticated):
            roster.authenticate_shift(session=db, token=bad)
    assert roster.open_shifts(session=db, shift_ids=[on.shift.id]) == {on.shift.id}
    db.execute(text("UPDATE users SET active = false WHERE username = :u"), {"u": name})
    with pytest.raises(Unauthenticated):
        roster.authenticate_shift(session=db, token=on.token)
    assert roster.open_shifts(session=db, shift_ids=[on.shift.id]) == set()


def test_a_supervisor_of_another_region_cannot_sign_an_officer_off(db: Session) -> None:
    """A regional supervisor reaches only the shifts of their own region's units."""
    u = add_crew(db, KYIV)
    name = _officer(db)
    on = roster.sign_on(session=db, username=name, password="pw-" + name,
                        call_sign=_call_sign(db, u))
    with pytest.raises(NotFound):
        roster.sign_off(session=db, shift_id=on.shift.id, actor="sup-lv", region="LV")
    roster.sign_off(session=db, shift_id=on.shift.id, actor="sup-kv", region="KV")


def test_a_quiet_change_to_a_shift_is_named(admin_db: Session) -> None:
    """A superuser's UPDATE of a shift without an event (moving the officer to another car
    after the fact) is named by verification with its table and column."""
    u = add_crew(admin_db, KYIV)
    name = _officer(admin_db)
    on = roster.sign_on(session=admin_db, username=name, password="pw-" + name,
                        call_sign=_call_sign(admin_db, u))
    admin_db.flush()
    assert _findings(admin_db) == []
    admin_db.execute(text("UPDATE crew_shifts SET signed_on_at = signed_on_at - interval "
                          "'2 hours' WHERE id = :i"), {"i": on.shift.id})
    found = _findings(admin_db)
    assert any(f"crew_shifts.signed_on_at (row {on.shift.id})" in f for f in found), found
