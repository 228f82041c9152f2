"""The sequencer's port (``storage.sequencer``) on ``Tables``.

A round holds ``Tables.sequencer_lock`` (a second round meanwhile gets None, as on
PostgreSQL) and keeps its write aside until the block ends without error, then applies
it at once: the tables never show half a round.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

from authority.storage.ledger_reader import Checkpoint, NodeKey
from authority.storage.sequencer import Leaf, Node, PendingEntry, SequencingRound

from . import Tables
from .ledger_reader import nodes


class MemorySequencerStore:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    @asynccontextmanager
    async def round(self) -> AsyncIterator[SequencingRound | None]:
        lock = self._tables.sequencer_lock
        if lock.locked():
            yield None
            return
        async with lock:
            current = _MemoryRound(self._tables)
            yield current
            current.commit()


class _MemoryRound:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables
        self._written: tuple[Sequence[Leaf], Sequence[Node], Checkpoint] | None = None

    async def tree_size(self) -> int:
        return len(self._tables.ledger_leaves)

    async def nodes(self, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
        return nodes(self._tables, keys)

    async def floor(self, horizon: int) -> int | None:
        # Entries are appended in id order, one writer at a time, as on SQLite.
        leaves = self._tables.ledger_leaves
        return max((leaf["entry_id"] for leaf in leaves), default=None)

    async def unsequenced(self, floor: int | None, limit: int) -> list[PendingEntry]:
        sequenced = {leaf["entry_id"] for leaf in self._tables.ledger_leaves}
        pending: list[PendingEntry] = []
        entries = self._tables.ledger_entries
        for position in range(0 if floor is None else max(0, floor), len(entries)):
            if len(pending) >= limit:
                break
            entry_id = position + 1
            if entry_id not in sequenced:
                pending.append(PendingEntry(entry_id, entries[position]["body"]))
        return pending

    async def write(
        self, leaves: Sequence[Leaf], nodes: Sequence[Node], checkpoint: Checkpoint
    ) -> None:
        self._written = (leaves, nodes, checkpoint)

    def commit(self) -> None:
        if self._written is None:
            return
        leaves, inner, checkpoint = self._written
        tables = self._tables
        # What the SQL tables' keys refuse: a leaf, node or checkpoint stored twice.
        size = len(tables.ledger_leaves)
        sequenced = {leaf["entry_id"] for leaf in tables.ledger_leaves}
        if (
            [leaf.leaf_index for leaf in leaves] != list(range(size, size + len(leaves)))
            or any(leaf.entry_id in sequenced for leaf in leaves)
            or any((node.level, node.node_index) in tables.ledger_nodes for node in inner)
            or any(row["tree_size"] == checkpoint.tree_size for row in tables.ledger_checkpoints)
        ):
            raise ValueError("the round's write conflicts with the stored tree")
        for leaf in leaves:
            tables.ledger_leaves.append(
                {
                    "leaf_index": leaf.leaf_index,
                    "entry_id": leaf.entry_id,
                    "leaf_hash": leaf.leaf_hash,
                }
            )
        for node in inner:
            tables.ledger_nodes[(node.level, node.node_index)] = node.hash
        tables.ledger_checkpoints.append(
            {
                "tree_size": checkpoint.tree_size,
                "root_hash": checkpoint.root_hash,
                "created_at": checkpoint.created_at,
                "kid": checkpoint.kid,
                "signed": checkpoint.signed,
            }
        )
