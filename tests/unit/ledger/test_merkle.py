"""RFC 9162 §2.1 tree, proofs and verification, against a naive MTH, PATH and PROOF (the
RFC's recursive definitions written out below) and against pymerkle."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pymerkle import InmemoryTree

from authority.ledger import merkle
from authority.ledger.merkle import (
    EMPTY_ROOT,
    MAX_PROOF_HASHES,
    CompactRange,
    InvalidProof,
    MemoryTree,
    leaf_hash,
    node_hash,
    split,
    verify_consistency,
    verify_inclusion,
)


@contextmanager
def counted_hashes() -> Iterator[list[int]]:
    """The number of interior-node hashes the verifier computes: its work, counted."""
    hashed = [0]
    real = merkle.node_hash

    def counting(left: bytes, right: bytes) -> bytes:
        hashed[0] += 1
        return real(left, right)

    merkle.node_hash = counting
    try:
        yield hashed
    finally:
        merkle.node_hash = real


def naive_mth(data: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1, literally."""
    if not data:
        return EMPTY_ROOT
    if len(data) == 1:
        return leaf_hash(data[0])
    k = split(len(data))
    return node_hash(naive_mth(data[:k]), naive_mth(data[k:]))


def naive_path(m: int, data: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 ``PATH(m, D[n])``, literally (RFC 6962 §2.1.1 is the same)."""
    n = len(data)
    if n == 1:
        return []
    k = split(n)
    if m < k:
        return [*naive_path(m, data[:k]), naive_mth(data[k:])]
    return [*naive_path(m - k, data[k:]), naive_mth(data[:k])]


def naive_subproof(m: int, data: list[bytes], complete: bool) -> list[bytes]:
    """RFC 9162 §2.1.4.1 ``SUBPROOF(m, D[n], b)``, literally."""
    n = len(data)
    if m == n:
        return [] if complete else [naive_mth(data)]
    k = split(n)
    if m <= k:
        return [*naive_subproof(m, data[:k], complete), naive_mth(data[k:])]
    return [*naive_subproof(m - k, data[k:], False), naive_mth(data[:k])]


def naive_proof(m: int, data: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.4.1 ``PROOF(m, D[n]) = SUBPROOF(m, D[n], true)``."""
    return naive_subproof(m, data, True)


def naive_root_from_path(m: int, n: int, leaf: bytes, path: list[bytes]) -> bytes | None:
    """The root ``PATH(m, D[n])`` leads to from ``leaf``, by the definition run backwards;
    None when the path has not the length the definition gives it."""
    if n == 1:
        return None if path else leaf
    if not path:
        return None
    k = split(n)
    if m < k:
        inner = naive_root_from_path(m, k, leaf, path[:-1])
        return None if inner is None else node_hash(inner, path[-1])
    inner = naive_root_from_path(m - k, n - k, leaf, path[:-1])
    return None if inner is None else node_hash(path[-1], inner)


#: Tree sizes: any up to 513, and the powers of two and their neighbours, where the
#: recursions change shape.
sizes = st.one_of(
    st.integers(min_value=1, max_value=513),
    st.sampled_from([2**k + d for k in range(10) for d in (-1, 0, 1) if 2**k + d > 0]),
)


def build(n: int) -> tuple[list[bytes], MemoryTree]:
    data = [f"entry {i}".encode() for i in range(n)]
    tree = MemoryTree()
    for item in data:
        tree.append(item)
    return data, tree


# RFC 9162 §2.1.5 example tree: 7 leaves d0..d6. Proofs per §2.1.3 / §2.1.4 figures.
def test_rfc_9162_example_shapes() -> None:
    _, tree = build(7)
    assert len(tree.inclusion_proof(0, 7)) == 3  # b, h, l
    assert len(tree.inclusion_proof(3, 7)) == 3  # c, g, l
    assert len(tree.inclusion_proof(4, 7)) == 3  # f, j, k
    assert len(tree.inclusion_proof(6, 7)) == 2  # i, k
    assert len(tree.consistency_proof(3, 7)) == 4  # c, d, g, l
    assert len(tree.consistency_proof(4, 7)) == 1  # l
    assert len(tree.consistency_proof(6, 7)) == 3  # i, j, k
    assert tree.consistency_proof(7, 7) == []


def test_empty_tree_root_is_hash_of_nothing() -> None:
    assert CompactRange().root() == EMPTY_ROOT == naive_mth([])


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=300))
def test_root_matches_naive_mth_and_pymerkle(n: int) -> None:
    data, tree = build(n)
    assert tree.state.root() == naive_mth(data)
    if n:
        other = InmemoryTree()
        for item in data:
            other.append_entry(item)
        assert tree.state.root() == other.get_root()
    for m in {0, n // 3, n // 2, n}:
        assert tree.root(m) == naive_mth(data[:m])


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_inclusion_proofs_verify(data: st.DataObject) -> None:
    size = data.draw(st.integers(min_value=1, max_value=513))
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    items, tree = build(size)
    proof = tree.inclusion_proof(index, size)
    root = naive_mth(items)
    verify_inclusion(leaf_hash(items[index]), index, size, proof, root)
    # The same audit path as an independent implementation (pymerkle puts the leaf first).
    other = InmemoryTree()
    for item in items:
        other.append_entry(item)
    assert proof == other.prove_inclusion(index + 1, size).path[1:]
    # ...and it proves nothing else.
    wrong_leaf = leaf_hash(b"not an entry")
    with pytest.raises(InvalidProof):
        verify_inclusion(wrong_leaf, index, size, proof, root)
    if size > 1:
        other_index = (index + 1) % size
        with pytest.raises(InvalidProof):
            verify_inclusion(leaf_hash(items[index]), other_index, size, proof, root)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_consistency_proofs_verify(data: st.DataObject) -> None:
    second = data.draw(st.integers(min_value=1, max_value=513))
    first = data.draw(st.integers(min_value=1, max_value=second))
    items, tree = build(second)
    proof = tree.consistency_proof(first, second)
    first_root, second_root = naive_mth(items[:first]), naive_mth(items)
    verify_consistency(first, second, first_root, second_root, proof)
    # A forked history (one leaf of the old tree changed) does not verify.
    forked = list(items)
    forked[data.draw(st.integers(min_value=0, max_value=first - 1))] = b"forged"
    with pytest.raises(InvalidProof):
        verify_consistency(first, second, naive_mth(forked[:first]), second_root, proof)
    if first < second:
        with pytest.raises(InvalidProof):
            verify_consistency(first, second, first_root, naive_mth(forked), proof)


hashes = st.binary(min_size=32, max_size=32)
garbage = st.one_of(st.binary(max_size=40), hashes)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=-5, max_value=2**64),
    st.integers(min_value=-5, max_value=2**64),
    st.lists(garbage, max_size=MAX_PROOF_HASHES + 10),
    hashes,
    hashes,
)
def test_malformed_inclusion_proofs_fail_fast(
    index: int, size: int, path: list[bytes], leaf: bytes, root: bytes
) -> None:
    with counted_hashes() as hashed, pytest.raises(InvalidProof):
        verify_inclusion(leaf, index, size, path, root)
    assert hashed[0] <= MAX_PROOF_HASHES


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=-5, max_value=2**64),
    st.integers(min_value=-5, max_value=2**64),
    st.lists(garbage, max_size=MAX_PROOF_HASHES + 10),
    hashes,
    hashes,
)
def test_malformed_consistency_proofs_fail_fast(
    first: int, second: int, path: list[bytes], first_root: bytes, second_root: bytes
) -> None:
    # The one proof that holds without hashes: a tree is consistent with itself.
    assume(not (first == second and first_root == second_root and not path))
    with counted_hashes() as hashed, pytest.raises(InvalidProof):
        verify_consistency(first, second, first_root, second_root, path)
    # Two hashes per proof hash at most (fr and sr), never more than the proof allows.
    assert hashed[0] <= 2 * (MAX_PROOF_HASHES + 1)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_tampered_real_proofs_are_rejected(data: st.DataObject) -> None:
    size = data.draw(st.integers(min_value=2, max_value=300))
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    items, tree = build(size)
    root = tree.root()
    proof = tree.inclusion_proof(index, size)
    leaf = leaf_hash(items[index])
    # (A different size with the same root is not a mutation: RFC 9162 authenticates
    # the size and the root together, in one signed checkpoint.)
    mutation = data.draw(st.sampled_from(["drop", "extra", "flip", "truncate_hash"]))
    bad = list(proof)
    if mutation == "drop":
        bad.pop(data.draw(st.integers(min_value=0, max_value=len(bad) - 1)))
    elif mutation == "extra":
        bad.insert(data.draw(st.integers(min_value=0, max_value=len(bad))), b"\x00" * 32)
    elif mutation == "flip":
        i = data.draw(st.integers(min_value=0, max_value=len(bad) - 1))
        bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
    elif mutation == "truncate_hash":
        i = data.draw(st.integers(min_value=0, max_value=len(bad) - 1))
        bad[i] = bad[i][:31]
    with pytest.raises(InvalidProof):
        verify_inclusion(leaf, index, size, bad, root)


