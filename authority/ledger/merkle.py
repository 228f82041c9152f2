"""RFC 9162 §2.1 Merkle Tree Hash, inclusion and consistency proofs, and their verification.

Hashing (§2.1.1): ``MTH({}) = SHA-256()``, a leaf is ``SHA-256(0x00 || d)`` and an
interior node ``SHA-256(0x01 || left || right)``. The tree over n leaves splits at k, the
largest power of two smaller than n.

The tree is kept as in Go's checksum database (``golang.org/x/mod/sumdb/tlog``): every
complete (perfect) subtree is stored once, when its last leaf is appended, under
``(level, index)``. Appending a leaf costs amortised one new node, the "compact range"
(the roots of the perfect subtrees that make up the tree, one per set bit of its size)
gives the root, and any proof needs O(log² n) stored nodes, never the leaves.

Why not pymerkle (7.0), which hashes the same way: its proofs are not RFC 9162 proofs (a
consistency proof from 4 to 8 leaves carries 4 hashes and its own ``rule``/``subset``
bits, where RFC 9162 §2.1.4 carries one), so auditors could not check them with any
other RFC 9162 implementation; its storage interface is synchronous while ours is
async SQL; and it recomputes subtree roots from leaves, with an in-process cache, so a
fresh instance reads all n leaf hashes for its first root or proof. The tests use
pymerkle as an independent implementation to check these roots and audit paths.

Verification follows the algorithms of §2.1.3.2 and §2.1.4.2 step by step. Their cost
is bounded by the proof's length, which is checked first (at most 2·64 hashes of 32
bytes each; tree sizes below 2^63), so a malformed proof is rejected in bounded time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

HASH_SIZE = 32
MAX_TREE_SIZE = 2**63 - 1  # BigInteger leaf indices
MAX_PROOF_HASHES = 2 * 64

EMPTY_ROOT = hashlib.sha256(b"").digest()

# A stored node: (level, index); level 0 is a leaf, (level, i) covers the leaves
# [i·2^level, (i+1)·2^level).
NodeKey = tuple[int, int]
# A range of leaves [start, end) whose Merkle Tree Hash is an element of a proof.
Range = tuple[int, int]


class InvalidProof(ValueError):
    """A proof that does not verify, or is malformed."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1: ``MTH({d(0)}) = HASH(0x00 || d(0))``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: ``HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1): where MTH splits (§2.1.1)."""
    return 1 << ((n - 1).bit_length() - 1)


# --- the compact range: the tree's state, for appending and for the root ------------------
def frontier_keys(size: int) -> list[NodeKey]:
    """The perfect subtrees that make up a tree of ``size`` leaves, left to right."""
    keys: list[NodeKey] = []
    position = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            keys.append((level, position >> level))
            position += 1 << level
    return keys


@dataclass
class CompactRange:
    """The roots of the perfect subtrees of a tree of ``size`` leaves, largest first.

    Appending costs amortised O(1) hashes; ``root`` costs O(log n).
    """

    size: int = 0
    roots: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0 <= self.size <= MAX_TREE_SIZE or len(self.roots) != self.size.bit_count():
            raise ValueError("a compact range has one root per set bit of its size")

    def append(self, leaf: bytes) -> list[tuple[NodeKey, bytes]]:
        """Add the hash of the next leaf; return the subtrees it completes, leaf first."""
        if len(leaf) != HASH_SIZE:
            raise ValueError("a leaf hash has 32 bytes")
        index = self.size
        completed: list[tuple[NodeKey, bytes]] = [((0, index), leaf)]
        current = leaf
        level = 0
        while index >> level & 1:
            # The subtree just completed at `level` is the right sibling of the previous
            # root of the same height: merge them into their parent.
            current = node_hash(self.roots.pop(), current)
            level += 1
            completed.append(((level, index >> level), current))
        self.roots.append(current)
        self.size += 1
        return completed

    def root(self) -> bytes:
        """The tree's Merkle Tree Hash: the roots folded from the right (§2.1.1)."""
        if not self.roots:
            return EMPTY_ROOT
        result = self.roots[-1]
        for left in reversed(self.roots[:-1]):
            result = node_hash(left, result)
        return result

    def copy(self) -> CompactRange:
        return CompactRange(self.size, list(self.roots))


