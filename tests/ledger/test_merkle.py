"""RFC 9162 Merkle proofs: every size, every leaf, every pair of sizes, and known vectors."""

from __future__ import annotations

import hashlib

import pytest

from geodispatch.ledger.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)


def _reference_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 2.1.1 MTH written as the RFC states it (recursive split)."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(_reference_root(leaves[:k]), _reference_root(leaves[k:]))


LEAVES = [f"event {i}".encode() for i in range(40)]


def test_roots_match_the_rfc_definition_for_every_size() -> None:
    tree = MerkleTree()
    assert tree.root() == EMPTY_ROOT
    for i, leaf in enumerate(LEAVES):
        tree.append(leaf_hash(leaf))
        want = _reference_root(LEAVES[: i + 1])
        assert tree.root() == want
        assert root_of([leaf_hash(x) for x in LEAVES[: i + 1]]) == want
    for size in range(len(LEAVES) + 1):
        assert tree.root(size) == _reference_root(LEAVES[:size])


def test_known_vector_from_the_certificate_transparency_test_suite() -> None:
    # RFC 6962 reference test data (Google's CT merkle_tree_test): 8 leaves, root for size 8.
    leaves = [bytes.fromhex(h) for h in
              ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
               "606162636465666768696a6b6c6d6e6f"]]
    tree = MerkleTree(leaf_hash(x) for x in leaves)
    assert tree.root().hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    assert tree.root(1).hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert tree.root(3).hex() == "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"


def test_every_inclusion_proof_verifies_and_a_wrong_one_does_not() -> None:
    tree = MerkleTree(leaf_hash(x) for x in LEAVES)
    for size in range(1, len(LEAVES) + 1):
        root = tree.root(size)
        for i in range(size):
            proof = tree.inclusion_proof(i, size)
            assert verify_inclusion(leaf_hash(LEAVES[i]), i, size, proof, root)
            assert not verify_inclusion(leaf_hash(b"forged"), i, size, proof, root)
            if size > 1:
                assert not verify_inclusion(leaf_hash(LEAVES[i]), (i + 1) % size, size, proof,
                                            root)


def test_every_consistency_proof_verifies_and_a_forked_tree_does_not() -> None:
    tree = MerkleTree(leaf_hash(x) for x in LEAVES)
    forked = MerkleTree(leaf_hash(x) for x in LEAVES)
    forked.levels = MerkleTree(leaf_hash(x if i != 3 else b"x") for i, x in
                               enumerate(LEAVES)).levels
    for new in range(1, len(LEAVES) + 1):
        for old in range(1, new + 1):
            proof = tree.consistency_proof(old, new)
            assert verify_consistency(old, new, tree.root(old), tree.root(new), proof)
            if old > 3:
                # The old head of a history that differs at leaf 3 is not a prefix of this one.
                assert not verify_consistency(old, new, forked.root(old), tree.root(new), proof)


def test_out_of_range_requests_are_refused() -> None:
    tree = MerkleTree(leaf_hash(x) for x in LEAVES[:5])
    with pytest.raises(ValueError):
        tree.inclusion_proof(5, 5)
    with pytest.raises(ValueError):
        tree.consistency_proof(3, 6)
    with pytest.raises(ValueError):
        tree.root(6)
    assert not verify_inclusion(leaf_hash(LEAVES[0]), 0, 0, [], EMPTY_ROOT)
    assert not verify_consistency(4, 3, EMPTY_ROOT, EMPTY_ROOT, [])


def test_a_tree_built_level_by_level_equals_one_appended_leaf_by_leaf() -> None:
    for n in [*range(0, 70), 1023, 1024, 1025]:
        hashes = [leaf_hash(str(i).encode()) for i in range(n)]
        assert MerkleTree.from_leaf_hashes(hashes).levels == MerkleTree(hashes).levels, n
    with pytest.raises(ValueError):
        MerkleTree.from_leaf_hashes([b"\x00" * 31])
