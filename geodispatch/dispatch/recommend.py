"""Crew recommendation: who should go to this incident, and why every other crew should not.

1. Filter the live fleet: active, available, with a recent fix, of a kind and with the
   capabilities the incident's category requires. Every crew filtered out gets a reason.
2. Rank the rest by road drive time to the incident with one reverse search over the road graph
   (``Router.rank``); crews beyond the search bound are excluded as unreachable. Without a road
   graph, straight-line distance with a city detour factor stands in, and the answer says so.
3. Apply the zone rule (own sector/district first unless an outsider is clearly faster,
   ``geodispatch.zones.rules``), keep the top N and draw their routes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from geodispatch.errors import Conflict
from geodispatch.geo import LatLng, haversine_m
from geodispatch.incidents.classification import load_classification
from geodispatch.incidents.record import append_event
from geodispatch.incidents.service import get_incident, incident_point
from geodispatch.settings import Settings
from geodispatch.zones.rules import apply_zone_rule

if TYPE_CHECKING:  # the seams, as types only: tracking imports dispatch at run time
    from geodispatch.routing.engine import Router
    from geodispatch.tracking.fleet import LiveFleet
    from geodispatch.zones.index import ZoneIndex

log = logging.getLogger(__name__)

#: Straight-line fallback: road distance ~ 1.3 x straight line in cities, at 40 km/h.
DETOUR_FACTOR = 1.3
FALLBACK_SPEED_MPS = 40.0 / 3.6
AVAILABLE = ("available",)


@dataclass
class RankedCrew:
    rank: int
    unit_id: int
    call_sign: str
    kind: str
    status: str
    eta_s: float
    distance_m: float
    in_zone: bool
    reason: str
    lat: float
    lng: float
    route: dict[str, Any] | None = None
    #: Metres between the crew and the road when it is off-road (walked, in the ETA).
    off_road_m: float = 0.0


@dataclass
class ExcludedCrew:
    unit_id: int
    call_sign: str
    reason: str


@dataclass
class Recommendation:
    """The answer: ``ranked`` (best first), ``excluded`` (with reasons), and the fallback flag."""

    incident_id: int
    reference: str
    category: str
    ranked: list[RankedCrew] = field(default_factory=list)
    excluded: list[ExcludedCrew] = field(default_factory=list)
    eligible: int = 0
    straight_line_fallback: bool = False
    zone_rule: bool = False
    computed_ms: float = 0.0
    at: str = ""
    #: Metres between the incident and the nearest road when it is off-road (walked, in every
    #: ETA); None when it is on a road or there is no road graph.
    target_off_road_m: float | None = None
    #: What the dispatcher must know about these figures (off-road incident, no road graph).
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _straight_line(target: LatLng, cands: list[tuple[int, LatLng]], limit_s: float
                   ) -> list[tuple[int, float, float]]:
    out = []
    for uid, p in cands:
        d = haversine_m(p, target) * DETOUR_FACTOR
        eta = d / FALLBACK_SPEED_MPS
        if eta <= limit_s:
            out.append((uid, eta, d))
    out.sort(key=lambda t: (t[1], t[0]))
    return out


def recommend(*, session: Session, incident_id: int, fleet: LiveFleet | None,
              router: Router | None, zone_index: ZoneIndex | None,
              settings: Settings, top_n: int = 5, record: bool = True, actor: str = "system",
              with_routes: bool = True) -> Recommendation:
    """Rank the crews for an incident.

    Parameters
    ----------
    session : Session
    incident_id : int
    fleet : LiveFleet
        ``snapshot()`` gives every unit's status, position and freshness.
    router : Router or None
        None means no road graph: straight-line distance x 1.3 at 40 km/h, flagged.
    zone_index : ZoneIndex or None
        Used to decide whether a crew without a home zone is inside the incident's sector.
    settings : Settings
        ``recommend_max_eta_s`` bounds the search; ``cross_border_*`` tune the zone rule.
    top_n : int
        Crews returned in ``ranked``.
    record : bool
        Append a ``recommended`` event (the top N with ETAs) to the incident's log.

    Returns
    -------
    Recommendation
        ``ranked`` best first with ETA (s), road distance (m), route (GeoJSON) and the reason for
        the place (``in_zone``, ``cross_border_faster``, ``out_of_zone``, ``no_crew_in_zone`` or
        ``eta``); ``excluded`` every crew filtered out with its reason; ``eligible`` how many
        crews passed the filter.
    """
    t0 = time.perf_counter()
    incident = get_incident(session=session, incident_id=incident_id)

    if incident.status in ("closed", "cancelled", "merged"):
        raise Conflict(f"incident {incident.reference} is {incident.status}")
    target = incident_point(session, incident)
    if target is None:
        raise Conflict(f"incident {incident.reference}: location unknown; place it on the map "
                       "first (or send a crew with an override reason)")
    table = load_classification(settings)
    category = table.categories.get(incident.category)
    out = Recommendation(incident_id=incident.id, reference=incident.reference,
                         category=incident.category, at=datetime.now(UTC).isoformat())
    states = {}
    cands: list[tuple[int, LatLng]] = []
    fit: dict[tuple[str, tuple[str, ...]], str | None] = {}
    now = datetime.now(UTC)
    for u in (fleet.snapshot() if fleet is not None else []):
        states[u.unit_id] = u
        reason = None
        if not u.active:
            reason = "inactive"
        elif u.status not in AVAILABLE:
            reason = f"status {u.status}"
        elif u.position is None or u.fix_time is None:
            reason = "no position"
        elif (now - u.fix_time).total_seconds() > u.stale_after_s:
            reason = "GPS stale"
        elif category is not None:
            key = (u.kind, u.capabilities)
            if key not in fit:
                fit[key] = category.accepts(u.kind, u.capabilities)
            reason = fit[key]
        if reason is not None or u.position is None:
            out.excluded.append(ExcludedCrew(u.unit_id, u.call_sign, reason or "no position"))
        else:
            cands.append((u.unit_id, u.position))
    out.eligible = len(cands)
    limit = settings.recommend_max_eta_s
    off_road: dict[int, float] = {}
    if router is None:
        out.straight_line_fallback = True
        out.warnings.append("no road graph: straight-line distance x 1.3 at 40 km/h")
        etas = _straight_line(target, cands, limit)
    else:
        tsnap = router.snap(target)
        if not tsnap.on_road:
            out.target_off_road_m = round(tsnap.distance_m, 1)
            out.warnings.append(
                f"the incident is {tsnap.distance_m:,.0f} m from the nearest road: every ETA "
                f"includes that distance on foot; check the location")
        ranked_etas = router.rank(target, cands, limit_s=limit)
        etas = [(c.unit_id, float(c.eta_s), float(c.distance_m)) for c in ranked_etas]
        off_road = {c.unit_id: c.off_road_m for c in ranked_etas if not c.on_road}
    reached = {uid for uid, _e, _d in etas}
    for uid, _p in cands:
        if uid not in reached:
            u = states[uid]
            out.excluded.append(ExcludedCrew(uid, u.call_sign,
                                             f"not reachable within {limit:.0f} s"))
    dist = {uid: d for uid, _e, d in etas}
    zones = {z for z in (incident.sector_id, incident.district_id) if z is not None}
    order: list[tuple[int, float, bool, str]]
    if zones:

        def in_zone(uid: int) -> bool:
            u = states[uid]
            if u.home_zone_id is not None:
                return u.home_zone_id in zones
            if zone_index is not None and u.position is not None:
                ref = zone_index.lookup(u.position)
                return ref.sector_id in zones or ref.district_id in zones
            return False

        out.zone_rule = True
        order = [(z.unit_id, z.eta_s, z.in_zone, z.reason) for z in apply_zone_rule(
            [(uid, e, in_zone(uid)) for uid, e, _d in etas],
            factor=settings.cross_border_factor, min_gain_s=settings.cross_border_min_gain_s)]
    else:
        order = [(uid, e, False, "eta") for uid, e, _d in etas]
    for i, (uid, eta, inz, why) in enumerate(order[:top_n], start=1):
        u = states[uid]
        assert u.position is not None
        out.ranked.append(RankedCrew(
            rank=i, unit_id=uid, call_sign=u.call_sign, kind=u.kind, status=u.status,
            eta_s=round(eta, 1), distance_m=round(dist[uid], 1), in_zone=inz,
            reason=why + (" (straight line)" if out.straight_line_fallback else "")
            + (f" (off-road {off_road[uid]:,.0f} m)" if uid in off_road else ""),
            lat=u.position.lat, lng=u.position.lng, off_road_m=round(off_road.get(uid, 0.0), 1)))
    if with_routes and out.ranked:
        if router is not None:
            try:
                routes = router.routes(target, [(r.unit_id, LatLng(r.lat, r.lng))
                                                for r in out.ranked])
            except Exception:  # noqa: BLE001 - a missing drawing must not lose the ranking
                log.exception("route drawing failed for incident %s", incident.id)
                routes = {}
            for r in out.ranked:
                route = routes.get(r.unit_id)
                r.route = route.to_geojson() if route is not None else None
        else:
            for r in out.ranked:
                r.route = {"type": "LineString",
                           "coordinates": [[r.lng, r.lat], [target.lng, target.lat]]}
    out.computed_ms = round((time.perf_counter() - t0) * 1000, 2)
    if record:
        append_event(session=session, incident_id=incident.id, kind="recommended", actor=actor,
                     data={"ranked": [{"unit_id": r.unit_id, "eta_s": r.eta_s,
                                       "distance_m": r.distance_m, "reason": r.reason}
                                      for r in out.ranked],
                           "eligible": out.eligible, "excluded": len(out.excluded),
                           "straight_line_fallback": out.straight_line_fallback})
    return out