# --- proofs: which ranges, then which stored nodes --------------------------------------------
def inclusion_ranges(index: int, size: int) -> list[Range]:
    """RFC 9162 §2.1.3.1 ``PATH(m, D[n])`` as leaf ranges, from the leaf upwards."""
    if not 0 <= index < size <= MAX_TREE_SIZE:
        raise ValueError("the leaf index must be below the tree size")
    path: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = split(end - start)
        if index < start + k:
            # PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) for m < k
            path.append((start + k, end))
            end = start + k
        else:
            # PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k]) for m >= k
            path.append((start, start + k))
            start += k
    path.reverse()
    return path


def consistency_ranges(first: int, second: int) -> list[Range]:
    """RFC 9162 §2.1.4.1 ``PROOF(m, D[n]) = SUBPROOF(m, D[n], true)`` as leaf ranges."""
    if not 0 < first <= second <= MAX_TREE_SIZE:
        raise ValueError("consistency needs 0 < first <= second")
    proof: list[Range] = []
    start, end, m, whole = 0, second, first, True
    while m != end - start:
        k = split(end - start)
        if m <= k:
            # SUBPROOF(m, D[n], b) = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            proof.append((start + k, end))
            end = start + k
        else:
            # SUBPROOF(m, D[n], b) = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            proof.append((start, start + k))
            start += k
            m -= k
            whole = False
    if not whole:
        # SUBPROOF(m, D[m], false) = {MTH(D[m])}; with b = true the old root is omitted.
        proof.append((start, end))
    proof.reverse()
    return proof


def range_keys(start: int, end: int) -> list[NodeKey]:
    """The perfect subtrees, left to right, whose fold is ``MTH(D[start:end])``.

    ``[start, end)`` must be a subtree of an RFC 9162 tree (every range a proof names
    is), so each piece is aligned on its own width.
    """
    keys: list[NodeKey] = []
    position = start
    width = end - start
    for level in range(width.bit_length() - 1, -1, -1):
        if width >> level & 1:
            if position & ((1 << level) - 1):
                raise ValueError("not a subtree of a Merkle tree")
            keys.append((level, position >> level))
            position += 1 << level
    return keys


def needed_keys(ranges: Iterable[Range]) -> set[NodeKey]:
    return {key for start, end in ranges for key in range_keys(start, end)}


def fold(hashes: Sequence[bytes]) -> bytes:
    """Fold subtree roots given left to right into their tree's root (§2.1.1)."""
    if not hashes:
        return EMPTY_ROOT
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def assemble(ranges: Sequence[Range], nodes: Mapping[NodeKey, bytes]) -> list[bytes]:
    """The proof's hashes from stored nodes; ``KeyError`` if one is missing."""
    return [fold([nodes[key] for key in range_keys(s, e)]) for s, e in ranges]


# --- verification ---------------------------------------------------------------------------
def _check_hashes(path: Sequence[bytes], *hashes: bytes) -> None:
    if len(path) > MAX_PROOF_HASHES:
        raise InvalidProof("the proof is too long")
    for value in (*path, *hashes):
        if not isinstance(value, bytes) or len(value) != HASH_SIZE:
            raise InvalidProof("a hash in the proof is not 32 bytes")