def test_proof_of_a_large_tree_is_logarithmic() -> None:
    """A proof for 2^40 leaves has 40 hashes and is checked without the tree."""
    tree_path = [b"\x11" * 32] * 40
    with pytest.raises(InvalidProof):
        verify_inclusion(b"\x22" * 32, 2**40 - 5, 2**40, tree_path, b"\x33" * 32)


@settings(max_examples=200, deadline=None)
@given(st.data(), sizes)
def test_inclusion_proofs_are_the_rfcs_path(data: st.DataObject, size: int) -> None:
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    items, tree = build(size)
    assert tree.inclusion_proof(index, size) == naive_path(index, items)
    # Every smaller tree of the same log, too (proofs are served for old checkpoints).
    older = data.draw(st.integers(min_value=index + 1, max_value=size))
    assert tree.inclusion_proof(index, older) == naive_path(index, items[:older])


@settings(max_examples=200, deadline=None)
@given(st.data(), sizes)
def test_consistency_proofs_are_the_rfcs_proof(data: st.DataObject, second: int) -> None:
    first = data.draw(st.integers(min_value=1, max_value=second))
    items, tree = build(second)
    assert tree.consistency_proof(first, second) == naive_proof(first, items)


@settings(max_examples=300, deadline=None)
@given(st.data(), sizes)
def test_inclusion_verification_agrees_with_the_definition(data: st.DataObject, size: int) -> None:
    """verify_inclusion (the RFC's iterative algorithm) accepts exactly the paths that lead
    to the root under the recursive definition, for real, altered and misplaced paths."""
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    items, _ = build(size)
    root = naive_mth(items)
    path = naive_path(index, items)
    claimed_index, claimed_size = index, size
    change = data.draw(st.sampled_from(["none", "index", "size", "drop", "extra", "swap"]))
    if change == "index":
        claimed_index = data.draw(st.integers(min_value=0, max_value=size - 1))
    elif change == "size":
        claimed_size = data.draw(st.integers(min_value=claimed_index + 1, max_value=size + 8))
    elif change == "drop" and path:
        path.pop(data.draw(st.integers(min_value=0, max_value=len(path) - 1)))
    elif change == "extra":
        path.insert(data.draw(st.integers(min_value=0, max_value=len(path))), root)
    elif change == "swap" and len(path) > 1:
        i = data.draw(st.integers(min_value=0, max_value=len(path) - 2))
        path[i], path[i + 1] = path[i + 1], path[i]
    leaf = leaf_hash(items[index])
    expected = naive_root_from_path(claimed_index, claimed_size, leaf, path) == root
    try:
        verify_inclusion(leaf, claimed_index, claimed_size, path, root)
    except InvalidProof:
        accepted = False
    else:
        accepted = True
    assert accepted is expected
    if change == "none":
        assert accepted


