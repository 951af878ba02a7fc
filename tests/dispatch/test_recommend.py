"""Recommendation: road-time ranking over a real OSM extract, reasons, zone rule, fallback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.dispatch.recommend import recommend
from geodispatch.geo import LatLng
from geodispatch.incidents.models import Incident
from geodispatch.routing.engine import Router
from geodispatch.settings import Settings
from geodispatch.tracking.fleet import LiveFleet

_ROUTER: dict[str, Router] = {}


@pytest.fixture(scope="module")
def router(data_dir: Path) -> Router:
    from geodispatch.routing.importer import import_osm_file

    if "b" not in _ROUTER:
        _ROUTER["b"] = Router(import_osm_file(
            data_dir / "osm" / "baltimore_downtown_2015.osm.pbf", progress=False))
    return _ROUTER["b"]


def _node(router: Router, i: int) -> LatLng:
    g = router.graph
    return LatLng(float(g.node_lat[i]), float(g.node_lng[i]))


def _mine(reco_ranked: list[int], mine: set[int]) -> list[int]:
    return [u for u in reco_ranked if u in mine]


def test_ranked_by_road_time_with_reasons(db: Session, router: Router, settings: Settings,
                                          crew: Callable[..., int],
                                          incident: Callable[..., Incident],
                                          fleet: Callable[[], LiveFleet]) -> None:
    """Suitable crews ranked by drive time; each unsuitable crew excluded with its reason."""
    g = router.graph
    target = _node(router, g.n_nodes // 2)
    near = LatLng(target.lat + 0.002, target.lng)
    far = LatLng(target.lat + 0.006, target.lng + 0.004)
    u_near, u_far = crew(near), crew(far)
    u_busy = crew(near, status="en_route")
    u_stale = crew(near, fix_age_s=3600)
    u_cap = crew(near, caps=("foot",), kind="foot_patrol")
    u_nofix = crew(None)
    inc = incident(p=target, category="robbery")
    reco = recommend(session=db, incident_id=inc.id, fleet=fleet(), router=router,
                     zone_index=None, settings=settings, top_n=1000)
    mine = {u_near, u_far, u_busy, u_stale, u_cap, u_nofix}
    order = _mine([r.unit_id for r in reco.ranked], mine)
    assert order == [u_near, u_far]
    assert not reco.straight_line_fallback
    top = next(r for r in reco.ranked if r.unit_id == u_near)
    assert top.eta_s > 0 and top.distance_m > 0 and top.route and top.route["coordinates"]
    why = {x.unit_id: x.reason for x in reco.excluded}
    assert "en_route" in why[u_busy] and "stale" in why[u_stale]
    assert "capability" in why[u_cap] and "position" in why[u_nofix]
    ev = db.execute(text("SELECT data FROM incident_events WHERE incident_id = :i AND "
                         "kind = 'recommended'"), {"i": inc.id}).scalar_one()
    assert any(r["unit_id"] == u_near for r in ev["ranked"])


def test_off_road_incident_and_crew_are_told_to_the_dispatcher(
        db: Session, router: Router, settings: Settings, crew: Callable[..., int],
        incident: Callable[..., Incident], fleet: Callable[[], LiveFleet]) -> None:
    """An incident 1 km from every road and a crew 600 m off it: both are in the figures (on
    foot) and said in words; an incident on another continent gets no crew, and says why."""
    g = router.graph
    north = int(g.node_lat.argmax())
    edge = LatLng(float(g.node_lat[north]), float(g.node_lng[north]))
    target = LatLng(edge.lat + 1000 / 111_195.0, edge.lng)
    u_road = crew(_node(router, g.n_nodes // 2))
    u_off = crew(LatLng(edge.lat + 600 / 111_195.0, edge.lng))
    inc = incident(p=target)
    reco = recommend(session=db, incident_id=inc.id, fleet=fleet(), router=router,
                     zone_index=None, settings=settings.model_copy(
                         update={"recommend_max_eta_s": 7200.0}), top_n=1000)
    assert reco.target_off_road_m is not None and reco.target_off_road_m > 900
    assert any("from the nearest road" in w for w in reco.warnings)
    ranked = {r.unit_id: r for r in reco.ranked}
    assert u_road in ranked and u_off in ranked
    assert ranked[u_road].off_road_m == 0 and ranked[u_off].off_road_m > 500
    assert "off-road" in ranked[u_off].reason
    walk = reco.target_off_road_m / (settings.walk_speed_kmh / 3.6)
    assert ranked[u_road].eta_s > walk
    far = incident(p=LatLng(-33.8688, 151.2093))  # Sydney, on the Baltimore graph
    reco = recommend(session=db, incident_id=far.id, fleet=fleet(), router=router,
                     zone_index=None, settings=settings, top_n=1000)
    assert reco.ranked == [] and reco.target_off_road_m is not None
    assert reco.target_off_road_m > 1e7
    why = {x.unit_id: x.reason for x in reco.excluded}
    assert "not reachable" in why[u_road]


def test_straight_line_fallback_is_flagged(db: Session, settings: Settings,
                                           crew: Callable[..., int],
                                           incident: Callable[..., Incident],
                                           fleet: Callable[[], LiveFleet]) -> None:
    """Without a road graph: straight-line order and a clear flag."""
    base = LatLng(50.40, 30.60)
    u1, u2 = crew(LatLng(50.401, 30.60)), crew(LatLng(50.41, 30.60))
    inc = incident(p=base)
    reco = recommend(session=db, incident_id=inc.id, fleet=fleet(), router=None,
                     zone_index=None, settings=settings, top_n=1000)
    assert reco.straight_line_fallback
    assert _mine([r.unit_id for r in reco.ranked], {u1, u2}) == [u1, u2]
    assert "straight line" in reco.ranked[0].reason
    assert reco.to_dict()["straight_line_fallback"] is True


def test_zone_rule_prefers_own_sector(db: Session, settings: Settings, crew: Callable[..., int],
                                      incident: Callable[..., Incident],
                                      fleet: Callable[[], LiveFleet]) -> None:
    """An own-sector crew beats a slightly closer outsider (zones.rules)."""
    zid = db.execute(text(
        "INSERT INTO zones (code, name, level, region, res, cells) VALUES "
        "('T-SECT', 'test sector', 'sector', 'KV', 8, '{}') RETURNING id")).scalar_one()
    base = LatLng(50.30, 30.70)
    outsider = crew(LatLng(50.3005, 30.70))
    own = crew(LatLng(50.301, 30.70), home_zone_id=zid)
    inc = incident(p=base)
    inc.sector_id = zid
    db.flush()
    reco = recommend(session=db, incident_id=inc.id, fleet=fleet(), router=None,
                     zone_index=None, settings=settings, top_n=1000)
    assert reco.zone_rule
    assert _mine([r.unit_id for r in reco.ranked], {own, outsider}) == [own, outsider]
    assert next(r for r in reco.ranked if r.unit_id == own).reason.startswith("in_zone")
