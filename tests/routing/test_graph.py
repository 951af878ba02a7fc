"""The compact graph file: round trip, load time and the matrices."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from geodispatch.routing.graph import _ARRAYS, RoadGraph


def test_npz_round_trip(baltimore: RoadGraph, tmp_path: Path) -> None:
    """Saving and loading gives back every array, the name table and the metadata."""
    path = baltimore.save(tmp_path / "g.npz")
    back = RoadGraph.load(path)
    for name in _ARRAYS:
        assert np.array_equal(getattr(back, name), getattr(baltimore, name)), name
    assert list(back.names) == list(baltimore.names)
    assert back.classes == baltimore.classes
    assert back.meta["source"] == baltimore.meta["source"]


def test_load_is_fast(baltimore: RoadGraph, tmp_path: Path) -> None:
    """A city graph loads in well under a second."""
    path = baltimore.save(tmp_path / "g.npz")
    t0 = time.perf_counter()
    RoadGraph.load(path)
    assert time.perf_counter() - t0 < 0.25


def test_csr_reverse_is_transpose(baltimore: RoadGraph) -> None:
    """csr() holds u->v travel times (fastest of parallel edges) and csr_reverse() its transpose."""
    fwd, rev = baltimore.csr(), baltimore.csr_reverse()
    assert fwd.shape == (baltimore.n_nodes, baltimore.n_nodes)
    assert (rev != fwd.T).nnz == 0
    e = int(np.argmax(baltimore.edge_length_m))
    u, v = int(baltimore.edge_src[e]), int(baltimore.edge_dst[e])
    assert fwd[u, v] <= baltimore.edge_time_s[e]
