"""The supervisor's board: crews by sector with status, time in it, incident and fix age; joint
actions with their crews and lead; only live work, only the caller's region."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.dispatch.board import supervisor_board
from geodispatch.dispatch.workflow import assign, crew_status_report, set_lead
from geodispatch.geo import LatLng
from geodispatch.incidents.models import Incident
from geodispatch.settings import Settings
from geodispatch.zones.cells import cell_of

FAR = LatLng(10.0, 10.0)  # a sector of the test's own, far from every imported zone


def _sector(db: Session, settings: Settings, code: str, at: LatLng | None) -> int:
    zid = int(db.execute(text(
        "INSERT INTO zones (code, name, level, region, res, cells) VALUES "
        "(:c, :n, 'sector', 'KV', :r, '{}') RETURNING id"),
        {"c": code, "n": f"Sector {code}", "r": settings.h3_zone_res}).scalar_one())
    if at is not None:
        db.execute(text("INSERT INTO zone_cells (cell, level, zone_id) VALUES (:c, 'sector', :z)"),
                   {"c": cell_of(at, settings.h3_zone_res), "z": zid})
    return zid


def _crews(board: dict[str, Any], ids: set[int]) -> dict[int, tuple[Any, dict[str, Any]]]:
    """unit id -> (its zone's id, its line) for our crews."""
    return {c["unit_id"]: (z["zone_id"], c) for z in board["zones"] for c in z["crews"]
            if c["unit_id"] in ids}


def test_crews_grouped_by_the_sector_they_are_in(
    db: Session, settings: Settings, crew: Callable[..., int],
) -> None:
    """By the newest fix's sector; without a fix (or outside every sector) by the home sector;
    else under no zone. Each line has status, time in it, fix age and staleness."""
    tag = uuid.uuid4().hex[:6].upper()
    here = _sector(db, settings, f"B-{tag}-1", FAR)
    home = _sector(db, settings, f"B-{tag}-2", None)
    inside = crew(FAR, fix_age_s=30)
    homed = crew(None, home_zone_id=home)
    outside_homed = crew(LatLng(-60.0, -60.0), home_zone_id=home, fix_age_s=600)
    lost = crew(None, status="off_duty")
    db.execute(text("UPDATE units SET status_changed_at = now() - interval '20 minutes'"
                    " WHERE id = :u"), {"u": inside})
    board = supervisor_board(session=db, region="KV", settings=settings).to_dict()
    mine = _crews(board, {inside, homed, outside_homed, lost})
    assert mine[inside][0] == here and mine[inside][1]["zone_source"] == "position"
    assert mine[homed][0] == home and mine[homed][1]["zone_source"] == "home"
    assert mine[outside_homed][0] == home
    assert mine[lost][0] is None and mine[lost][1]["zone_source"] is None
    line = mine[inside][1]
    assert line["status"] == "available" and line["incident"] is None
    assert 1190 < line["seconds_in_status"] < 1300
    assert 25 < line["fix_age_s"] < 120 and line["stale"] is False
    assert mine[outside_homed][1]["stale"] is True and mine[lost][1]["fix_age_s"] is None
    zones = {z["zone_id"]: z for z in board["zones"]}
    assert zones[here]["code"] == f"B-{tag}-1" and zones[here]["name"] == f"Sector B-{tag}-1"
    assert zones[home]["counts"] == {"available": 2}
    assert board["zones"][-1]["zone_id"] is None  # "no zone" comes last
    assert board["counts"]["available"] >= 3


def test_crew_lines_name_their_incident_and_joint_actions_their_lead(
    db: Session, settings: Settings, crew: Callable[..., int],
    incident: Callable[..., Incident],
) -> None:
    """Two crews on one incident: both lines carry its reference and category, the joint action
    lists both and the lead (moved by set_lead); a closed incident is on neither."""
    inc = incident(category="robbery")
    solo_inc = incident(category="theft")
    a, b, solo = crew(), crew(), crew()
    assign(session=db, incident_id=inc.id, unit_id=a, actor="d", override_reason="r")
    assign(session=db, incident_id=inc.id, unit_id=b, actor="d", override_reason="r")
    assign(session=db, incident_id=solo_inc.id, unit_id=solo, actor="d", override_reason="r")
    crew_status_report(session=db, unit_id=a, status="on_scene", at=None, source="t")
    board = supervisor_board(session=db, region="KV", settings=settings).to_dict()
    mine = _crews(board, {a, b, solo})
    ia = mine[a][1]["incident"]
    assert (ia["id"], ia["reference"], ia["category"], ia["is_lead"]) == (
        inc.id, inc.reference, "robbery", True)
    assert mine[a][1]["status"] == "on_scene" and mine[b][1]["incident"]["is_lead"] is False
    assert mine[solo][1]["incident"]["reference"] == solo_inc.reference
    joint = {j["incident_id"]: j for j in board["joint"]}
    assert solo_inc.id not in joint
    j = joint[inc.id]
    assert j["reference"] == inc.reference and j["lead_unit_id"] == a
    assert [c["unit_id"] for c in j["crews"]] == [a, b]
    assert j["crews"][0]["unit_status"] == "on_scene" and j["crews"][0]["is_lead"] is True

    set_lead(session=db, incident_id=inc.id, unit_id=b, actor="s")
    board = supervisor_board(session=db, region="KV", settings=settings).to_dict()
    j = next(x for x in board["joint"] if x["incident_id"] == inc.id)
    assert j["lead_unit_id"] == b and j["crews"][0]["unit_id"] == b

    db.execute(text("UPDATE incidents SET status = 'closed' WHERE id = :i"), {"i": inc.id})
    board = supervisor_board(session=db, region="KV", settings=settings).to_dict()
    assert inc.id not in {x["incident_id"] for x in board["joint"]}
    assert _crews(board, {a})[a][1]["incident"] is None


def test_old_records_flagged_and_other_regions_left_out(
    db: Session, settings: Settings, crew: Callable[..., int],
) -> None:
    """A crew "on scene" since 2017 is flagged old; another region's crew is not on the board
    of this region, but is on the national (all-region) board; inactive crews are on neither."""
    old = crew(status="on_scene")
    db.execute(text("UPDATE units SET status_changed_at = :t WHERE id = :u"),
               {"u": old, "t": datetime(2017, 3, 1, tzinfo=UTC)})
    other = crew(region="LV")
    gone = crew()
    db.execute(text("UPDATE units SET active = false WHERE id = :u"), {"u": gone})
    now = datetime.now(UTC) + timedelta(seconds=1)
    board = supervisor_board(session=db, region="KV", settings=settings, now=now).to_dict()
    mine = _crews(board, {old, other, gone})
    assert set(mine) == {old}
    assert mine[old][1]["old"] is True and mine[old][1]["seconds_in_status"] > 3e8
    everywhere = _crews(supervisor_board(session=db, region=None, settings=settings).to_dict(),
                        {old, other, gone})
    assert set(everywhere) == {old, other}
    assert everywhere[other][1]["old"] is False