def _equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2; raises ``InvalidProof`` unless ``leaf`` is at ``index``."""
    _check_hashes(path, leaf, root)
    # 1. "Compare leaf_index from the inclusion_proof_v2 structure against tree_size.
    #     If leaf_index is greater than or equal to tree_size, then fail."
    if not 0 <= index < size <= MAX_TREE_SIZE:
        raise InvalidProof("the leaf index is not below the tree size")
    # 2. "Set fn to leaf_index and sn to tree_size - 1." 3. "Set r to hash."
    fn, sn, r = index, size - 1, leaf
    # 4. "For each value p in the inclusion_path array:"
    for p in path:
        # a. "If sn is 0, then stop the iteration and fail the proof verification."
        if sn == 0:
            raise InvalidProof("the inclusion proof is too long")
        # b. "If LSB(fn) is set, or if fn is equal to sn, then:"
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # "If LSB(fn) is not set, then right-shift both fn and sn equally until
            #  either LSB(fn) is set or fn is 0."
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        # c. "Finally, right-shift both fn and sn one time."
        fn >>= 1
        sn >>= 1
    # 5. "Compare sn to 0. Compare r against the root_hash. If sn is equal to 0 and r and
    #     the root_hash are equal, then the log has proven the inclusion of hash."
    if sn != 0:
        raise InvalidProof("the inclusion proof is too short")
    if not _equal(r, root):
        raise InvalidProof("the inclusion proof does not lead to the root")


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2; raises ``InvalidProof`` unless tree ``first`` is a prefix."""
    _check_hashes(path, first_root, second_root)
    if not 0 < first <= second <= MAX_TREE_SIZE:
        raise InvalidProof("consistency needs 0 < first <= second")
    if first == second:
        # §2.1.4.1: the proof between a tree and itself is empty; the roots must agree.
        if path:
            raise InvalidProof("the consistency proof between equal sizes is empty")
        if not _equal(first_root, second_root):
            raise InvalidProof("different roots for the same tree size")
        return
    # 1. "If consistency_path is an empty array, stop and fail the proof verification."
    if not path:
        raise InvalidProof("the consistency proof is empty")
    hashes = list(path)
    # 2. "If first is an exact power of 2, then prepend first_hash to the
    #     consistency_path array."
    if first & (first - 1) == 0:
        hashes.insert(0, first_root)
    # 3. "Set fn to first - 1 and sn to second - 1."
    fn, sn = first - 1, second - 1
    # 4. "If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is
    #     not set."
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. "Set both fr and sr to the first value in the consistency_path array."
    fr = sr = hashes[0]
    # 6. "For each subsequent value c in the consistency_path array:"
    for c in hashes[1:]:
        # a. "If sn is 0, then stop the iteration and fail the proof verification."
        if sn == 0:
            raise InvalidProof("the consistency proof is too long")
        # b. "If LSB(fn) is set, or if fn is equal to sn, then:"
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            # "If LSB(fn) is not set, then right-shift both fn and sn equally until
            #  either LSB(fn) is set or fn is 0."
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            # "Otherwise: Set sr to HASH(0x01 || sr || c)."
            sr = node_hash(sr, c)
        # c. "Finally, right-shift both fn and sn one time."
        fn >>= 1
        sn >>= 1
    # 7. "After completing iterating through the consistency_path array as described
    #     above, verify that the fr calculated is equal to the first_hash supplied, that
    #     the sr calculated is equal to the second_hash supplied, and that sn is 0."
    if sn != 0:
        raise InvalidProof("the consistency proof is too short")
    if not _equal(fr, first_root):
        raise InvalidProof("the consistency proof does not lead to the first root")
    if not _equal(sr, second_root):
        raise InvalidProof("the consistency proof does not lead to the second root")


# --- an in-memory node store: the verifier's and the tests' tree --------------------------
class MemoryTree:
    """Every stored node in a dict: the same append and proof code as the SQL store."""

    def __init__(self) -> None:
        self.state = CompactRange()
        self.nodes: dict[NodeKey, bytes] = {}

    @property
    def size(self) -> int:
        return self.state.size

    def append(self, data: bytes) -> None:
        self.nodes.update(self.state.append(leaf_hash(data)))

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ValueError("no such tree size")
        return fold([self.nodes[key] for key in frontier_keys(size)])

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        if size > self.size:
            raise ValueError("no such tree size")
        return assemble(inclusion_ranges(index, size), self.nodes)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        if second > self.size:
            raise ValueError("no such tree size")
        return assemble(consistency_ranges(first, second), self.nodes)
