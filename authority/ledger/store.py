"""The ledger's SQL reads: tree nodes, proofs, checkpoints, entries and the export.

Every query is bounded by an index: leaves and checkpoints by their primary keys, nodes
by ``(level, node_index)``, entry filters by the indexed columns of ``ledger_entries``,
pages by a keyset on ``leaf_index``. Nothing here writes; the sequencer does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authority.storage.schema import (
    ledger_checkpoints,
    ledger_entries,
    ledger_leaves,
    ledger_nodes,
)

from .checkpoints import encode_hash
from .merkle import (
    CompactRange,
    NodeKey,
    assemble,
    consistency_ranges,
    fold,
    frontier_keys,
    inclusion_ranges,
    needed_keys,
)

EXPORT_BATCH = 1000
_IN_CHUNK = 500  # bound on the size of one IN (...) list


class NoSuchTreeSize(ValueError):
    """A proof asked about leaves or a tree size the ledger has not sequenced yet."""


async def tree_size(conn: AsyncConnection) -> int:
    """The number of sequenced leaves (max leaf_index + 1, by the primary key)."""
    value = (await conn.execute(select(func.max(ledger_leaves.c.leaf_index)))).scalar()
    return 0 if value is None else int(value) + 1


async def load_nodes(conn: AsyncConnection, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
    """Stored node hashes by key: level 0 from ledger_leaves, the rest from ledger_nodes."""
    wanted = sorted(set(keys))
    leaves = [index for level, index in wanted if level == 0]
    inner = [key for key in wanted if key[0] > 0]
    found: dict[NodeKey, bytes] = {}
    for i in range(0, len(leaves), _IN_CHUNK):
        chunk = leaves[i : i + _IN_CHUNK]
        rows = await conn.execute(
            select(ledger_leaves.c.leaf_index, ledger_leaves.c.leaf_hash).where(
                ledger_leaves.c.leaf_index.in_(chunk)
            )
        )
        found.update({(0, int(r.leaf_index)): bytes(r.leaf_hash) for r in rows})
    for i in range(0, len(inner), _IN_CHUNK):
        chunk2 = inner[i : i + _IN_CHUNK]
        rows = await conn.execute(
            select(ledger_nodes.c.level, ledger_nodes.c.node_index, ledger_nodes.c.hash).where(
                tuple_(ledger_nodes.c.level, ledger_nodes.c.node_index).in_(chunk2)
            )
        )
        found.update({(int(r.level), int(r.node_index)): bytes(r.hash) for r in rows})
    missing = [key for key in wanted if key not in found]
    if missing:
        raise LookupError(f"the ledger tree is missing node {missing[0]}")
    return found


async def compact_range(conn: AsyncConnection, size: int) -> CompactRange:
    """The tree state at ``size`` from its O(log n) stored subtree roots."""
    keys = frontier_keys(size)
    nodes = await load_nodes(conn, keys)
    return CompactRange(size, [nodes[key] for key in keys])


async def root_at(conn: AsyncConnection, size: int) -> bytes:
    keys = frontier_keys(size)
    nodes = await load_nodes(conn, keys)
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


async def inclusion_proof(conn: AsyncConnection, leaf_index: int, size: int) -> InclusionProof:
    """RFC 9162 §2.1.3.1 audit path of ``leaf_index`` in the tree of ``size`` leaves."""
    if not 0 <= leaf_index < size:
        raise NoSuchTreeSize("the leaf index must be below the tree size")
    if size > await tree_size(conn):
        raise NoSuchTreeSize("the tree has not reached that size")
    ranges = inclusion_ranges(leaf_index, size)
    keys = needed_keys(ranges) | {(0, leaf_index)} | set(frontier_keys(size))
    nodes = await load_nodes(conn, keys)
    return InclusionProof(
        leaf_index,
        size,
        nodes[(0, leaf_index)],
        assemble(ranges, nodes),
        fold([nodes[key] for key in frontier_keys(size)]),
    )


async def consistency_proof(conn: AsyncConnection, first: int, second: int) -> ConsistencyProof:
    """RFC 9162 §2.1.4.1 proof that the tree of ``first`` leaves is a prefix of ``second``."""
    if not 0 < first <= second:
        raise NoSuchTreeSize("consistency needs 0 < first <= second")
    if second > await tree_size(conn):
        raise NoSuchTreeSize("the tree has not reached that size")
    ranges = consistency_ranges(first, second) if first != second else []
    keys = needed_keys(ranges) | set(frontier_keys(first)) | set(frontier_keys(second))
    nodes = await load_nodes(conn, keys)
    return ConsistencyProof(
        first,
        second,
        assemble(ranges, nodes),
        fold([nodes[key] for key in frontier_keys(first)]),
        fold([nodes[key] for key in frontier_keys(second)]),
    )


# --- checkpoints -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CheckpointRow:
    tree_size: int
    root_hash: bytes
    created_at: int
    kid: str
    signed: str


def _checkpoint(row: Any) -> CheckpointRow:
    return CheckpointRow(
        int(row.tree_size), bytes(row.root_hash), int(row.created_at), row.kid, row.signed
    )


async def latest_checkpoint(conn: AsyncConnection) -> CheckpointRow | None:
    row = (
        await conn.execute(
            select(ledger_checkpoints).order_by(ledger_checkpoints.c.tree_size.desc()).limit(1)
        )
    ).first()
    return None if row is None else _checkpoint(row)


async def list_checkpoints(
    conn: AsyncConnection, *, after: int | None, limit: int, up_to: int | None = None
) -> list[CheckpointRow]:
    """Checkpoints by increasing tree size, after the cursor ``after`` (a tree size) and,
    with ``up_to``, of at most that size."""
    query = select(ledger_checkpoints).order_by(ledger_checkpoints.c.tree_size).limit(limit)
    if after is not None:
        query = query.where(ledger_checkpoints.c.tree_size > after)
    if up_to is not None:
        query = query.where(ledger_checkpoints.c.tree_size <= up_to)
    return [_checkpoint(row) for row in await conn.execute(query)]


# --- entries ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EntryFilter:
    agent_id: str | None = None
    owner_id: str | None = None
    delegation_id: str | None = None
    tool: str | None = None
    decision: str | None = None
    kind: str | None = None
    since: int | None = None
    until: int | None = None


@dataclass(frozen=True, slots=True)
class SequencedEntry:
    leaf_index: int
    leaf_hash: bytes
    body: str


def _entries_query(filters: EntryFilter) -> Select[Any]:
    e, leaf = ledger_entries, ledger_leaves
    query = select(leaf.c.leaf_index, leaf.c.leaf_hash, e.c.body).select_from(
        leaf.join(e, e.c.id == leaf.c.entry_id)
    )
    for column, value in (
        (e.c.agent_id, filters.agent_id),
        (e.c.owner_id, filters.owner_id),
        (e.c.delegation_id, filters.delegation_id),
        (e.c.tool, filters.tool),
        (e.c.decision, filters.decision),
        (e.c.kind, filters.kind),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.since is not None:
        query = query.where(e.c.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(e.c.created_at < filters.until)
    return query


async def list_entries(
    conn: AsyncConnection, filters: EntryFilter, *, after: int | None, limit: int
) -> list[SequencedEntry]:
    """Sequenced entries matching ``filters`` by increasing leaf index, after ``after``."""
    query = _entries_query(filters).order_by(ledger_leaves.c.leaf_index).limit(limit)
    if after is not None:
        query = query.where(ledger_leaves.c.leaf_index > after)
    rows = await conn.execute(query)
    return [SequencedEntry(int(r.leaf_index), bytes(r.leaf_hash), r.body) for r in rows]


async def export_entries(
    engine: AsyncEngine, *, start: int, end: int, batch: int = EXPORT_BATCH
) -> AsyncIterator[SequencedEntry]:
    """Leaves ``[start, end)`` in order, one keyset batch per short read.

    Memory stays at one batch whatever the ledger's size, and no connection is held
    while the client is slow to read a batch.
    """
    position = start
    while position < end:
        async with engine.connect() as conn:
            rows = list(
                await conn.execute(
                    _entries_query(EntryFilter())
                    .where(ledger_leaves.c.leaf_index >= position)
                    .where(ledger_leaves.c.leaf_index < min(end, position + batch))
                    .order_by(ledger_leaves.c.leaf_index)
                )
            )
        if not rows:
            return
        for r in rows:
            yield SequencedEntry(int(r.leaf_index), bytes(r.leaf_hash), r.body)
        position = int(rows[-1].leaf_index) + 1


def export_line(entry: SequencedEntry) -> bytes:
    """One line of the export: the body verbatim, as a string, so its bytes survive."""
    line = {
        "leaf_index": entry.leaf_index,
        "leaf_hash": encode_hash(entry.leaf_hash),
        "body": entry.body,
    }
    return orjson.dumps(line) + b"\n"
