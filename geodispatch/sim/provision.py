"""Provisioning the simulated fleet: crews in the database, broker credentials, the fleet file.

A crew needs a unit row (call sign, kind, capabilities, region, home sector) and a device token
that the broker accepts. Tokens are stored only hashed, so the simulator keeps them in a fleet
file (``var/sim/fleet.json``, mode 0600). :func:`ensure_fleet` is idempotent: crews already in
the file and the database are kept; crews in the database but not in the file get a new token;
missing crews are created. New credentials reach Mosquitto when the transaction commits.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from geodispatch.geo import LatLng
from geodispatch.settings import Settings
from geodispatch.sim.engine import load_fleet, save_fleet
from geodispatch.sim.roads import Roads
from geodispatch.sim.unit import UnitSpec

log = logging.getLogger(__name__)

# (kind, capabilities, share of the fleet): a city patrol fleet with a few specialists.
FLEET_MIX: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("patrol_car", ("patrol",), 0.70),
    ("rapid_response", ("patrol", "armed_response"), 0.10),
    ("traffic", ("patrol", "traffic"), 0.08),
    ("supervisor_car", ("patrol", "supervisor"), 0.04),
    ("k9", ("patrol", "k9"), 0.04),
    ("foot_patrol", ("foot",), 0.04),
)


def default_fleet_path(settings: Settings) -> Path:
    """``var/sim/fleet-<database>.json``: each database has its own crews and tokens."""
    from sqlalchemy.engine import make_url

    return settings.var_dir / "sim" / f"fleet-{make_url(settings.database_url).database}.json"


@dataclass(slots=True, frozen=True)
class Sector:
    """A home sector: its zone id and a few points (cell centres) inside it."""

    zone_id: int | None
    points: tuple[LatLng, ...]


def load_sectors(*, session: Session, region: str) -> list[Sector]:
    """Current sectors of ``region`` with their cell centres (empty list without zones)."""
    try:
        from geodispatch.zones import cells as hc
        from geodispatch.zones.models import Zone
    except ImportError:  # pragma: no cover - zones domain missing
        return []
    rows = session.scalars(
        select(Zone).where(Zone.level == "sector", Zone.region == region, Zone.valid_to.is_(None))
        .order_by(Zone.code)
    ).all()
    out: list[Sector] = []
    for z in rows:
        centres = [hc.cell_center(c) for c in sorted(hc.uncompact(z.cells, z.res))]
        if centres:
            out.append(Sector(zone_id=z.id, points=tuple(centres)))
    return out


def _kind_for(i: int, n: int) -> tuple[str, tuple[str, ...]]:
    """Deterministic spread of kinds by share: unit i of n."""
    # A golden-ratio sequence: every prefix of the fleet (a smaller demo) has about the same mix.
    acc = 0.0
    frac = (i * 0.6180339887498949) % 1.0
    for kind, caps, share in FLEET_MIX:
        acc += share
        if frac < acc:
            return kind, caps
    return FLEET_MIX[0][0], FLEET_MIX[0][1]


def ensure_fleet(*, session: Session, settings: Settings, n: int, roads: Roads, region: str,
                 fleet_path: Path, owntracks_share: float = 0.3, prefix: str = "P",
                 seed: int = 7, status: str = "available") -> list[UnitSpec]:
    """Make sure ``n`` crews ``{prefix}-001``... exist with known tokens; return their specs.

    The caller commits ``session`` (broker credentials are written on commit) before starting the
    simulator with the returned specs. Crews are spread over the region's sectors round-robin,
    each with a home point on the road network inside its sector.
    """
    from geodispatch.tracking.models import Unit
    from geodispatch.tracking.service import create_unit, rotate_token

    rng = random.Random(seed)
    known = {s.device: s for s in (load_fleet(fleet_path) if fleet_path.exists() else [])}
    sectors = load_sectors(session=session, region=region) or [Sector(None, ())]
    call_signs = [f"{prefix}-{i:03d}" for i in range(1, n + 1)]
    existing = {u.call_sign: u for u in session.scalars(
        select(Unit).where(Unit.call_sign.in_(call_signs))).all()}
    specs: list[UnitSpec] = []
    created = rotated = 0
    for i, cs in enumerate(call_signs):
        sector = sectors[i % len(sectors)]
        anchor = rng.choice(sector.points) if sector.points else None
        home = roads.random_point(rng, anchor, 500.0) if anchor else roads.random_point(rng)
        kind, caps = _kind_for(i, n)
        protocol = "owntracks" if rng.random() < owntracks_share else "native"
        unit = existing.get(cs)
        if unit is None:
            unit, token = create_unit(
                session=session, call_sign=cs, kind=kind, capabilities=list(caps), region=region,
                home_zone_id=sector.zone_id, device_id=cs, status=status, settings=settings,
                owntracks_user=cs if protocol == "owntracks" else None,
                owntracks_device=cs if protocol == "owntracks" else None)
            created += 1
        else:
            prev = known.get(unit.device_id)
            protocol = "owntracks" if unit.owntracks_user else "native"
            if prev is not None:
                token = prev.token
            else:
                token = rotate_token(session=session, unit=unit, settings=settings)
                rotated += 1
            unit.active = True
            unit.region = region
            unit.home_zone_id = sector.zone_id
            if unit.status in ("off_duty", "dispatched", "en_route", "on_scene", "cleared"):
                unit.status = status
            if prev is not None and prev.home is not None:
                home = prev.home
        specs.append(UnitSpec(device=unit.device_id, token=token, call_sign=cs, protocol=protocol,
                              home=home, kind=unit.kind, unit_id=unit.id))
    session.flush()
    save_fleet(fleet_path, specs)
    # Also (re)write every token into the broker's password file: a cleaned var/ folder must not
    # leave crews whose tokens the database accepts but Mosquitto does not.
    from geodispatch.tracking.broker import add_devices

    add_devices(settings, [(s.device, s.token) for s in specs])
    log.info("fleet: %d crews (%d created, %d new tokens) in %d sectors of %s", len(specs),
             created, rotated, len(sectors), region)
    return specs


def clear_stale_assignments(*, session: Session, settings: Settings,
                            specs: list[UnitSpec]) -> int:
    """Clear the retained assignment of every crew that has no active assignment in the database.

    The broker keeps retained assignments across runs; after a demo was stopped mid-call (or the
    database was recreated) a crew would otherwise drive to an incident from another run.
    """
    from geodispatch.dispatch.models import Assignment
    from geodispatch.tracking.mqtt import make_client, publish_assignment

    active = set(session.scalars(select(Assignment.unit_id).where(
        Assignment.status.in_(("dispatched", "acknowledged", "en_route", "on_scene")))).all())
    stale = [s.device for s in specs if s.unit_id not in active]
    if not stale:
        return 0
    client = make_client(settings, f"geodispatch-sim-clear-{random.getrandbits(32):08x}",
                         clean_start=True, session_expiry_s=0)
    try:
        infos = [publish_assignment(client, device, None) for device in stale]
        for info in infos:
            info.wait_for_publish(timeout=10)
    finally:
        client.loop_stop()
        client.disconnect()
    return len(stale)

