"""Registering calls: references, idempotency, places, classification, phones."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from geodispatch.errors import InvalidInput
from geodispatch.incidents.models import Incident
from geodispatch.incidents.schemas import IncidentCreate
from geodispatch.incidents.service import (
    reclassify,
    register_incident,
    register_incident_ex,
)
from geodispatch.phone import normalise_phone


def test_reference_is_region_year_sequence_without_gaps(make_incident: Callable[..., Incident]
                                                        ) -> None:
    """Consecutive registrations get consecutive numbers of the region and year."""
    a, b = make_incident(), make_incident()
    ra, rb = a.reference.split("-"), b.reference.split("-")
    assert ra[0] == "KV" and ra[1] == str(datetime.now(UTC).year)
    assert int(rb[2]) == int(ra[2]) + 1


def test_rolled_back_registration_returns_its_number(engine: Engine) -> None:
    """A registration that rolls back gives its reference number back (gap-free)."""
    region = "T" + uuid.uuid4().hex[:6].upper()
    body = dict(lat=50.45, lng=30.52, category="theft")
    from geodispatch.settings import get_settings

    s = get_settings().model_copy(update={"default_region": region})
    with Session(engine) as session, session.begin():
        first = register_incident(session=session, data=IncidentCreate(**body), actor="t",
                                  settings=s).reference
        session.rollback()
    with Session(engine) as session, session.begin():
        again = register_incident(session=session, data=IncidentCreate(**body), actor="t",
                                  settings=s).reference
        session.rollback()
    assert first == again


def test_retry_with_same_key_returns_the_same_incident(db: Session,
                                                       make_incident: Callable[..., Incident]
                                                       ) -> None:
    """The same idempotency key never creates a second incident."""
    a = make_incident(idempotency_key="k-" + uuid.uuid4().hex)
    inc, created = register_incident_ex(session=db, data=IncidentCreate(
        lat=50.45, lng=30.52, category="theft", idempotency_key=a.idempotency_key), actor="x")
    assert inc.id == a.id and not created


def test_concurrent_retries_make_one_incident(engine: Engine) -> None:
    """Two simultaneous requests with one key: one incident, both get it."""
    key = "race-" + uuid.uuid4().hex
    ids: list[int] = []
    barrier = threading.Barrier(2)

    def go() -> None:
        with Session(engine) as s, s.begin():
            barrier.wait()
            ids.append(register_incident(session=s, data=IncidentCreate(
                lat=50.45, lng=30.52, category="theft", idempotency_key=key), actor="t").id)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with engine.connect() as c:
        n = c.execute(text("SELECT count(*) FROM incidents WHERE idempotency_key = :k"),
                      {"k": key}).scalar()
    assert n == 1 and len(set(ids)) == 1 and len(ids) == 2


def test_category_defaults_priority_and_unknown_is_other(
        make_incident: Callable[..., Incident]) -> None:
    """Priority comes from the classification; an unknown category still registers the call,
    as ``other`` (the call is never refused for its classification)."""
    assert make_incident(category="robbery").priority == 1
    odd = make_incident(category="no-such-thing")
    assert odd.category == "other" and odd.original_category == "other"


def test_h3_cell_at_incident_resolution(db: Session, make_incident: Callable[..., Incident]
                                        ) -> None:
    """The incident's H3 cell is at settings.h3_incident_res."""
    import h3

    inc = make_incident()
    assert h3.get_resolution(h3.int_to_str(inc.h3)) == 9


@pytest.mark.parametrize("phone,ok", [("+380671112233", True), ("0671112233", False),
                                      ("+3806711", False), ("+1 202 555 0143", True)])
def test_phone_must_be_e164(phone: str, ok: bool) -> None:
    """Caller phones are validated and normalised to E.164."""
    if ok:
        assert normalise_phone(phone).startswith("+")
    else:
        with pytest.raises(InvalidInput):
            normalise_phone(phone)


def test_national_numbers_read_in_the_phone_region() -> None:
    """A number typed without +country code is read as a number of ``phone_region``."""
    assert normalise_phone("067 111 22 33", "UA") == "+380671112233"
    assert normalise_phone("+1 202 555 0143", "UA") == "+12025550143"


def test_reclassification_keeps_original_and_needs_reason(
        db: Session, make_incident: Callable[..., Incident]) -> None:
    """A classification change is an event with a reason; the original stays."""
    inc = make_incident(category="theft")
    with pytest.raises(InvalidInput):
        reclassify(session=db, incident_id=inc.id, category="robbery", reason="", actor="d")
    reclassify(session=db, incident_id=inc.id, category="robbery", reason="weapon seen",
               actor="d")
    assert inc.category == "robbery" and inc.original_category == "theft"
    ev = db.execute(text("SELECT actor, data FROM incident_events WHERE incident_id = :i AND "
                         "kind = 'reclassified'"), {"i": inc.id}).one()
    assert ev[0] == "d" and ev[1]["reason"] == "weapon seen" and ev[1]["from"] == "theft"


