"""RFC 6962 Merkle proofs: every inclusion and consistency proof verifies; tampering fails."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from observability._merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    node_hash,
    prefix_roots,
    verify_consistency,
    verify_inclusion,
)


def test_small_trees_by_hand() -> None:
    """Roots of 0-3 leaves follow the RFC's definition literally."""
    a, b, c = (leaf_hash(x) for x in (b"a", b"b", b"c"))
    assert merkle_root([]) == EMPTY_ROOT
    assert merkle_root([a]) == a
    assert merkle_root([a, b]) == node_hash(a, b)
    assert merkle_root([a, b, c]) == node_hash(node_hash(a, b), c)


@given(st.integers(1, 40), st.data())
def test_every_inclusion_proof_verifies(size: int, data: st.DataObject) -> None:
    """For any tree and leaf, the proof verifies, and not for another leaf or position."""
    leaves = [leaf_hash(str(i).encode()) for i in range(size)]
    root = merkle_root(leaves)
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof(index, leaves)
    assert verify_inclusion(index, size, leaves[index], proof, root)
    assert not verify_inclusion(index, size, leaf_hash(b"forged"), proof, root)
    if size > 1:
        other = (index + 1) % size
        assert not verify_inclusion(other, size, leaves[index], proof, root)


@given(st.integers(1, 40), st.data())
def test_every_consistency_proof_verifies(size: int, data: st.DataObject) -> None:
    """Any older tree is proven a prefix of any newer one; a rewritten prefix is not."""
    leaves = [leaf_hash(str(i).encode()) for i in range(size)]
    old = data.draw(st.integers(1, size))
    proof = consistency_proof(old, leaves)
    assert verify_consistency(old, size, merkle_root(leaves[:old]), merkle_root(leaves), proof)
    if old < size:
        rewritten = [leaf_hash(b"x"), *leaves[1:old]]
        assert not verify_consistency(old, size, merkle_root(rewritten), merkle_root(leaves), proof)


@given(st.integers(1, 80))
def test_the_kept_tree_gives_the_recursive_definitions_answers(size: int) -> None:
    """MerkleTree's O(log n) proofs equal RFC 6962's recursive PATH and PROOF, for every
    leaf and every older size; prefix_roots equals MTH of every prefix."""
    leaves = [leaf_hash(str(i).encode()) for i in range(size)]
    tree = MerkleTree(leaves)
    assert tree.root() == merkle_root(leaves)
    for index in range(size):
        assert tree.inclusion_proof(index) == inclusion_proof(index, leaves)
    for old in range(1, size + 1):
        assert tree.consistency_proof(old) == consistency_proof(old, leaves)
    sizes = list(range(1, size + 1))
    assert prefix_roots(leaves, sizes) == {n: merkle_root(leaves[:n]) for n in sizes}


@given(st.lists(st.integers(0, 40), min_size=1, max_size=6))
def test_a_compact_range_grown_in_any_steps_gives_the_root(steps: list[int]) -> None:
    """The checkpointer's O(log n) running root equals the recursive MTH at every size."""
    head = CompactRange()
    leaves: list[bytes] = []
    for step in steps:
        more = [leaf_hash(str(len(leaves) + i).encode()) for i in range(step)]
        head.extend(more)
        leaves += more
        assert head.size == len(leaves)
        assert head.root() == merkle_root(leaves)
