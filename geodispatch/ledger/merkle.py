"""Merkle tree hashing, inclusion and consistency proofs as RFC 6962 / RFC 9162 define them.

Leaves are hashed ``SHA-256(0x00 || leaf)`` and interior nodes ``SHA-256(0x01 || left || right)``;
the tree over ``n`` leaves splits at the largest power of two smaller than ``n``. These are the
exact algorithms Certificate Transparency, Trillian and Sigstore Rekor use, so any of their
verifiers can check this log's proofs.

This module has no dependency on the database or the rest of the project: the standalone
verifier (``geodispatch verify-log --export``) uses it on an exported log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf: bytes) -> bytes:
    """``SHA-256(0x00 || leaf)``."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only Merkle tree kept in memory as the perfect subtrees of every level.

    ``levels[0]`` holds the leaf hashes; ``levels[k][i]`` is the root of the perfect subtree over
    leaves ``[i * 2**k, (i + 1) * 2**k)``, stored as soon as it is complete. Appending is
    amortised O(1) hashes; the root or a proof for any earlier size costs O(log n) hashes, so the
    sequencer can serve proofs between any two tree heads without recomputing the tree.
    """

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        self.extend(leaf_hashes)

    @classmethod
    def from_leaf_hashes(cls, leaf_hashes: Sequence[bytes]) -> MerkleTree:
        """The tree over ``leaf_hashes`` built level by level (the same levels as appending them
        one by one, at a fraction of the cost: for verifiers that read a whole log)."""
        level = list(leaf_hashes)
        if any(len(h) != HASH_SIZE for h in level):
            raise ValueError("a leaf hash is 32 bytes")
        tree = cls()
        tree.levels = [level]
        node = hashlib.sha256(b"\x01")
        while len(level) >= 2:
            up = []
            for i in range(0, len(level) - 1, 2):
                h = node.copy()  # SHA-256(0x01 || left || right), without joining the bytes
                h.update(level[i])
                h.update(level[i + 1])
                up.append(h.digest())
            tree.levels.append(up)
            level = up
        return tree

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, lh: bytes) -> None:
        """Add one leaf hash (already ``leaf_hash``-ed)."""
        if len(lh) != HASH_SIZE:
            raise ValueError("a leaf hash is 32 bytes")
        self.levels[0].append(lh)
        level = 0
        while len(self.levels[level]) % 2 == 0:
            pair = self.levels[level][-2:]
            if level + 1 == len(self.levels):
                self.levels.append([])
            self.levels[level + 1].append(node_hash(pair[0], pair[1]))
            level += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        for lh in leaf_hashes:
            self.append(lh)

    def _node(self, level: int, index: int) -> bytes:
        """The root of the perfect subtree ``index`` of ``level`` (a stored node)."""
        return self.levels[level][index]

    def new_nodes(self, since: MerkleTree) -> list[tuple[int, int, bytes]]:
        """``(level, index, hash)`` of every interior node this tree has and ``since`` (a
        prefix of it) has not."""
        out: list[tuple[int, int, bytes]] = []
        for level in range(1, len(self.levels)):
            have = len(since.levels[level]) if level < len(since.levels) else 0
            out.extend((level, i, h) for i, h in enumerate(self.levels[level][have:], have))
        return out

    def _subtree(self, start: int, end: int) -> bytes:
        """Root of leaves ``[start, end)`` (``end <= size``), RFC 9162 MTH."""
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        # A perfect, aligned subtree is stored.
        if n & (n - 1) == 0 and start % n == 0:
            return self._node(n.bit_length() - 1, start // n)
        k = _split(n)
        return node_hash(self._subtree(start, start + k), self._subtree(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        """The tree head hash over the first ``size`` leaves (all by default)."""
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} outside 0..{self.size}")
        return self._subtree(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The audit path of leaf ``index`` in the tree of ``size`` leaves (RFC 9162 2.1.3.1)."""
        size = self.size if size is None else size
        if not 0 <= index < size <= self.size:
            raise ValueError(f"leaf {index} is not in a tree of {size}")
        return self._path(index, 0, size)

    def _path(self, m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return self._path(m, start, start + k) + [self._subtree(start + k, end)]
        return self._path(m - k, start + k, end) + [self._subtree(start, start + k)]

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Proof that the tree of ``old_size`` is a prefix of the tree of ``new_size``."""
        new_size = self.size if new_size is None else new_size
        if not 0 <= old_size <= new_size <= self.size:
            raise ValueError(f"no consistency proof from {old_size} to {new_size}")
        if old_size == 0 or old_size == new_size:
            return []
        return self._subproof(old_size, 0, new_size, True)

    def _subproof(self, m: int, start: int, end: int, complete: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if complete else [self._subtree(start, end)]
        k = _split(n)
        if m <= k:
            return self._subproof(m, start, start + k, complete) + [self._subtree(start + k, end)]
        return self._subproof(m - k, start + k, end, False) + [self._subtree(start, start + k)]


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """The tree head hash over ``leaf_hashes`` (level by level, no recursion)."""
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    # Fold pairs bottom-up; an odd last node is carried up unchanged (the RFC 9162 split gives the
    # same tree: the right subtree of every split is the unbalanced one).
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def verify_inclusion(lh: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
                     ) -> bool:
    """RFC 9162 2.1.3.2: does ``proof`` show leaf hash ``lh`` at ``index`` under ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = lh
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2: is the tree ``old_root`` (size ``old_size``) a prefix of ``new_root``?"""
    if old_size > new_size or old_size < 0:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
