"""The in-memory zone index: point -> (sector, district, region) in O(1), one or a million at once.

``ZoneIndex.load(session, settings)`` reads the current zone versions' expanded cells
(``zone_cells``) once; :meth:`ZoneIndex.lookup` answers a single point with one h3 call and one
dict look-up, and :meth:`ZoneIndex.lookup_many` answers arrays of points without calling h3 for
most of them (see :meth:`ZoneIndex.lookup_many` for how and why that stays exact).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from h3.api import basic_int as h3i
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.geo import LatLng
from geodispatch.settings import Settings
from geodispatch.zones.cells import M_PER_DEG_LAT, edge_length_m, neighbours

log = logging.getLogger(__name__)

MIXED = -1  # grid pixel that straddles a zone boundary: ask h3 for each point inside it
OUTSIDE = 0  # combination id of "no zone at all"


class ZoneRef(NamedTuple):
    """The zones a point belongs to; ids are current ``zones.id`` values, None when not covered."""

    sector_id: int | None
    district_id: int | None
    region: str


class ZoneInfo(NamedTuple):
    """One current zone version, as the index and the API show it."""

    id: int
    code: str
    name: str
    level: str
    parent_id: int | None
    region: str


class LookupArrays(NamedTuple):
    """Vectorised look-up result; ``-1`` stands for "no zone" in the id arrays."""

    sector_id: npt.NDArray[np.int64]
    district_id: npt.NDArray[np.int64]
    region: npt.NDArray[np.str_]


@dataclass
class _Grid:
    """A lat/lng raster whose pixels hold a combination id, or ``MIXED`` near zone boundaries."""

    lat0: float
    lng0: float
    dlat: float
    dlng: float
    values: npt.NDArray[np.int32]  # shape (ny, nx)


@dataclass
class ZoneIndex:
    """Cell -> zone combination, plus a raster prefilter for vectorised look-ups.

    A *combination* is one distinct ``(sector_id, district_id, region)`` triple; every covered cell
    maps to one. Combination 0 is "outside every zone" (region = the default region).
    """

    res: int
    default_region: str
    cell_combo: dict[int, int]
    combo_sector: npt.NDArray[np.int64]
    combo_district: npt.NDArray[np.int64]
    combo_region: npt.NDArray[np.str_]
    zones: dict[int, ZoneInfo] = field(default_factory=dict)
    grid: _Grid | None = None

    # --- construction -----------------------------------------------------------------------

    @classmethod
    def load(cls, session: Session, settings: Settings) -> ZoneIndex:
        """Read the current zones (``valid_to IS NULL``) and their expanded cells."""
        zones = {
            int(r.id): ZoneInfo(int(r.id), r.code, r.name, r.level, r.parent_id, r.region)
            for r in session.execute(
                text(
                    "SELECT id, code, name, level, parent_id, region FROM zones "
                    "WHERE valid_to IS NULL"
                )
            )
        }
        rows = session.execute(
            text(
                "SELECT zc.cell, zc.level, zc.zone_id FROM zone_cells zc "
                "JOIN zones z ON z.id = zc.zone_id WHERE z.valid_to IS NULL"
            )
        ).all()
        membership = [(int(c), str(lv), int(z)) for c, lv, z in rows]
        index = cls.from_membership(
            membership,
            zones=zones,
            res=settings.h3_zone_res,
            default_region=settings.default_region,
        )
        log.info("zone index: %d zones, %d cells", len(zones), len(index.cell_combo))
        return index

    @classmethod
    def from_membership(
        cls,
        membership: Iterable[tuple[int, str, int]],
        *,
        zones: dict[int, ZoneInfo],
        res: int,
        default_region: str,
        max_pixels: int = 4_000_000,
    ) -> ZoneIndex:
        """Build from ``(cell, level, zone_id)`` rows; the region comes from the finest zone."""
        per_cell: dict[int, dict[str, int]] = {}
        for cell, level, zone_id in membership:
            per_cell.setdefault(cell, {})[level] = zone_id
        combos: dict[tuple[int, int, str], int] = {(-1, -1, default_region): OUTSIDE}
        cell_combo: dict[int, int] = {}
        for cell, levels in per_cell.items():
            sector = levels.get("sector", -1)
            district = levels.get("district", -1)
            region = default_region
            for lv in ("sector", "district", "region"):
                if lv in levels and levels[lv] in zones:
                    region = zones[levels[lv]].region
                    break
            key = (sector, district, region)
            cid = combos.setdefault(key, len(combos))
            if cid != OUTSIDE:
                cell_combo[cell] = cid
        ordered = sorted(combos.items(), key=lambda kv: kv[1])
        index = cls(
            res=res,
            default_region=default_region,
            cell_combo=cell_combo,
            combo_sector=np.array([k[0] for k, _ in ordered], dtype=np.int64),
            combo_district=np.array([k[1] for k, _ in ordered], dtype=np.int64),
            combo_region=np.array([k[2] for k, _ in ordered], dtype=np.str_),
            zones=zones,
        )
        index.grid = index._build_grid(max_pixels=max_pixels)
        return index

    def _build_grid(self, *, max_pixels: int) -> _Grid | None:
        """Rasterise the combinations onto a lat/lng grid finer than a cell.

        A pixel takes a combination when its four corners all fall in cells of that same
        combination and no vertex of a zone-boundary cell lies in or next to it; otherwise it is
        ``MIXED``. Cell edges are straight to within millimetres at pixel scale, so a boundary that
        enters a pixel without separating its corners must bend inside it, i.e. put a vertex there:
        the vertex marking therefore makes every non-mixed pixel lie wholly inside one combination.
        """
        if not self.cell_combo:
            return None
        cells = np.fromiter(self.cell_combo.keys(), dtype=np.uint64, count=len(self.cell_combo))
        centres = np.array([h3i.cell_to_latlng(int(c)) for c in cells])
        edge = edge_length_m(self.res)
        mid_lat = float(centres[:, 0].mean())
        cos_lat = max(0.01, math.cos(math.radians(mid_lat)))
        pad_lat = 1.5 * edge / M_PER_DEG_LAT
        pad_lng = pad_lat / cos_lat
        lat0 = float(centres[:, 0].min()) - pad_lat
        lat1 = float(centres[:, 0].max()) + pad_lat
        lng0 = float(centres[:, 1].min()) - pad_lng
        lng1 = float(centres[:, 1].max()) + pad_lng
        height_m = (lat1 - lat0) * M_PER_DEG_LAT
        width_m = (lng1 - lng0) * M_PER_DEG_LAT * cos_lat
        px = max(edge / 12.0, math.sqrt(height_m * width_m / max_pixels))
        dlat = px / M_PER_DEG_LAT
        dlng = dlat / cos_lat
        ny = int(math.ceil((lat1 - lat0) / dlat))
        nx = int(math.ceil((lng1 - lng0) / dlng))
        lats = (lat0 + dlat * np.arange(ny + 1)).tolist()
        lngs = (lng0 + dlng * np.arange(nx + 1)).tolist()
        get = self.cell_combo.get
        res = self.res
        to_cell = h3i.latlng_to_cell
        corner = np.array(
            [[get(to_cell(la, ln, res), OUTSIDE) for ln in lngs] for la in lats], dtype=np.int32
        )
        c00, c01 = corner[:-1, :-1], corner[:-1, 1:]
        c10, c11 = corner[1:, :-1], corner[1:, 1:]
        same = (c00 == c01) & (c00 == c10) & (c00 == c11)
        values = np.where(same, c00, MIXED).astype(np.int32)
        # Vertices of cells on a combination boundary (including the outer edge of coverage).
        verts: list[tuple[float, float]] = []
        for cell, combo in self.cell_combo.items():
            if any(get(n, OUTSIDE) != combo for n in neighbours(cell)):
                verts.extend(h3i.cell_to_boundary(cell))
        if verts:
            v = np.asarray(verts)
            iy = np.floor((v[:, 0] - lat0) / dlat).astype(np.int64)
            ix = np.floor((v[:, 1] - lng0) / dlng).astype(np.int64)
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    yy = np.clip(iy + dy, 0, ny - 1)
                    xx = np.clip(ix + dx, 0, nx - 1)
                    values[yy, xx] = MIXED
        mixed = float((values == MIXED).mean())
        log.debug("zone grid %dx%d px=%.0fm mixed=%.1f%%", nx, ny, px, 100 * mixed)
        return _Grid(lat0=lat0, lng0=lng0, dlat=dlat, dlng=dlng, values=values)

    # --- look-ups ---------------------------------------------------------------------------

    def _ref(self, combo: int) -> ZoneRef:
        s = int(self.combo_sector[combo])
        d = int(self.combo_district[combo])
        return ZoneRef(
            sector_id=None if s < 0 else s,
            district_id=None if d < 0 else d,
            region=str(self.combo_region[combo]),
        )

    def lookup(self, p: LatLng) -> ZoneRef:
        """Zones of one point: one h3 call and one dict look-up."""
        if not (math.isfinite(p.lat) and math.isfinite(p.lng)):
            return self._ref(OUTSIDE)
        cell = int(h3i.latlng_to_cell(p.lat, p.lng, self.res))
        return self._ref(self.cell_combo.get(cell, OUTSIDE))

    def lookup_cell(self, cell: int) -> ZoneRef:
        """Zones of a cell at the index resolution (finer cells are brought up to their parent).

        H3 children do not nest exactly in their parent: for a point, :meth:`lookup` (its own
        cell at the index resolution) is the authoritative answer.
        """
        r = h3i.get_resolution(cell)
        if r > self.res:
            cell = int(h3i.cell_to_parent(cell, self.res))
        return self._ref(self.cell_combo.get(cell, OUTSIDE))

    def combos_many(
        self, lats: npt.ArrayLike, lngs: npt.ArrayLike
    ) -> npt.NDArray[np.int32]:
        """Combination id of every point (vectorised).

        Parameters
        ----------
        lats, lngs : array_like of float
            WGS 84 degrees, same shape.

        Returns
        -------
        numpy.ndarray of int32
            Index into ``combo_sector`` / ``combo_district`` / ``combo_region``; 0 = no zone.

        Notes
        -----
        Points are binned into the raster built at load time (two multiply-adds and a gather per
        point). Only points in ``MIXED`` pixels, a few percent near zone borders, are resolved
        exactly with h3 and the cell dictionary. Points outside the raster are outside every zone
        by construction (the raster covers every zone cell with a margin). Non-finite coordinates
        give 0.
        """
        la = np.asarray(lats, dtype=np.float64).ravel()
        ln = np.asarray(lngs, dtype=np.float64).ravel()
        if la.shape != ln.shape:
            raise ValueError("lats and lngs differ in shape")
        out = np.zeros(la.shape, dtype=np.int32)
        g = self.grid
        if g is None:
            return out
        ny, nx = g.values.shape
        fy = (la - g.lat0) * (1.0 / g.dlat)
        fx = (ln - g.lng0) * (1.0 / g.dlng)
        inside = (fy >= 0) & (fy < ny) & (fx >= 0) & (fx < nx)  # False for NaN
        iy = fy[inside].astype(np.int64)
        ix = fx[inside].astype(np.int64)
        vals = g.values[iy, ix]
        out[inside] = vals
        mixed_pos = np.flatnonzero(inside)[vals == MIXED]
        if mixed_pos.size:
            get = self.cell_combo.get
            res = self.res
            to_cell = h3i.latlng_to_cell
            out[mixed_pos] = [
                get(to_cell(a, b, res), OUTSIDE)
                for a, b in zip(la[mixed_pos].tolist(), ln[mixed_pos].tolist(), strict=True)
            ]
        return out

    def lookup_many(self, lats: npt.ArrayLike, lngs: npt.ArrayLike) -> LookupArrays:
        """Vectorised :meth:`lookup`: arrays of sector id, district id (``-1`` = none), region."""
        combo = self.combos_many(lats, lngs)
        return LookupArrays(
            sector_id=self.combo_sector[combo],
            district_id=self.combo_district[combo],
            region=self.combo_region[combo],
        )

    # --- zone sets --------------------------------------------------------------------------

    def cells(self, *, region: str | None = None) -> list[int]:
        """Covered cells at the index resolution, optionally of one region."""
        if region is None:
            return list(self.cell_combo)
        ok = {i for i, r in enumerate(self.combo_region.tolist()) if r == region and i != OUTSIDE}
        return [c for c, k in self.cell_combo.items() if k in ok]

    def regions(self) -> list[str]:
        return sorted({str(r) for r in self.combo_region[1:].tolist()})

    def zones_at(self, level: str, *, region: str | None = None) -> Sequence[ZoneInfo]:
        return [
            z
            for z in self.zones.values()
            if z.level == level and (region is None or z.region == region)
        ]
