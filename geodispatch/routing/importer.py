"""Build a :class:`~geodispatch.routing.graph.RoadGraph` from OpenStreetMap.

Two front ends feed one assembler:

* :func:`import_osm_file` streams any OSM file (``.osm``, ``.osm.gz``, ``.osm.bz2``, ``.osm.pbf``)
  with pyosmium in a single pass: libosmium parses the file and caches node locations in C++, and
  Python only sees the ways tagged ``highway`` (with their node coordinates), so a 30-40 MB city
  PBF is read in seconds with a progress bar, never through XML and networkx.
* :func:`graph_from_osmnx` converts an osmnx ``MultiDiGraph`` (``--place NAME`` downloads one with
  osmnx when the internet is reachable; tests use ``osmnx.graph_from_xml`` on a local file).

Both apply the rules of :mod:`geodispatch.routing.speeds` (drivable classes, one-way, maxspeed or
the per-class table). The assembler then folds degree-2 chains into single edges that keep the full
way geometry, drops parallel duplicates only in the routing matrices (every edge keeps its own
geometry), and by default keeps the largest strongly connected component: every kept node can reach
every other one, so a crew is never snapped onto a fragment cut off at the extract's border.
"""

from __future__ import annotations

import logging
import time
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import osmium
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree
from tqdm import tqdm

from geodispatch.errors import InvalidInput
from geodispatch.routing.graph import (
    FloatArray,
    IntArray,
    RoadGraph,
    haversine_arrays,
    local_xy,
)
from geodispatch.routing.speeds import (
    CLASS_INDEX,
    HIGHWAY_CLASSES,
    is_drivable,
    load_speed_table,
    oneway_direction,
    parse_maxspeed,
    way_speeds,
)

log = logging.getLogger(__name__)

OSM_SUFFIXES = (".osm", ".osm.gz", ".osm.bz2", ".osm.pbf", ".pbf", ".osm.xml")


@dataclass
class WayBatch:
    """Drivable ways collected from a source, as flat lists (one *run* = one way or way piece)."""

    # Typed arrays: 8 bytes per way node instead of a Python object (a city has millions).
    node_ids: array[int] = field(default_factory=lambda: array("q"))
    lats: array[float] = field(default_factory=lambda: array("d"))
    lngs: array[float] = field(default_factory=lambda: array("d"))
    run_ptr: list[int] = field(default_factory=lambda: [0])
    run_way: list[int] = field(default_factory=list)
    run_class: list[int] = field(default_factory=list)
    run_dir: list[int] = field(default_factory=list)
    run_speed_fwd: list[float] = field(default_factory=list)
    run_speed_bwd: list[float] = field(default_factory=list)
    run_name: list[int] = field(default_factory=list)
    names: dict[str, int] = field(default_factory=dict)
    tagged_speed_runs: int = 0

    def add_way(self, way_id: int, tags: Mapping[str, str],
                refs: Iterable[tuple[int, float, float]], speed_table: Mapping[str, float]) -> None:
        """Append one way; ``refs`` are (node id, lat, lng) in way order."""
        direction = oneway_direction(tags)
        fwd, bwd, tagged = way_speeds(tags, speed_table)
        name = tags.get("name")
        name_idx = -1 if not name else self.names.setdefault(name[:200], len(self.names))
        start = len(self.node_ids)
        for ref, lat, lng in refs:
            self.node_ids.append(ref)
            self.lats.append(lat)
            self.lngs.append(lng)
        if len(self.node_ids) - start < 2:
            del self.node_ids[start:], self.lats[start:], self.lngs[start:]
            return
        self.run_ptr.append(len(self.node_ids))
        self.run_way.append(way_id)
        self.run_class.append(CLASS_INDEX[str(tags.get("highway"))])
        self.run_dir.append(direction)
        self.run_speed_fwd.append(fwd)
        self.run_speed_bwd.append(bwd)
        self.run_name.append(name_idx)
        self.tagged_speed_runs += int(tagged)

    @property
    def n_runs(self) -> int:
        return len(self.run_way)


def _osm_tags(tags: Any) -> dict[str, str]:
    keys = ("highway", "oneway", "junction", "maxspeed", "maxspeed:forward", "maxspeed:backward",
            "name", "access", "motor_vehicle", "motorcar", "emergency", "service", "area")
    return {k: tags[k] for k in keys if k in tags}


