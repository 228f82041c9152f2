"""The ledger's read port (``storage.ledger_reader``) on ``Tables``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from authority.storage.ledger_reader import (
    EXPORT_BATCH,
    Checkpoint,
    EntryFilter,
    NodeKey,
    SequencedEntry,
)

from . import Tables


def nodes(tables: Tables, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
    found: dict[NodeKey, bytes] = {}
    for level, index in set(keys):
        if level == 0:
            if 0 <= index < len(tables.ledger_leaves):
                found[(0, index)] = tables.ledger_leaves[index]["leaf_hash"]
        elif (level, index) in tables.ledger_nodes:
            found[(level, index)] = tables.ledger_nodes[(level, index)]
    return found


def _checkpoint(row: dict[str, Any]) -> Checkpoint:
    return Checkpoint(
        row["tree_size"], row["root_hash"], row["created_at"], row["kid"], row["signed"]
    )


def _matches(entry: dict[str, Any], filters: EntryFilter) -> bool:
    for column, value in (
        ("agent_id", filters.agent_id),
        ("owner_id", filters.owner_id),
        ("delegation_id", filters.delegation_id),
        ("tool", filters.tool),
        ("decision", filters.decision),
        ("kind", filters.kind),
    ):
        if value is not None and entry.get(column) != value:
            return False
    if filters.since is not None and entry["created_at"] < filters.since:
        return False
    return filters.until is None or entry["created_at"] < filters.until


class MemoryLedgerReader:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    def _sequenced(self, leaf: dict[str, Any]) -> tuple[dict[str, Any], SequencedEntry]:
        entry = self._tables.ledger_entries[leaf["entry_id"] - 1]
        return entry, SequencedEntry(leaf["leaf_index"], leaf["leaf_hash"], entry["body"])

    async def tree_size(self) -> int:
        return len(self._tables.ledger_leaves)

    async def nodes(self, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
        return nodes(self._tables, keys)

    async def latest_checkpoint(self) -> Checkpoint | None:
        rows = self._tables.ledger_checkpoints
        return None if not rows else _checkpoint(max(rows, key=lambda r: r["tree_size"]))

    async def checkpoints(
        self, *, after: int | None, limit: int, up_to: int | None = None
    ) -> list[Checkpoint]:
        rows = sorted(self._tables.ledger_checkpoints, key=lambda r: r["tree_size"])
        chosen = [
            _checkpoint(row)
            for row in rows
            if (after is None or row["tree_size"] > after)
            and (up_to is None or row["tree_size"] <= up_to)
        ]
        return chosen[:limit]

    async def entries(
        self, filters: EntryFilter, *, after: int | None, limit: int
    ) -> list[SequencedEntry]:
        found: list[SequencedEntry] = []
        if limit <= 0:
            return found
        start = 0 if after is None else max(0, after + 1)
        for leaf in self._tables.ledger_leaves[start:]:
            entry, sequenced = self._sequenced(leaf)
            if _matches(entry, filters):
                found.append(sequenced)
                if len(found) == limit:
                    break
        return found

    async def export(
        self, *, start: int, end: int, batch: int = EXPORT_BATCH
    ) -> AsyncIterator[SequencedEntry]:
        position = start
        while position < end:
            leaves = self._tables.ledger_leaves[position : min(end, position + batch)]
            if not leaves:
                return
            for leaf in leaves:
                yield self._sequenced(leaf)[1]
            position += len(leaves)

    async def ledger_keys(self) -> list[str]:
        return [
            row["public_jwk"]
            for row in self._tables.signing_keys.values()
            if row.get("purpose") == "ledger"
        ]
