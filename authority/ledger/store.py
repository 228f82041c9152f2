"""The ledger's proofs (RFC 9162 §2.1.3, §2.1.4), tree states and export lines.

Everything is computed from the stored tree as the read port gives it
(``storage.ledger_reader.TreeReader``: the auditors' ``LedgerReader``, or a sequencing
round): a proof or a tree state needs O(log n) stored subtree roots, never the leaves.
A node the tree should hold but the storage does not is a ``LookupError``, never a proof.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from authority.storage.ledger_reader import NodeKey, SequencedEntry, TreeReader

from .checkpoints import encode_hash
from .merkle import (
    CompactRange,
    assemble,
    consistency_ranges,
    fold,
    frontier_keys,
    inclusion_ranges,
    needed_keys,
)


class NoSuchTreeSize(ValueError):
    """A proof asked about leaves or a tree size the ledger has not sequenced yet."""


async def load_nodes(tree: TreeReader, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
    """The stored hashes of ``keys``; every one of them must be stored."""
    wanted = set(keys)
    found = await tree.nodes(wanted)
    missing = sorted(key for key in wanted if key not in found)
    if missing:
        raise LookupError(f"the ledger tree is missing node {missing[0]}")
    return found


async def compact_range(tree: TreeReader, size: int) -> CompactRange:
    """The tree state at ``size`` from its O(log n) stored subtree roots."""
    keys = frontier_keys(size)
    nodes = await load_nodes(tree, keys)
    return CompactRange(size, [nodes[key] for key in keys])


async def root_at(tree: TreeReader, size: int) -> bytes:
    keys = frontier_keys(size)
    nodes = await load_nodes(tree, keys)
    return fold([nodes[key] for key in keys])


# --- proofs ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    path: list[bytes]
    root_hash: bytes


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    first: int
    second: int
    path: list[bytes]
    first_root: bytes
    second_root: bytes


async def inclusion_proof(tree: TreeReader, leaf_index: int, size: int) -> InclusionProof:
    """RFC 9162 §2.1.3.1 audit path of ``leaf_index`` in the tree of ``size`` leaves."""
    if not 0 <= leaf_index < size:
        raise NoSuchTreeSize("the leaf index must be below the tree size")
    if size > await tree.tree_size():
        raise NoSuchTreeSize("the tree has not reached that size")
    ranges = inclusion_ranges(leaf_index, size)
    keys = needed_keys(ranges) | {(0, leaf_index)} | set(frontier_keys(size))
    nodes = await load_nodes(tree, keys)
    return InclusionProof(
        leaf_index,
        size,
        nodes[(0, leaf_index)],
        assemble(ranges, nodes),
        fold([nodes[key] for key in frontier_keys(size)]),
    )


async def consistency_proof(tree: TreeReader, first: int, second: int) -> ConsistencyProof:
    """RFC 9162 §2.1.4.1 proof that the tree of ``first`` leaves is a prefix of ``second``."""
    if not 0 < first <= second:
        raise NoSuchTreeSize("consistency needs 0 < first <= second")
    if second > await tree.tree_size():
        raise NoSuchTreeSize("the tree has not reached that size")
    ranges = consistency_ranges(first, second) if first != second else []
    keys = needed_keys(ranges) | set(frontier_keys(first)) | set(frontier_keys(second))
    nodes = await load_nodes(tree, keys)
    return ConsistencyProof(
        first,
        second,
        assemble(ranges, nodes),
        fold([nodes[key] for key in frontier_keys(first)]),
        fold([nodes[key] for key in frontier_keys(second)]),
    )


# --- the export ------------------------------------------------------------------------------
def export_line(entry: SequencedEntry) -> bytes:
    """One line of the export: the body verbatim, as a string, so its bytes survive."""
    line = {
        "leaf_index": entry.leaf_index,
        "leaf_hash": encode_hash(entry.leaf_hash),
        "body": entry.body,
    }
    return orjson.dumps(line) + b"\n"