def read_osm_file(path: Path, *, speed_table: Mapping[str, float], progress: bool | None = None
                  ) -> WayBatch:
    """Stream the drivable ways of an OSM file with pyosmium (one pass, locations cached in C++).

    Parameters
    ----------
    path
        ``.osm``, ``.osm.gz``, ``.osm.bz2`` or ``.osm.pbf``.
    speed_table
        km/h per highway class for ways without a usable ``maxspeed``.
    progress
        Show a tqdm counter of ways read (None = only on a terminal).

    Returns
    -------
    WayBatch
        The drivable ways, split where a node location is missing (ways cut by the extract).
    """
    batch = WayBatch()
    fp = (
        osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY)
        .with_locations()
        .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
        .with_filter(osmium.filter.KeyFilter("highway"))
    )
    disable = None if progress is None else not progress
    with tqdm(desc=f"reading {path.name}", unit=" ways", disable=disable, mininterval=0.5) as bar:
        for w in fp:
            bar.update()
            tags = _osm_tags(w.tags)
            if not is_drivable(tags):
                continue
            piece: list[tuple[int, float, float]] = []
            for n in w.nodes:  # type: ignore[union-attr]
                loc = n.location
                if loc.valid():
                    piece.append((n.ref, loc.lat, loc.lon))
                elif piece:  # a node outside the extract: end this piece of the way
                    batch.add_way(w.id, tags, piece, speed_table)
                    piece = []
            batch.add_way(w.id, tags, piece, speed_table)
    return batch


