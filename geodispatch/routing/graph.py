"""The compiled road graph: flat numpy arrays, saved as one uncompressed ``.npz`` that loads in ms.

Layout
------
* **Nodes** ``0..n-1``: junctions and way ends (degree-2 chains are folded into their edges),
  ``node_lat``, ``node_lng``, ``node_osm_id``.
* **Segments** ``0..s-1``: an undirected piece of one OSM way between two nodes, with its full
  geometry (``seg_start``/``seg_end`` index an inclusive range of ``coord_lat``/``coord_lng``) and
  ``seg_fwd``/``seg_bwd``: the directed edge driving along/against it, or -1 (one-way).
* **Edges** ``0..m-1``, sorted by ``edge_src``: directed, ``edge_dst``, ``edge_length_m``,
  ``edge_time_s`` (free-flow seconds), ``edge_speed_kmh``, ``edge_class`` (index into
  ``classes``), ``edge_way`` (OSM way id), ``edge_name`` (index into ``names``, -1 = unnamed),
  ``edge_seg`` and ``edge_rev`` (True when the edge runs against its segment's geometry).

* **Spurs** ``0..k-1`` (optional): roads the importer left out of the network (a fragment not
  strongly connected to it: a one-way dead end, a car park behind a one-way exit, an island at
  the extract's edge). They carry no edge; each keeps its geometry (``spur_start``/``spur_end``,
  ranges of the same coordinate arrays), its length ``spur_len_m``, and for each end the kept node
  it is attached to (``spur_u_node``/``spur_v_node``) with the distance to it (``spur_u_m``/
  ``spur_v_m``: along the left-out roads to the junction where they meet the network, or straight
  to the nearest kept node for a fragment that meets it nowhere). Snapping uses them so that a
  point on such a road is placed at the junction one reaches it from, not on whatever kept road
  happens to be nearest in a straight line (see :mod:`geodispatch.routing.snapping`).

Coordinates are stored latitude/longitude in separate arrays; :class:`~geodispatch.geo.LatLng` is
how they leave this module.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from geodispatch.geo import EARTH_RADIUS_M, LatLng

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
I32Array = npt.NDArray[np.int32]
BoolArray = npt.NDArray[np.bool_]

#: Format 2 added the spurs; a format 1 file loads with none.
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)

_ARRAYS = (
    "node_lat", "node_lng", "node_osm_id",
    "coord_lat", "coord_lng",
    "seg_start", "seg_end", "seg_fwd", "seg_bwd",
    "edge_src", "edge_dst", "edge_length_m", "edge_time_s", "edge_speed_kmh",
    "edge_class", "edge_way", "edge_name", "edge_seg", "edge_rev",
)
_SPUR_ARRAYS = ("spur_start", "spur_end", "spur_len_m", "spur_u_node", "spur_v_node",
                "spur_u_m", "spur_v_m")


def haversine_arrays(lat1: FloatArray, lng1: FloatArray, lat2: FloatArray, lng2: FloatArray
                     ) -> FloatArray:
    """Element-wise great-circle distance in metres."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(lng2 - lng1)
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    out: FloatArray = 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(h)))
    return out