@settings(max_examples=200, deadline=None)
@given(st.data(), sizes)
def test_tampered_consistency_proofs_are_rejected(data: st.DataObject, second: int) -> None:
    first = data.draw(st.integers(min_value=1, max_value=second))
    items, _ = build(second)
    proof = naive_proof(first, items)
    first_root, second_root = naive_mth(items[:first]), naive_mth(items)
    verify_consistency(first, second, first_root, second_root, proof)
    # (Other tree sizes for the same roots are not a mutation: as for inclusion, the size
    # and the root are authenticated together, in one signed checkpoint.)
    mutation = data.draw(st.sampled_from(["drop", "extra", "flip", "truncate_hash"]))
    bad = list(proof)
    if mutation == "extra" or not bad:
        bad.insert(data.draw(st.integers(min_value=0, max_value=len(bad))), b"\x00" * 32)
    elif mutation == "drop":
        bad.pop(data.draw(st.integers(min_value=0, max_value=len(bad) - 1)))
    elif mutation == "flip":
        i = data.draw(st.integers(min_value=0, max_value=len(bad) - 1))
        bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
    else:
        i = data.draw(st.integers(min_value=0, max_value=len(bad) - 1))
        bad[i] = bad[i][:31]
    with pytest.raises(InvalidProof):
        verify_consistency(first, second, first_root, second_root, bad)
