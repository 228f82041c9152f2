"""The ledger's read port (``storage.ledger_reader``) in SQL.

Every query is bounded by an index: leaves and checkpoints by their primary keys, nodes
by ``(level, node_index)``, entry filters by the indexed columns of ``ledger_entries``,
pages by a keyset on ``leaf_index``. Reads need no transaction (each is one statement,
and what they read is append-only), so they run on the reading engine
(``storage.database.reader``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authority.storage.ledger_reader import (
    EXPORT_BATCH,
    Checkpoint,
    EntryFilter,
    NodeKey,
    SequencedEntry,
)
from authority.storage.schema import (
    ledger_checkpoints,
    ledger_entries,
    ledger_leaves,
    ledger_nodes,
    signing_keys,
)

_IN_CHUNK = 500  # bound on the size of one IN (...) list


async def tree_size(conn: AsyncConnection) -> int:
    """The number of sequenced leaves (max leaf_index + 1, by the primary key)."""
    value = (await conn.execute(select(func.max(ledger_leaves.c.leaf_index)))).scalar()
    return 0 if value is None else int(value) + 1


async def nodes(conn: AsyncConnection, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
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
    return found


def _checkpoint(row: Row[Any]) -> Checkpoint:
    return Checkpoint(
        int(row.tree_size), bytes(row.root_hash), int(row.created_at), row.kid, row.signed
    )


def _entry(row: Row[Any]) -> SequencedEntry:
    return SequencedEntry(int(row.leaf_index), bytes(row.leaf_hash), row.body)


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


class SqlLedgerReader:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def tree_size(self) -> int:
        async with self._engine.connect() as conn:
            return await tree_size(conn)

    async def nodes(self, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
        async with self._engine.connect() as conn:
            return await nodes(conn, keys)

    async def latest_checkpoint(self) -> Checkpoint | None:
        query = select(ledger_checkpoints).order_by(ledger_checkpoints.c.tree_size.desc())
        async with self._engine.connect() as conn:
            row = (await conn.execute(query.limit(1))).first()
        return None if row is None else _checkpoint(row)

    async def checkpoints(
        self, *, after: int | None, limit: int, up_to: int | None = None
    ) -> list[Checkpoint]:
        query = select(ledger_checkpoints).order_by(ledger_checkpoints.c.tree_size).limit(limit)
        if after is not None:
            query = query.where(ledger_checkpoints.c.tree_size > after)
        if up_to is not None:
            query = query.where(ledger_checkpoints.c.tree_size <= up_to)
        async with self._engine.connect() as conn:
            return [_checkpoint(row) for row in await conn.execute(query)]

    async def entries(
        self, filters: EntryFilter, *, after: int | None, limit: int
    ) -> list[SequencedEntry]:
        query = _entries_query(filters).order_by(ledger_leaves.c.leaf_index).limit(limit)
        if after is not None:
            query = query.where(ledger_leaves.c.leaf_index > after)
        async with self._engine.connect() as conn:
            return [_entry(row) for row in await conn.execute(query)]

    async def export(
        self, *, start: int, end: int, batch: int = EXPORT_BATCH
    ) -> AsyncIterator[SequencedEntry]:
        position = start
        while position < end:
            async with self._engine.connect() as conn:
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
            for row in rows:
                yield _entry(row)
            position = int(rows[-1].leaf_index) + 1

    async def ledger_keys(self) -> list[str]:
        query = select(signing_keys.c.public_jwk).where(signing_keys.c.purpose == "ledger")
        async with self._engine.connect() as conn:
            return [str(value) for value in (await conn.execute(query)).scalars()]
