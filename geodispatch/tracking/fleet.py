"""The live fleet in memory: every unit's status, newest position and staleness.

One :class:`LiveFleet` per process, on ``app.state.fleet``. Ingest in the same process pushes
updates as soon as a batch commits; :meth:`LiveFleet.refresh` reloads units and ``unit_latest`` from
the database (the lifespan runs it every second) so changes made by other processes (separate ingest
workers, the dispatcher's status changes) arrive too. Thread-safe: states are immutable snapshots
replaced under a lock. Subscribers are called with each changed :class:`UnitState`, from whichever
thread made the change (an ingest thread, the refresh task's worker thread): an asyncio consumer
must hop back to its loop with ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.geo import LatLng
from geodispatch.settings import Settings
from geodispatch.tracking.reports import PositionReport

log = logging.getLogger(__name__)

Callback = Callable[["UnitState"], None]


@dataclass(frozen=True, slots=True)
class UnitState:
    """One unit as the map and the recommender see it."""

    unit_id: int
    call_sign: str
    kind: str
    capabilities: tuple[str, ...]
    region: str
    home_zone_id: int | None
    status: str
    position: LatLng | None = None
    fix_time: datetime | None = None
    speed_mps: float | None = None
    heading: float | None = None
    online: bool = True
    device_id: str = ""
    active: bool = True
    stale_after_s: float = 120.0

    @property
    def stale(self) -> bool:
        """True when there is no fix or the newest fix is older than ``stale_after_s``."""
        if self.fix_time is None:
            return True
        return (datetime.now(UTC) - self.fix_time).total_seconds() > self.stale_after_s

    def to_feature(self) -> dict[str, object]:
        """A GeoJSON Feature (geometry null without a fix)."""
        return {
            "type": "Feature",
            "id": self.unit_id,
            "geometry": self.position.to_geojson() if self.position else None,
            "properties": {
                "unit_id": self.unit_id, "call_sign": self.call_sign, "kind": self.kind,
                "capabilities": list(self.capabilities), "region": self.region,
                "home_zone_id": self.home_zone_id, "status": self.status,
                "fix_time": self.fix_time.isoformat() if self.fix_time else None,
                "speed_mps": self.speed_mps, "heading": self.heading, "online": self.online,
                "stale": self.stale,
            },
        }


REFRESH_SQL = """
SELECT u.id, u.call_sign, u.kind, u.capabilities, u.region, u.home_zone_id, u.status,
       u.device_id, u.active, l.fix_time, ST_Y(l.geom) AS lat, ST_X(l.geom) AS lng,
       l.speed_mps, l.heading, l.online
FROM units u LEFT JOIN unit_latest l ON l.unit_id = u.id
"""


class LiveFleet:
    """Thread-safe in-memory view of all units (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._units: dict[int, UnitState] = {}
        self._subscribers: list[Callback] = []

    # --- reading -------------------------------------------------------------------------------

    def snapshot(self) -> list[UnitState]:
        """All active units, ordered by id."""
        with self._lock:
            return [s for _, s in sorted(self._units.items()) if s.active]

    def get(self, unit_id: int) -> UnitState | None:
        with self._lock:
            return self._units.get(unit_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._units)

    # --- subscribers ---------------------------------------------------------------------------

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(state)`` for every changed unit; returns an unsubscribe function."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def _notify(self, changed: Iterable[UnitState]) -> None:
        with self._lock:
            subs = list(self._subscribers)
        for state in changed:
            for cb in subs:
                try:
                    cb(state)
                except Exception:  # noqa: BLE001 - one bad subscriber must not stop ingest
                    log.exception("fleet subscriber %r failed", cb)

    # --- writing -------------------------------------------------------------------------------

    def set_status(self, unit_id: int, status: str) -> UnitState | None:
        """Change a unit's status in memory (the caller persisted it) and notify."""
        with self._lock:
            cur = self._units.get(unit_id)
            if cur is None or cur.status == status:
                return cur
            new = replace(cur, status=status)
            self._units[unit_id] = new
        self._notify([new])
        return new

    def set_online(self, unit_id: int, online: bool) -> None:
        with self._lock:
            cur = self._units.get(unit_id)
            if cur is None or cur.online == online:
                return
            new = replace(cur, online=online)
            self._units[unit_id] = new
        self._notify([new])

    def apply_positions(self, reports: Iterable[PositionReport]) -> list[UnitState]:
        """Move units to newer fixes (older ones are ignored, as in ``unit_latest``)."""
        changed: dict[int, UnitState] = {}
        with self._lock:
            for r in reports:
                if r.unit_id is None or r.position is None:
                    continue
                cur = changed.get(r.unit_id) or self._units.get(r.unit_id)
                if cur is None or (cur.fix_time is not None and cur.fix_time >= r.fix_time):
                    continue
                changed[r.unit_id] = replace(
                    cur, position=r.position, fix_time=r.fix_time, speed_mps=r.speed_mps,
                    heading=r.heading, online=True,
                )
            self._units.update(changed)
        self._notify(changed.values())
        return list(changed.values())

    def refresh(self, session: Session) -> int:
        """Reload units and ``unit_latest``; notify for every changed unit; return how many."""
        rows = session.execute(text(REFRESH_SQL)).all()
        stale = self.settings.stale_after_s
        fresh: dict[int, UnitState] = {}
        for r in rows:
            fresh[r.id] = UnitState(
                unit_id=r.id, call_sign=r.call_sign, kind=r.kind,
                capabilities=tuple(r.capabilities or ()), region=r.region,
                home_zone_id=r.home_zone_id, status=r.status,
                position=LatLng(r.lat, r.lng) if r.lat is not None else None,
                fix_time=r.fix_time, speed_mps=r.speed_mps, heading=r.heading,
                online=bool(r.online) if r.online is not None else True,
                device_id=r.device_id, active=bool(r.active), stale_after_s=stale,
            )
        with self._lock:
            changed = []
            for uid, new in fresh.items():
                cur = self._units.get(uid)
                if cur is not None and cur.fix_time is not None and (
                    new.fix_time is None or new.fix_time < cur.fix_time
                ):
                    # This process already has a newer fix than the database read (in-flight).
                    new = replace(new, position=cur.position, fix_time=cur.fix_time,
                                  speed_mps=cur.speed_mps, heading=cur.heading)
                if cur != new:
                    changed.append(new)
            self._units = fresh | {s.unit_id: s for s in changed}
        self._notify(changed)
        return len(changed)
