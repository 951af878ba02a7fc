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