def _split_ways(batch: WayBatch) -> dict[str, Any]:
    """Fold ways into segments between junctions (vectorised over all way nodes)."""
    nid = np.asarray(batch.node_ids, dtype=np.int64)
    lat = np.asarray(batch.lats, dtype=np.float64)
    lng = np.asarray(batch.lngs, dtype=np.float64)
    ptr = np.asarray(batch.run_ptr, dtype=np.int64)
    runs = ptr.shape[0] - 1
    run_of = np.repeat(np.arange(runs, dtype=np.int64), np.diff(ptr))

    # Drop a node repeated right after itself in the same way (bad data, zero-length step).
    dup = np.zeros(nid.shape[0], dtype=bool)
    dup[1:] = (nid[1:] == nid[:-1]) & (run_of[1:] == run_of[:-1])
    if dup.any():
        nid, lat, lng, run_of = nid[~dup], lat[~dup], lng[~dup], run_of[~dup]
        counts = np.bincount(run_of, minlength=runs)
        ptr = np.zeros(runs + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])

    first, last = ptr[:-1], ptr[1:] - 1
    ok = last > first
    split = np.zeros(nid.shape[0], dtype=bool)
    _, inverse, counts = np.unique(nid, return_inverse=True, return_counts=True)
    split |= counts[inverse] >= 2  # shared with another way (or with itself): a junction
    split[first[ok]] = True
    split[last[ok]] = True
    closed = ok & (nid[first] == nid[np.maximum(last, 0)])
    split[((first + last) // 2)[closed]] = True  # a closed way would otherwise be a self-loop

    pos = np.flatnonzero(split)
    a, b = pos[:-1], pos[1:]
    same = run_of[a] == run_of[b]
    a, b = a[same], b[same]
    loop = nid[a] == nid[b]
    a, b = a[~loop], b[~loop]

    step = np.zeros(nid.shape[0], dtype=np.float64)
    if nid.shape[0] > 1:
        step[1:] = haversine_arrays(lat[:-1], lng[:-1], lat[1:], lng[1:])
    cum = np.cumsum(step)
    seg_len = cum[b] - cum[a]
    run = run_of[a]
    return {"nid": nid, "lat": lat, "lng": lng, "a": a, "b": b, "seg_len": seg_len, "run": run}


def build_graph(batch: WayBatch, *, largest_component: bool = True,
                meta: dict[str, Any] | None = None) -> RoadGraph:
    """Assemble a :class:`RoadGraph` from collected ways.

    Parameters
    ----------
    batch
        Drivable ways with node ids and coordinates (from :func:`read_osm_file` or a generator).
    largest_component
        Keep only the largest strongly connected component (recommended for dispatch).
    meta
        Extra provenance stored in the ``.npz``.

    Returns
    -------
    RoadGraph
    """
    if batch.n_runs == 0:
        raise InvalidInput("no drivable roads found in the extract; "
                           "the existing graph is left as it was")
    s = _split_ways(batch)
    run = s["run"]
    direction = np.asarray(batch.run_dir, dtype=np.int8)[run]
    speed_f = np.asarray(batch.run_speed_fwd, dtype=np.float64)[run]
    speed_b = np.asarray(batch.run_speed_bwd, dtype=np.float64)[run]
    n_seg = s["a"].shape[0]
    seg_ids = np.arange(n_seg, dtype=np.int64)
    fwd = direction >= 0
    bwd = direction <= 0
    e_seg = np.concatenate([seg_ids[fwd], seg_ids[bwd]])
    e_rev = np.concatenate([np.zeros(int(fwd.sum()), bool), np.ones(int(bwd.sum()), bool)])
    e_speed = np.concatenate([speed_f[fwd], speed_b[bwd]])
    names = np.array(list(batch.names), dtype=str) if batch.names else np.array([], dtype="<U1")
    return assemble(
        node_ids_at=s["nid"], coord_lat=s["lat"], coord_lng=s["lng"],
        seg_start=s["a"], seg_end=s["b"], seg_len=s["seg_len"],
        seg_class=np.asarray(batch.run_class, dtype=np.uint8)[run],
        seg_way=np.asarray(batch.run_way, dtype=np.int64)[run],
        seg_name=np.asarray(batch.run_name, dtype=np.int32)[run],
        edge_seg=e_seg, edge_rev=e_rev, edge_speed_kmh=e_speed, names=names,
        largest_component=largest_component, meta=meta,
    )


def assemble(*, node_ids_at: IntArray, coord_lat: FloatArray, coord_lng: FloatArray,
             seg_start: IntArray, seg_end: IntArray, seg_len: FloatArray,
             seg_class: np.ndarray[Any, Any], seg_way: IntArray, seg_name: np.ndarray[Any, Any],
             edge_seg: IntArray, edge_rev: np.ndarray[Any, Any], edge_speed_kmh: FloatArray,
             names: np.ndarray[Any, Any], largest_component: bool = True,
             meta: dict[str, Any] | None = None) -> RoadGraph:
    """Turn segments (geometry ranges over coordinate arrays) and directed edges into a RoadGraph.

    ``node_ids_at[i]`` is the OSM node id at coordinate position ``i``; a segment's end nodes are
    the ids at ``seg_start``/``seg_end``. Edges run along (``edge_rev`` False) or against their
    segment. Edge order, node numbering and coordinate arrays are compacted and renumbered here.
    """
    end_a = node_ids_at[seg_start]
    end_b = node_ids_at[seg_end]
    osm_nodes, inv = np.unique(np.concatenate([end_a, end_b]), return_inverse=True)
    n_seg = seg_start.shape[0]
    seg_u, seg_v = inv[:n_seg], inv[n_seg:]
    src = np.where(edge_rev, seg_v[edge_seg], seg_u[edge_seg])
    dst = np.where(edge_rev, seg_u[edge_seg], seg_v[edge_seg])
    n = osm_nodes.shape[0]

    # Roads nobody can drive on (speed 0: closed, construction) carry no edge at all.
    usable = edge_speed_kmh > 0
    if not usable.any():
        raise InvalidInput("the extract has no road a car can drive on (no drivable highway "
                           "with a speed above 0); the existing graph is left as it was")
    keep_edge = usable.copy()
    drivable_nodes = np.unique(np.concatenate([src[usable], dst[usable]])).shape[0]
    if largest_component:
        m = sp.csr_matrix((np.ones(int(usable.sum())), (src[usable], dst[usable])), shape=(n, n))
        _, labels = connected_components(m, directed=True, connection="strong")
        touched = np.zeros(n, dtype=bool)
        touched[src[usable]] = True
        touched[dst[usable]] = True
        big = np.bincount(labels[touched]).argmax()
        keep_edge &= (labels[src] == big) & (labels[dst] == big)
    if not keep_edge.any():
        raise InvalidInput("no connected road network left after filtering; the existing graph "
                           "is left as it was")
    kept_nodes = np.unique(np.concatenate([src[keep_edge], dst[keep_edge]])).shape[0]
    spurs = _spurs(n=n, seg_u=seg_u, seg_v=seg_v, seg_len=seg_len, seg_start=seg_start,
                   seg_end=seg_end, coord_lat=coord_lat, coord_lng=coord_lng,
                   edge_seg=edge_seg, usable=usable, keep_edge=keep_edge, src=src, dst=dst)
    meta = dict(meta or {}, drivable_nodes=int(drivable_nodes), kept_nodes=int(kept_nodes),
                dropped_nodes=int(drivable_nodes - kept_nodes),
                dropped_share=round((drivable_nodes - kept_nodes) / drivable_nodes, 4),
                drivable_edges=int(usable.sum()), kept_edges=int(keep_edge.sum()),
                spur_segments=int(spurs.seg.shape[0]))
    edge_seg, edge_rev = edge_seg[keep_edge], edge_rev[keep_edge]
    src, dst, edge_speed_kmh = src[keep_edge], dst[keep_edge], edge_speed_kmh[keep_edge]

    # Renumber segments (those still used) and nodes (those still touched).
    used_seg = np.zeros(n_seg, dtype=bool)
    used_seg[edge_seg] = True
    seg_new = np.cumsum(used_seg) - 1
    edge_seg = seg_new[edge_seg]
    seg_start, seg_end, seg_len = seg_start[used_seg], seg_end[used_seg], seg_len[used_seg]
    seg_class, seg_way, seg_name = seg_class[used_seg], seg_way[used_seg], seg_name[used_seg]
    seg_u, seg_v = seg_u[used_seg], seg_v[used_seg]
    used_node = np.zeros(n, dtype=bool)
    used_node[src] = True
    used_node[dst] = True
    node_new = np.cumsum(used_node) - 1
    src, dst = node_new[src], node_new[dst]
    seg_u, seg_v = node_new[seg_u], node_new[seg_v]
    osm_nodes = osm_nodes[used_node]
    node_pos = np.zeros(osm_nodes.shape[0], dtype=np.int64)
    node_pos[seg_u] = seg_start
    node_pos[seg_v] = seg_end
    node_lat, node_lng = coord_lat[node_pos], coord_lng[node_pos]

    # Compact coordinates to the ranges the kept segments and the spurs use.
    marks = np.zeros(coord_lat.shape[0] + 1, dtype=np.int64)
    np.add.at(marks, np.concatenate([seg_start, spurs.start]), 1)
    np.add.at(marks, np.concatenate([seg_end, spurs.end]) + 1, -1)
    used_coord = np.cumsum(marks[:-1]) > 0
    coord_new = np.cumsum(used_coord) - 1
    coord_lat, coord_lng = coord_lat[used_coord], coord_lng[used_coord]
    seg_start, seg_end = coord_new[seg_start], coord_new[seg_end]

    length = seg_len[edge_seg]
    speed = edge_speed_kmh.astype(np.float64)
    with np.errstate(divide="ignore"):
        travel = np.where(speed > 0, length / (speed / 3.6), np.inf)

    order = np.lexsort((dst, src))
    edge_seg, edge_rev, src, dst = edge_seg[order], edge_rev[order], src[order], dst[order]
    length, speed, travel = length[order], speed[order], travel[order]
    n_seg = seg_start.shape[0]
    seg_fwd = np.full(n_seg, -1, dtype=np.int64)
    seg_bwd = np.full(n_seg, -1, dtype=np.int64)
    idx = np.arange(edge_seg.shape[0], dtype=np.int64)
    seg_fwd[edge_seg[~edge_rev]] = idx[~edge_rev]
    seg_bwd[edge_seg[edge_rev]] = idx[edge_rev]

    return RoadGraph(
        node_lat=node_lat, node_lng=node_lng, node_osm_id=osm_nodes.astype(np.int64),
        coord_lat=coord_lat, coord_lng=coord_lng,
        seg_start=seg_start.astype(np.int64), seg_end=seg_end.astype(np.int64),
        seg_fwd=seg_fwd, seg_bwd=seg_bwd,
        edge_src=src.astype(np.int32), edge_dst=dst.astype(np.int32),
        edge_length_m=length, edge_time_s=travel, edge_speed_kmh=speed.astype(np.float32),
        edge_class=seg_class[edge_seg].astype(np.uint8), edge_way=seg_way[edge_seg],
        edge_name=seg_name[edge_seg].astype(np.int32), edge_seg=edge_seg,
        edge_rev=edge_rev.astype(bool), names=names, classes=HIGHWAY_CLASSES,
        meta=dict(meta or {}),
        spur_start=coord_new[spurs.start].astype(np.int64),
        spur_end=coord_new[spurs.end].astype(np.int64), spur_len_m=spurs.length,
        spur_u_node=np.where(spurs.u_node >= 0, node_new[np.maximum(spurs.u_node, 0)], -1),
        spur_v_node=np.where(spurs.v_node >= 0, node_new[np.maximum(spurs.v_node, 0)], -1),
        spur_u_m=spurs.u_m, spur_v_m=spurs.v_m,
    )


#: A left-out road is kept as a spur only when one of its ends is this close to the network
#: (along the left-out roads, or in a straight line for a fragment that meets it nowhere).
SPUR_MAX_M = 500.0


@dataclass(frozen=True)
class _SpurSet:
    """Left-out drivable segments and where each end joins the kept network (node indices
    before the kept nodes are renumbered; -1 = nowhere near)."""

    seg: IntArray
    start: IntArray
    end: IntArray
    length: FloatArray
    u_node: IntArray
    v_node: IntArray
    u_m: FloatArray
    v_m: FloatArray


def _spurs(*, n: int, seg_u: IntArray, seg_v: IntArray, seg_len: FloatArray,
           seg_start: IntArray, seg_end: IntArray, coord_lat: FloatArray, coord_lng: FloatArray,
           edge_seg: IntArray, usable: np.ndarray[Any, Any], keep_edge: np.ndarray[Any, Any],
           src: IntArray, dst: IntArray) -> _SpurSet:
    """The drivable segments the component filter left out, each attached at both ends to the
    nearest kept junction along the left-out roads (a multi-source Dijkstra from every kept
    node they touch), or, for a fragment that touches none, to the nearest kept node in a
    straight line. Segments farther than :data:`SPUR_MAX_M` from the network are not kept."""
    n_seg = seg_u.shape[0]
    drivable = np.zeros(n_seg, dtype=bool)
    drivable[edge_seg[usable]] = True
    kept_seg = np.zeros(n_seg, dtype=bool)
    kept_seg[edge_seg[keep_edge]] = True
    ids = np.flatnonzero(drivable & ~kept_seg)
    empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    if ids.shape[0] == 0:
        return _SpurSet(empty_i, empty_i, empty_i, empty_f, empty_i, empty_i, empty_f, empty_f)
    kept_node = np.zeros(n, dtype=bool)
    kept_node[src[keep_edge]] = True
    kept_node[dst[keep_edge]] = True
    su, sv, sl = seg_u[ids], seg_v[ids], seg_len[ids]
    # Undirected graph of the left-out segments (the shortest of parallel ones; never 0 m, as a
    # stored zero would not count as an edge).
    a, b = np.minimum(su, sv), np.maximum(su, sv)
    order = np.lexsort((sl, b, a))
    first = np.ones(order.shape[0], dtype=bool)
    first[1:] = (a[order][1:] != a[order][:-1]) | (b[order][1:] != b[order][:-1])
    a, b, w = a[order][first], b[order][first], np.maximum(sl[order][first], 1e-3)
    m = sp.csr_matrix((w, (a, b)), shape=(n, n))
    touched = np.unique(np.concatenate([su, sv]))
    junctions = touched[kept_node[touched]]
    dist = np.full(n, np.inf)
    source = np.full(n, -1, dtype=np.int64)
    if junctions.shape[0]:
        d, _, src_of = dijkstra(m, directed=False, indices=junctions, min_only=True,
                                return_predecessors=True)
        dist, source = d, src_of.astype(np.int64)
    lonely = touched[~np.isfinite(dist[touched])]
    if lonely.shape[0]:  # a fragment that meets the network nowhere: the nearest kept node
        pos = np.zeros(n, dtype=np.int64)
        pos[seg_u], pos[seg_v] = seg_start, seg_end
        kept_ids = np.flatnonzero(kept_node)
        lat0 = float(np.mean(coord_lat[pos[kept_ids]]))
        lng0 = float(np.mean(coord_lng[pos[kept_ids]]))
        kx, ky = local_xy(coord_lat[pos[kept_ids]], coord_lng[pos[kept_ids]], lat0, lng0)
        lx, ly = local_xy(coord_lat[pos[lonely]], coord_lng[pos[lonely]], lat0, lng0)
        _, j = cKDTree(np.column_stack([kx, ky])).query(np.column_stack([lx, ly]), k=1)
        near = kept_ids[j]
        source[lonely] = near
        dist[lonely] = haversine_arrays(coord_lat[pos[lonely]], coord_lng[pos[lonely]],
                                        coord_lat[pos[near]], coord_lng[pos[near]])
    u_m, v_m = dist[su], dist[sv]
    keep = np.minimum(u_m, v_m) <= SPUR_MAX_M
    u_node = np.where(np.isfinite(u_m), source[su], -1)
    v_node = np.where(np.isfinite(v_m), source[sv], -1)
    return _SpurSet(seg=ids[keep], start=seg_start[ids][keep], end=seg_end[ids][keep],
                    length=sl[keep].astype(np.float64), u_node=u_node[keep],
                    v_node=v_node[keep], u_m=np.where(np.isfinite(u_m), u_m, np.inf)[keep],
                    v_m=np.where(np.isfinite(v_m), v_m, np.inf)[keep])


def _meta(source: str, speed_table: Mapping[str, float], t0: float, **extra: Any) -> dict[str, Any]:
    return {"source": source, "built_at": datetime.now(UTC).isoformat(),
            "speed_table_kmh": dict(speed_table), "import_s": round(time.perf_counter() - t0, 3),
            **extra}


def import_osm_file(path: Path | str, *, speed_table_file: Path | None = None,
                    speed_table: Mapping[str, float] | None = None, progress: bool | None = None,
                    largest_component: bool = True) -> RoadGraph:
    """Read an OSM extract and build the drivable graph.

    Parameters
    ----------
    path
        ``.osm``, ``.osm.gz``, ``.osm.bz2`` or ``.osm.pbf`` file.
    speed_table_file, speed_table
        JSON override of the per-class speeds, or the table itself.
    progress
        tqdm progress while reading (None = when on a terminal).
    largest_component
        Keep only the largest strongly connected component.

    Returns
    -------
    RoadGraph
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(21, "is a directory, not an OSM file", str(path))
    if not path.is_file():
        raise FileNotFoundError(2, "no such OSM file", str(path))
    t0 = time.perf_counter()
    table = dict(speed_table) if speed_table is not None else load_speed_table(speed_table_file)
    batch = read_osm_file(path, speed_table=table, progress=progress)
    t_read = time.perf_counter() - t0
    graph = build_graph(batch, largest_component=largest_component,
                        meta=_meta(str(path), table, t0, ways=batch.n_runs,
                                   ways_with_maxspeed=batch.tagged_speed_runs))
    graph.meta["import_s"] = round(time.perf_counter() - t0, 3)
    log.info("%s: %d drivable ways read in %.2f s -> %d nodes, %d edges (%.2f s in all)",
             path.name, batch.n_runs, t_read, graph.n_nodes, graph.n_edges,
             graph.meta["import_s"])
    return graph


# --- osmnx ----------------------------------------------------------------------------------------

def _first(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _tag_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value)


def graph_from_osmnx(G: Any, *, speed_table: Mapping[str, float] | None = None,
                     largest_component: bool = True, source: str = "osmnx") -> RoadGraph:
    """Convert an osmnx ``MultiDiGraph`` (``x`` = lng, ``y`` = lat) to a :class:`RoadGraph`.

    osmnx has already applied one-way rules (a one-way street has only its forward edge); edges
    whose ``highway`` is not drivable (osmnx's XML reader keeps footways too) are dropped. The
    two directions of a two-way street become one segment with a forward and a backward edge.

    Parameters
    ----------
    G
        An osmnx graph, e.g. from ``osmnx.graph_from_place`` or ``osmnx.graph_from_xml``.
    speed_table
        km/h per highway class (default: the documented table).
    largest_component
        Keep only the largest strongly connected component.
    source
        Provenance stored in the graph's metadata.
    """
    t0 = time.perf_counter()
    table = dict(speed_table) if speed_table is not None else load_speed_table(None)
    node_xy = {n: (float(d["y"]), float(d["x"])) for n, d in G.nodes(data=True)}
    lat_l: list[float] = []
    lng_l: list[float] = []
    ids_l: list[int] = []
    seg_a: list[int] = []
    seg_b: list[int] = []
    seg_cls: list[int] = []
    seg_way: list[int] = []
    seg_name: list[int] = []
    seg_len: list[float] = []
    e_seg: list[int] = []
    e_rev: list[bool] = []
    e_speed: list[float] = []
    names: dict[str, int] = {}
    pending: dict[tuple[int, int, int, float], tuple[int, int, int]] = {}  # -> (seg, u, v)

    for u, v, data in G.edges(data=True):
        if u == v:
            continue
        classes = data.get("highway")
        hw = next((h for h in (classes if isinstance(classes, list) else [classes])
                   if h in CLASS_INDEX), None)
        if hw is None:
            continue
        tags = {"highway": hw}
        for tag in ("access", "service", "area", "junction"):
            val = _tag_value(_first(data.get(tag)))
            if val is not None:
                tags[tag] = val
        if not is_drivable(tags):
            continue
        osmid = int(_first(data.get("osmid")) or 0)
        length = float(data.get("length", 0.0))
        speed = parse_maxspeed(_tag_value(data.get("maxspeed"))) or table[hw]
        key = (min(u, v), max(u, v), osmid, round(length, 1))
        # The opposite direction of a way piece already seen shares its segment.
        waiting = pending.get(key)
        if waiting is not None and waiting[1] == v and waiting[2] == u:
            del pending[key]
            e_seg.append(waiting[0])
            e_rev.append(True)
            e_speed.append(speed)
            continue
        geom = data.get("geometry")
        if geom is not None:
            coords = [(float(y), float(x)) for x, y in geom.coords]
        else:
            coords = [node_xy[u], node_xy[v]]
        start = len(lat_l)
        for la, ln in coords:
            lat_l.append(la)
            lng_l.append(ln)
            ids_l.append(-1)
        ids_l[start] = int(u)
        ids_l[-1] = int(v)
        seg = len(seg_a)
        seg_a.append(start)
        seg_b.append(len(lat_l) - 1)
        seg_cls.append(CLASS_INDEX[hw])
        seg_way.append(osmid)
        name = _tag_value(_first(data.get("name")))
        seg_name.append(-1 if not name else names.setdefault(name[:200], len(names)))
        seg_len.append(length)
        e_seg.append(seg)
        e_rev.append(False)
        e_speed.append(speed)
        pending[key] = (seg, int(u), int(v))
    if not e_seg:
        raise InvalidInput("no drivable roads found in the osmnx graph; "
                           "the existing graph is left as it was")
    return assemble(
        node_ids_at=np.asarray(ids_l, dtype=np.int64),
        coord_lat=np.asarray(lat_l, dtype=np.float64),
        coord_lng=np.asarray(lng_l, dtype=np.float64),
        seg_start=np.asarray(seg_a, dtype=np.int64), seg_end=np.asarray(seg_b, dtype=np.int64),
        seg_len=np.asarray(seg_len, dtype=np.float64),
        seg_class=np.asarray(seg_cls, dtype=np.uint8), seg_way=np.asarray(seg_way, dtype=np.int64),
        seg_name=np.asarray(seg_name, dtype=np.int32),
        edge_seg=np.asarray(e_seg, dtype=np.int64), edge_rev=np.asarray(e_rev, dtype=bool),
        edge_speed_kmh=np.asarray(e_speed, dtype=np.float64),
        names=np.array(list(names), dtype=str) if names else np.array([], dtype="<U1"),
        largest_component=largest_component, meta=_meta(source, table, t0),
    )