@dataclass(eq=False)
class RoadGraph:
    """A directed road graph as flat arrays (see the module docstring for the layout)."""

    node_lat: FloatArray
    node_lng: FloatArray
    node_osm_id: IntArray
    coord_lat: FloatArray
    coord_lng: FloatArray
    seg_start: IntArray
    seg_end: IntArray
    seg_fwd: IntArray
    seg_bwd: IntArray
    edge_src: I32Array
    edge_dst: I32Array
    edge_length_m: FloatArray
    edge_time_s: FloatArray
    edge_speed_kmh: npt.NDArray[np.float32]
    edge_class: npt.NDArray[np.uint8]
    edge_way: IntArray
    edge_name: I32Array
    edge_seg: IntArray
    edge_rev: BoolArray
    names: npt.NDArray[np.str_]
    classes: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    spur_start: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    spur_end: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    spur_len_m: FloatArray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    spur_u_node: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    spur_v_node: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    spur_u_m: FloatArray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    spur_v_m: FloatArray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))

    # --- sizes -----------------------------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return int(self.node_lat.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.edge_src.shape[0])

    @property
    def n_segments(self) -> int:
        return int(self.seg_start.shape[0])

    @property
    def n_spurs(self) -> int:
        return int(self.spur_start.shape[0])

    def node(self, i: int) -> LatLng:
        return LatLng(float(self.node_lat[i]), float(self.node_lng[i]))

    def bbox(self) -> tuple[float, float, float, float]:
        """(min_lat, min_lng, max_lat, max_lng) of all nodes."""
        return (float(self.node_lat.min()), float(self.node_lng.min()),
                float(self.node_lat.max()), float(self.node_lng.max()))

    def edge_name_str(self, e: int) -> str | None:
        i = int(self.edge_name[e])
        return None if i < 0 else str(self.names[i])

    def edge_highway(self, e: int) -> str:
        return self.classes[int(self.edge_class[e])]

    # --- matrices --------------------------------------------------------------------------------
    def fastest_edges(self, weights: FloatArray | None = None) -> IntArray:
        """Indices of the fastest edge of each (u, v) pair, sorted by (u, v).

        Parallel edges (two ways joining the same junctions) differ only in the matrices: the
        searches need one weight per node pair, so the fastest one stands for the pair.
        """
        w = self.edge_time_s if weights is None else weights
        order = np.lexsort((w, self.edge_dst, self.edge_src))
        u, v = self.edge_src[order], self.edge_dst[order]
        first = np.ones(order.shape[0], dtype=bool)
        first[1:] = (u[1:] != u[:-1]) | (v[1:] != v[:-1])
        keep: IntArray = order[first].astype(np.int64)
        return keep

    @cached_property
    def _fastest(self) -> IntArray:
        return self.fastest_edges()

    def csr(self, weights: FloatArray | None = None) -> sp.csr_matrix:
        """Forward travel-time matrix (row u, column v = seconds u->v); parallel edges -> fastest.

        ``weights`` (one per edge, same order as ``edge_time_s``) replaces the free-flow times.
        """
        keep = self._fastest if weights is None else self.fastest_edges(weights)
        w_all = self.edge_time_s if weights is None else weights
        u, v, w = self.edge_src[keep], self.edge_dst[keep], w_all[keep]
        n = self.n_nodes
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(u, minlength=n), out=indptr[1:])
        return sp.csr_matrix((w.astype(np.float64), v.astype(np.int32), indptr), shape=(n, n))

    def csr_reverse(self, weights: FloatArray | None = None) -> sp.csr_matrix:
        """The transposed matrix (row v, column u = seconds u->v): reverse searches."""
        return self.csr(weights).transpose().tocsr()

    # --- geometry --------------------------------------------------------------------------------
    def segment_coords(self, s: int) -> tuple[FloatArray, FloatArray]:
        a, b = int(self.seg_start[s]), int(self.seg_end[s]) + 1
        return self.coord_lat[a:b], self.coord_lng[a:b]

    def edge_coords(self, e: int) -> tuple[FloatArray, FloatArray]:
        """(lat, lng) arrays of an edge's geometry in its driving direction."""
        lat, lng = self.segment_coords(int(self.edge_seg[e]))
        if self.edge_rev[e]:
            return lat[::-1], lng[::-1]
        return lat, lng

    def edge_latlngs(self, e: int) -> list[LatLng]:
        lat, lng = self.edge_coords(e)
        return [LatLng(float(a), float(b)) for a, b in zip(lat, lng, strict=True)]

    def edge_coord_index(self) -> tuple[IntArray, IntArray]:
        """For all edges at once: (ptr[m+1], coord index per vertex) in driving order."""
        s = self.edge_seg
        start, end = self.seg_start[s], self.seg_end[s]
        counts = (end - start + 1).astype(np.int64)
        ptr = np.zeros(self.n_edges + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        offs = np.arange(int(ptr[-1]), dtype=np.int64) - np.repeat(ptr[:-1], counts)
        rev = np.repeat(self.edge_rev, counts)
        base = np.where(rev, np.repeat(end, counts) - offs, np.repeat(start, counts) + offs)
        return ptr, base

    # --- persistence -----------------------------------------------------------------------------
    def save(self, path: Path | str) -> Path:
        """Write the graph as an uncompressed ``.npz`` (atomically: temp file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        arrays = {name: getattr(self, name) for name in _ARRAYS + _SPUR_ARRAYS}
        meta = dict(self.meta, format=FORMAT_VERSION)
        np.savez(
            tmp,
            names=self.names,
            classes=np.array(self.classes),
            meta=np.array(json.dumps(meta, default=str)),
            **arrays,
        )
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path | str) -> RoadGraph:
        """Read a graph written by :meth:`save` (no pickles; memory copies of the arrays)."""
        t0 = time.perf_counter()
        with np.load(Path(path), allow_pickle=False) as z:
            data = {name: z[name] for name in _ARRAYS}
            data.update({name: z[name] for name in _SPUR_ARRAYS if name in z.files})
            names = z["names"]
            classes = tuple(str(c) for c in z["classes"])
            meta = json.loads(str(z["meta"]))
        if meta.get("format") not in READABLE_FORMATS:
            raise ValueError(f"{path}: graph format {meta.get('format')}, expected one of "
                             f"{READABLE_FORMATS} (import the extract again)")
        graph = cls(names=names, classes=classes, meta=meta, **data)
        log.debug("loaded %s (%d nodes, %d edges) in %.3f s", path, graph.n_nodes, graph.n_edges,
                  time.perf_counter() - t0)
        return graph

    def summary(self) -> dict[str, Any]:
        """Counts and totals for the CLI and logs."""
        km = float(self.edge_length_m.sum()) / 1000.0
        return {
            "nodes": self.n_nodes,
            "edges": self.n_edges,
            "segments": self.n_segments,
            "spurs": self.n_spurs,
            "oneway_segments": int(((self.seg_fwd < 0) | (self.seg_bwd < 0)).sum()),
            "directed_km": round(km, 1),
            "bbox": [round(x, 6) for x in self.bbox()] if self.n_nodes else None,
        }


def local_xy(lat: FloatArray, lng: FloatArray, lat0: float, lng0: float
             ) -> tuple[FloatArray, FloatArray]:
    """Equirectangular projection in metres around (lat0, lng0): good to ~0.1 % over a city."""
    k = math.cos(math.radians(lat0))
    x = np.radians(lng - lng0) * EARTH_RADIUS_M * k
    y = np.radians(lat - lat0) * EARTH_RADIUS_M
    return x, y
