"""RFC 6962 Merkle trees (as RFC 9162 restates them): roots, inclusion and consistency proofs.

leaf hash = SHA-256(0x00 || entry), node hash = SHA-256(0x01 || left || right); the tree of
n leaves splits at the largest power of two below n.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The root over leaf hashes (MTH)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


class CompactRange:
    """The root of a growing log in O(log n) memory: the roots of the perfect subtrees that
    the binary digits of its size name, largest first (RFC 6962's tree is exactly those,
    joined right to left). Appending a leaf costs amortized O(1) hashes."""

    __slots__ = ("_peaks", "size")

    def __init__(self) -> None:
        self.size = 0
        self._peaks: list[tuple[int, bytes]] = []  # (height, root), heights decreasing

    def extend(self, leaves: Sequence[bytes]) -> None:
        for leaf in leaves:
            height, value = 0, leaf
            while self._peaks and self._peaks[-1][0] == height:
                _, left = self._peaks.pop()
                height, value = height + 1, node_hash(left, value)
            self._peaks.append((height, value))
            self.size += 1

    def root(self) -> bytes:
        if not self._peaks:
            return EMPTY_ROOT
        value = self._peaks[-1][1]
        for _, peak in reversed(self._peaks[:-1]):
            value = node_hash(peak, value)
        return value


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The audit path of leaf `index` in the tree of `leaves` (PATH)."""
    if not 0 <= index < len(leaves):
        raise ValueError("index outside the tree")
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_proof(index, leaves[:k]), merkle_root(leaves[k:])]
    return [*inclusion_proof(index - k, leaves[k:]), merkle_root(leaves[:k])]


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does `proof` put `leaf` at `index` of the tree with `root`?"""
    if not 0 <= index < size:
        return False
    fn, sn, value = index, size - 1, leaf
    for step in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            value = node_hash(step, value)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            value = node_hash(value, step)
        fn >>= 1
        sn >>= 1
    return sn == 0 and value == root


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]): that the tree of `old_size` leaves is a prefix of this one."""
    if not 0 < old_size <= len(leaves):
        raise ValueError("old size outside the tree")
    return _subproof(old_size, leaves, complete=True)


def _subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [merkle_root(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete), merkle_root(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), merkle_root(leaves[:k])]


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2."""
    if old_size == new_size:
        return old_root == new_root and not proof
    if not 0 < old_size < new_size:
        return False
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
    for step in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(step, fr)
            sr = node_hash(step, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, step)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


class MerkleTree:
    """The RFC 6962 tree over `leaves`, every level kept: built in O(n), then each inclusion
    or consistency proof costs O(log n) (the functions above cost O(n) a proof).

    A node at level h, index i covers leaves [i * 2^h, min((i + 1) * 2^h, n)); an odd last
    node is carried up unhashed, which gives exactly RFC 6962's split at the largest power of
    two (the tests hold these methods to the recursive definitions above).
    """

    __slots__ = ("_levels",)

    def __init__(self, leaves: Sequence[bytes]) -> None:
        levels = [list(leaves)]
        while len(levels[-1]) > 1:
            below = levels[-1]
            above = [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
            if len(below) % 2:
                above.append(below[-1])
            levels.append(above)
        self._levels = levels

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def root(self) -> bytes:
        return self._levels[-1][0] if self.size else EMPTY_ROOT

    def inclusion_proof(self, index: int) -> list[bytes]:
        if not 0 <= index < self.size:
            raise ValueError("index outside the tree")
        path = []
        for level in self._levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index >>= 1
        return path

    def consistency_proof(self, old_size: int) -> list[bytes]:
        if not 0 < old_size <= self.size:
            raise ValueError("old size outside the tree")
        return self._subproof(old_size, 0, self.size, complete=True)

    def _node(self, start: int, end: int) -> bytes:
        """MTH of leaves[start:end], a subtree that RFC 6962's splits produce."""
        height = (end - start - 1).bit_length()
        return self._levels[height][start >> height]

    def _subproof(self, m: int, start: int, end: int, complete: bool) -> list[bytes]:
        proof: list[bytes] = []
        while True:
            n = end - start
            if m == n:
                if not complete:
                    proof.append(self._node(start, end))
                break
            k = _split(n)
            if m <= k:
                proof.append(self._node(start + k, end))
                end = start + k
            else:
                proof.append(self._node(start, start + k))
                m -= k
                start += k
                complete = False
        return proof[::-1]


def prefix_roots(leaves: Sequence[bytes], sizes: Sequence[int]) -> dict[int, bytes]:
    """The root of each prefix of `leaves` named in `sizes`, in one pass: O(n + s log n).

    A stack of perfect subtrees (a compact range) grows with each leaf; a prefix's root
    folds the stack from the right, as RFC 6962's split at the largest power of two does.
    """
    wanted = sorted({size for size in sizes if 0 < size <= len(leaves)})
    roots: dict[int, bytes] = {}
    stack: list[tuple[int, bytes]] = []  # (height, hash) of perfect subtrees, left to right
    position = 0
    for count, leaf in enumerate(leaves, start=1):
        if position == len(wanted):
            break
        node, height = leaf, 0
        while stack and stack[-1][0] == height:
            node = node_hash(stack.pop()[1], node)
            height += 1
        stack.append((height, node))
        if wanted[position] == count:
            root = stack[-1][1]
            for _, left in reversed(stack[:-1]):
                root = node_hash(left, root)
            roots[count] = root
            position += 1
    return roots
