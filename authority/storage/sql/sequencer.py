"""The sequencer's port (``storage.sequencer``) in SQL: one round, one transaction.

One sequencer at a time, across every instance: on PostgreSQL the transaction-scoped
advisory lock ``pg_try_advisory_xact_lock`` (a round that does not get it does nothing);
the embedded SQLite is one instance whose writers already queue (``BEGIN IMMEDIATE``), so
a second round waits for the first and then finds its work done.

Entries without a leaf are found with an anti-join on ``ledger_leaves.entry_id``, from
the floor up: a primary-key range, not the table. Why the floor is what it is, on each
dialect, is below and in ``authority.ledger.sequencer``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

from sqlalchemy import exists, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authority.storage.ledger_reader import Checkpoint, NodeKey
from authority.storage.schema import (
    ledger_checkpoints,
    ledger_entries,
    ledger_leaves,
    ledger_nodes,
)
from authority.storage.sequencer import Leaf, Node, PendingEntry, SequencingRound

from . import ledger_reader

# pg_advisory_xact_lock key: "authority ledger sequencer", fixed for every instance.
ADVISORY_LOCK_KEY = 0x6C65646765722D73


class SqlSequencerStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @asynccontextmanager
    async def round(self) -> AsyncIterator[SequencingRound | None]:
        async with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                locked = await conn.scalar(
                    text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
                )
                if not locked:
                    yield None
                    return
            yield _SqlRound(conn)


class _SqlRound:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def tree_size(self) -> int:
        return await ledger_reader.tree_size(self._conn)

    async def nodes(self, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
        return await ledger_reader.nodes(self._conn, keys)

    async def floor(self, horizon: int) -> int | None:
        c, leaf = ledger_checkpoints, ledger_leaves
        if self._conn.dialect.name == "sqlite":
            # One writer at a time (BEGIN IMMEDIATE): entries commit in id order, so
            # nothing below the highest sequenced id can still arrive. This keeps each
            # round's scan to the new entries instead of the whole straggler window,
            # which matters here because SQLite calls run on the event loop.
            value = await self._conn.scalar(select(func.max(leaf.c.entry_id)))
            return None if value is None else int(value)
        # The entry id of the last leaf of the newest checkpoint signed at or before the
        # horizon: every id at or below it was drawn before that checkpoint was signed.
        value = await self._conn.scalar(
            select(leaf.c.entry_id)
            .select_from(c.join(leaf, leaf.c.leaf_index == c.c.tree_size - 1))
            .where(c.c.created_at <= horizon)
            .order_by(c.c.tree_size.desc())
            .limit(1)
        )
        return None if value is None else int(value)

    async def unsequenced(self, floor: int | None, limit: int) -> list[PendingEntry]:
        e, leaf = ledger_entries, ledger_leaves
        query = (
            select(e.c.id, e.c.body)
            .where(~exists().where(leaf.c.entry_id == e.c.id))
            .order_by(e.c.id)
            .limit(limit)
        )
        if floor is not None:
            query = query.where(e.c.id > floor)
        return [PendingEntry(int(r.id), r.body) for r in await self._conn.execute(query)]

    async def write(
        self, leaves: Sequence[Leaf], nodes: Sequence[Node], checkpoint: Checkpoint
    ) -> None:
        conn = self._conn
        if leaves:
            await conn.execute(
                ledger_leaves.insert(),
                [
                    {"leaf_index": x.leaf_index, "entry_id": x.entry_id, "leaf_hash": x.leaf_hash}
                    for x in leaves
                ],
            )
        if nodes:
            await conn.execute(
                ledger_nodes.insert(),
                [{"level": n.level, "node_index": n.node_index, "hash": n.hash} for n in nodes],
            )
        await conn.execute(
            ledger_checkpoints.insert().values(
                tree_size=checkpoint.tree_size,
                root_hash=checkpoint.root_hash,
                created_at=checkpoint.created_at,
                kid=checkpoint.kid,
                signed=checkpoint.signed,
            )
        )
