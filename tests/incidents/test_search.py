"""Incident search at the service: the zone filter (sector or district code) and the phone rule."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.errors import InvalidInput
from geodispatch.incidents.models import Incident
from geodispatch.incidents.service import IncidentSearch, list_incidents


def test_zone_filter_matches_sector_or_district(db: Session,
                                                make_incident: Callable[..., Incident]) -> None:
    """An incident is found by its sector's code and by its district's code, not by another."""
    tag = uuid.uuid4().hex[:6].upper()
    ids = {}
    for level in ("district", "sector", "other"):
        ids[level] = db.execute(text(
            "INSERT INTO zones (code, name, level, region, res, cells) VALUES "
            "(:c, 'test', :lvl, 'KV', 8, '{}') RETURNING id"),
            {"c": f"S-{tag}-{level}", "lvl": "sector" if level == "other" else level}
        ).scalar_one()
    inc = make_incident()
    inc.sector_id, inc.district_id = ids["sector"], ids["district"]
    db.flush()
    for level, found in (("sector", True), ("district", True), ("other", False)):
        got = list_incidents(session=db, region="KV",
                             search=IncidentSearch(zone=f"S-{tag}-{level}"))
        assert (inc.id in [i.id for i in got]) is found, level
    with pytest.raises(InvalidInput, match="unknown zone"):
        list_incidents(session=db, region="KV", search=IncidentSearch(zone="S-NONE"))


def test_phone_matches_only_when_allowed(db: Session,
                                         make_incident: Callable[..., Incident]) -> None:
    """The caller's digits find the incident only with ``match_phone``."""
    inc = make_incident(caller_phone="+380671239876")
    q = IncidentSearch(q="067 123 98 76")
    assert inc.id in [i.id for i in list_incidents(session=db, region="KV", search=q,
                                                   match_phone=True)]
    assert inc.id not in [i.id for i in list_incidents(session=db, region="KV", search=q)]


def test_text_search_gives_the_newest_matches_of_every_kind(
        db: Session, make_incident: Callable[..., Incident]) -> None:
    """Matches by address, resolved address, reference and crew, newest first, cut at the
    limit across all of them (each kind of match is its own query, merged)."""
    from datetime import UTC, datetime, timedelta

    tag = uuid.uuid4().hex[:8].upper()
    t0 = datetime.now(UTC) - timedelta(days=300)
    typed = make_incident(address=f"{tag} Street 1", received_at=t0)
    resolved = make_incident(received_at=t0 + timedelta(days=1))
    resolved.address_resolved = f"{tag} Avenue, Kyiv"
    other = make_incident(received_at=t0 + timedelta(days=2))
    crewed = make_incident(received_at=t0 + timedelta(days=3))
    unit_id = db.execute(text(
        "INSERT INTO units (call_sign, kind, capabilities, region, status, status_changed_at, "
        "device_id, device_token_hash, active) VALUES (:c, 'patrol_car', '{}', 'KV', "
        "'available', now(), :d, 'x', true) RETURNING id"),
        {"c": f"P-{tag}", "d": f"dev-{tag.lower()}"}).scalar_one()
    db.execute(text("INSERT INTO assignments (incident_id, unit_id, status, is_lead, "
                    "was_recommended, created_by, dispatched_at) "
                    "VALUES (:i, :u, 'cleared', true, true, 'd1', now())"),
               {"i": crewed.id, "u": unit_id})
    db.flush()

    def found(q: str, limit: int = 50) -> list[int]:
        return [i.id for i in list_incidents(session=db, region="KV",
                                             search=IncidentSearch(q=q), limit=limit)]

    assert found(tag) == [crewed.id, resolved.id, typed.id]
    assert found(tag, limit=2) == [crewed.id, resolved.id]
    assert found(other.reference) == [other.id]
    assert found(tag.lower()) == [crewed.id, resolved.id, typed.id], "case does not matter"
    assert found(f"{tag}%") == [], "a % in the text is a character, not a wildcard"