def _streets(db: Session) -> None:
    from tests.helpers import index_street

    index_street(db, "вулиця Хрещатик", "LINESTRING(30.5200 50.4500, 30.5220 50.4500)",
                 houses=(("22", 30.5212, 50.4502),))
    index_street(db, "Test Lane", "LINESTRING(30.5210 50.4490, 30.5210 50.4510)")


def test_registration_by_address_keeps_typed_resolved_precision(db: Session) -> None:
    """A call without coordinates is placed at its house; the incident keeps the text as typed,
    the resolved address, the precision and the method, and the record covers them."""
    from tests.helpers import record_findings

    _streets(db)
    inc = register_incident(session=db, data=IncidentCreate(
        address="вул. Хрещатик, буд. 22, кв. 5", category="theft"), actor="ct")
    lat, lng = db.execute(text("SELECT ST_Y(location), ST_X(location) FROM incidents "
                               "WHERE id = :i"), {"i": inc.id}).one()
    assert abs(lat - 50.4502) < 1e-6 and abs(lng - 30.5212) < 1e-6
    assert inc.address == "вул. Хрещатик, буд. 22, кв. 5"
    assert inc.address_resolved == "вулиця Хрещатик, 22, кв. 5"
    assert (inc.location_precision, inc.location_method) == ("house", "house")
    assert record_findings(db, inc.id) == []


def test_registration_at_an_intersection(db: Session) -> None:
    """'A / B' is placed where the two streets meet."""
    _streets(db)
    inc = register_incident(session=db, data=IncidentCreate(
        address="Хрещатик / Test Lane", category="theft"), actor="ct")
    lat, lng = db.execute(text("SELECT ST_Y(location), ST_X(location) FROM incidents "
                               "WHERE id = :i"), {"i": inc.id}).one()
    assert abs(lat - 50.45) < 1e-6 and abs(lng - 30.521) < 1e-6
    assert inc.location_precision == "intersection"


def test_street_only_is_placed_nearest_the_hint_and_said_so(db: Session) -> None:
    """A street without a house number lands on the street nearest the hint, is marked
    street-only, and the warning says so (never silently the middle of the street)."""
    _streets(db)
    warnings: list[str] = []
    inc, _ = register_incident_ex(session=db, data=IncidentCreate(
        address="Хрещатик 999", category="theft", near_lat=50.4495, near_lng=30.5219),
        actor="ct", warnings=warnings)
    lat, lng = db.execute(text("SELECT ST_Y(location), ST_X(location) FROM incidents "
                               "WHERE id = :i"), {"i": inc.id}).one()
    assert abs(lat - 50.45) < 1e-6 and abs(lng - 30.5219) < 1e-6
    assert (inc.location_precision, inc.location_method) == ("street", "street-near-hint")
    assert any("street only" in w and "999" in w for w in warnings), warnings


def test_a_point_is_kept_and_named(db: Session) -> None:
    """Coordinates are the place as given (precision point); reverse geocoding names them."""
    _streets(db)
    inc = register_incident(session=db, data=IncidentCreate(
        lat=50.45021, lng=30.52121, category="theft"), actor="ct")
    assert (inc.location_precision, inc.location_method) == ("point", "coordinates")
    assert inc.address_resolved == "вулиця Хрещатик, 22"


def test_geocoding_that_fails_never_fails_the_registration(db: Session) -> None:
    """A geocoder that raises gives an incident with its place unknown and the text kept."""

    class Broken:
        def forward(self, text: str, near: object = None, limit: int = 5) -> list[object]:
            raise RuntimeError("index unavailable")

        def reverse(self, *, lon: float, lat: float) -> None:
            raise RuntimeError("index unavailable")

    warnings: list[str] = []
    inc, created = register_incident_ex(session=db, data=IncidentCreate(
        address="Хрещатик 22", category="theft"), actor="ct", warnings=warnings,
        geocoder=Broken())
    assert created and inc.location is None and inc.address == "Хрещатик 22"
    assert any("lookup failed" in w for w in warnings)


def test_registration_queues_sms_with_reference(db: Session,
                                                make_incident: Callable[..., Incident]) -> None:
    """Registration puts the caller's SMS in the outbox, in the same transaction."""
    inc = make_incident(caller_lang="en")
    body = db.execute(text("SELECT body FROM sms_outbox WHERE incident_id = :i"),
                      {"i": inc.id}).scalar_one()
    assert inc.reference in body


def test_unresolvable_address_registers_with_location_unknown(db: Session) -> None:
    """The call is registered with the typed text kept and no point; it verifies; it is placed
    on the map later, which is an event of its own."""
    from geodispatch.incidents.service import incident_point, place_incident, register_incident_ex
    from tests.helpers import record_findings

    warnings: list[str] = []
    inc, created = register_incident_ex(session=db, data=IncidentCreate(
        address="behind the old market, Zzz street", description="man with a knife",
        caller_phone="+380671112233"), actor="ct", region="KV", warnings=warnings)
    assert created and inc.location is None and inc.h3 is None
    assert inc.address == "behind the old market, Zzz street"
    assert inc.category == "other" and inc.region == "KV"
    assert any("location unknown" in w for w in warnings)
    assert incident_point(db, inc) is None
    assert record_findings(db, inc.id) == []
    place_incident(session=db, incident_id=inc.id, lat=50.45, lng=30.52, actor="ct",
                   reason="caller described the corner")
    p = incident_point(db, inc)
    assert p is not None and abs(p.lat - 50.45) < 1e-9 and inc.h3 is not None
    kinds = db.execute(text("SELECT kind, data FROM incident_events WHERE incident_id = :i "
                            "ORDER BY incident_seq"), {"i": inc.id}).all()
    assert [k for k, _ in kinds] == ["registered", "located"]
    assert kinds[1][1]["was_unknown"] is True
    assert record_findings(db, inc.id) == []


@pytest.mark.parametrize("body", [
    {"description": "silent call, breathing"},
    {"caller_phone": "+380671112233"},
    {"lat": 91.0, "lng": 30.5, "description": "coordinates out of range"},
    {"lat": 50.45, "description": "only a latitude"},
    {"description": "NUL \x00 in text", "address": "x\x00y"},
])
def test_a_call_is_registered_whatever_its_place(db: Session, body: dict[str, object]) -> None:
    """A phone number or a description is enough to register a call."""
    inc = register_incident(session=db, data=IncidentCreate(**body), actor="ct")
    assert inc.id and inc.reference.startswith("KV-")
    assert "\x00" not in (inc.description or "") + (inc.address or "")


def test_a_change_after_the_last_event_is_recorded_at_commit(
        db: Session, make_incident: Callable[..., Incident]) -> None:
    """The commit-time safety net: a projected row changed through the ORM after its incident's
    last event gets an ``amended`` event, so the record still matches; a change nobody touched
    after recording costs no event."""
    from tests.helpers import record_findings

    inc = make_incident(category="theft")
    db.commit()
    inc.description = "changed after the event, by code that forgot to record it"
    db.commit()
    kinds = db.execute(text("SELECT kind, actor FROM incident_events WHERE incident_id = :i "
                            "ORDER BY incident_seq"), {"i": inc.id}).all()
    assert [k for k, _ in kinds] == ["registered", "amended"]
    assert record_findings(db, inc.id) == []
    db.commit()  # nothing changed: no further event
    n = db.execute(text("SELECT count(*) FROM incident_events WHERE incident_id = :i"),
                   {"i": inc.id}).scalar()
    assert n == 2


def test_a_number_that_is_not_a_phone_gets_no_sms(db: Session) -> None:
    """The number is kept as typed for the call-taker, but no SMS is queued to it."""
    inc = register_incident(session=db, data=IncidentCreate(
        description="caller gave a short number", caller_phone="12"), actor="ct")
    assert inc.caller_phone == "12"
    n = db.execute(text("SELECT count(*) FROM sms_outbox WHERE incident_id = :i"),
                   {"i": inc.id}).scalar()
    assert n == 0


def test_street_only_without_clues_is_placed_nearest_the_zone_centre(db: Session) -> None:
    """With no caller position and no map centre, the region's zones are the hint."""
    import h3

    from tests.helpers import index_street

    index_street(db, "Test Boulevard", "LINESTRING(30.50 50.40, 30.60 50.40)")
    centre_cell = h3.latlng_to_cell(50.41, 30.58, 8)

    class Zones:
        def cells(self, *, region: str | None = None) -> list[int]:
            return [h3.str_to_int(centre_cell)]

        def lookup(self, p: object) -> object:
            from geodispatch.zones.index import ZoneRef

            return ZoneRef(sector_id=None, district_id=None, region="KV")

    inc = register_incident(session=db, data=IncidentCreate(address="Test Boulevard"),
                            actor="ct", zone_index=Zones())
    lng = db.execute(text("SELECT ST_X(location) FROM incidents WHERE id = :i"),
                     {"i": inc.id}).scalar_one()
    assert abs(lng - h3.cell_to_latlng(centre_cell)[1]) < 1e-6
    assert inc.location_method == "street-near-hint"
