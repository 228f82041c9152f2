"""The sequencer: assigns tree positions to committed entries and signs checkpoints (RFC 9162).

Appends never wait on each other: each inserts its entry in its own transaction with an
autoincrement id, and on PostgreSQL ids may commit out of order or never (a rolled-back
transaction leaves a gap). One sequencer at a time, across every instance (the
transaction-scoped advisory lock ``pg_try_advisory_xact_lock`` on PostgreSQL; the
embedded SQLite is one instance whose writers already queue), then finds committed
entries that have no leaf yet with an anti-join on ``ledger_leaves.entry_id``, gives them
the next contiguous leaf indices, stores the subtrees they complete and writes a signed
checkpoint, all in one transaction.

The scan starts above a *floor*: the entry id of the last leaf of the newest checkpoint
at least ``ledger_straggler_window`` seconds old. Every entry at or below it had its id
drawn before that checkpoint was signed, so as long as no transaction that appends to
the ledger lives longer than the window (less one round), it has committed and been
sequenced already; a late-committing lower id is still found, because the floor trails
the newest leaf by the whole window. The scan is a primary-key range, not the table.

The compact range (one subtree root per set bit of the tree size) stays in memory
between rounds, so a round costs O(new leaves · log n); it is reloaded from its O(log n)
stored nodes when another instance has sequenced in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sqlalchemy import exists, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authority.clock import Clock
from authority.storage.schema import (
    ledger_checkpoints,
    ledger_entries,
    ledger_leaves,
    ledger_nodes,
)

from . import store
from .checkpoints import CHECKPOINT_TYP, checkpoint_claims, signed_kid
from .merkle import CompactRange, leaf_hash

log = logging.getLogger("authority.ledger")

# pg_advisory_xact_lock key: "authority ledger sequencer", fixed for every instance.
ADVISORY_LOCK_KEY = 0x6C65646765722D73
DEFAULT_BATCH = 2000


class Signer(Protocol):
    """What the sequencer needs of the keyring (``authority.tokens.keyring.Keyring``)."""

    def sign(
        self, claims: dict[str, Any], *, typ: str, purpose: Literal["token", "ledger"] = ...
    ) -> str: ...


@dataclass(frozen=True, slots=True)
class Checkpoint:
    tree_size: int
    root_hash: bytes
    created_at: int
    kid: str
    signed: str


class Sequencer:
    """Runs sequencing rounds: call ``run_once`` directly, or ``run`` as a task."""

    def __init__(
        self,
        engine: AsyncEngine,
        signer: Signer,
        clock: Clock,
        *,
        issuer: str,
        interval: float,
        straggler_window: float,
        batch_size: int = DEFAULT_BATCH,
    ) -> None:
        self._engine = engine
        self._signer = signer
        self._clock = clock
        self._issuer = issuer
        self._interval = interval
        self._window = straggler_window
        self._batch = batch_size
        self._state: CompactRange | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run rounds every ``interval`` seconds in the background until ``stop``."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="ledger-sequencer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run_once(self) -> Checkpoint | None:
        """Sequence every committed entry not yet in the tree; the last checkpoint written.

        None if there was nothing to sequence or another instance holds the sequencer
        lock (it will do the work).
        """
        async with self._lock:
            latest: Checkpoint | None = None
            while True:
                done, checkpoint = await self._round()
                latest = checkpoint or latest
                if done:
                    return latest

    async def run(self) -> None:
        """Sequence every ``checkpoint_interval`` seconds until cancelled."""
        loop = asyncio.get_running_loop()
        delay = self._interval
        while True:
            await asyncio.sleep(delay)
            started = loop.time()
            try:
                await self.run_once()
            except Exception:
                # The database may be down; appends fail closed meanwhile, and the next
                # round picks up where this one stopped.
                log.exception("ledger sequencing round failed")
                self._state = None
            delay = max(0.0, self._interval - (loop.time() - started))

    async def _round(self) -> tuple[bool, Checkpoint | None]:
        """One batch in one transaction: (whether the backlog is empty, the checkpoint)."""
        async with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                locked = await conn.scalar(
                    text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
                )
                if not locked:
                    return True, None
            size = await store.tree_size(conn)
            state = self._state
            if state is None or state.size != size:
                state = await store.compact_range(conn, size)
            pending = await self._unsequenced(conn)
            if not pending:
                self._state = state
                return True, None
            state = state.copy()
            leaves: list[dict[str, Any]] = []
            nodes: list[dict[str, Any]] = []
            for entry_id, body in pending:
                digest = leaf_hash(body.encode())
                leaves.append({"leaf_index": state.size, "entry_id": entry_id, "leaf_hash": digest})
                for (level, index), value in state.append(digest)[1:]:
                    nodes.append({"level": level, "node_index": index, "hash": value})
            await conn.execute(ledger_leaves.insert(), leaves)
            if nodes:
                await conn.execute(ledger_nodes.insert(), nodes)
            checkpoint = self._sign(state)
            await conn.execute(
                ledger_checkpoints.insert().values(
                    tree_size=checkpoint.tree_size,
                    root_hash=checkpoint.root_hash,
                    created_at=checkpoint.created_at,
                    kid=checkpoint.kid,
                    signed=checkpoint.signed,
                )
            )
        # Committed: only now does the in-memory state move on.
        self._state = state
        return len(pending) < self._batch, checkpoint

    async def _unsequenced(self, conn: AsyncConnection) -> Sequence[tuple[int, str]]:
        floor = await self._floor(conn)
        e, leaf = ledger_entries, ledger_leaves
        query = (
            select(e.c.id, e.c.body)
            .where(~exists().where(leaf.c.entry_id == e.c.id))
            .order_by(e.c.id)
            .limit(self._batch)
        )
        if floor is not None:
            query = query.where(e.c.id > floor)
        return [(int(r.id), r.body) for r in await conn.execute(query)]

    async def _floor(self, conn: AsyncConnection) -> int | None:
        """The entry id at or below which everything is sequenced (see the module doc)."""
        c, leaf = ledger_checkpoints, ledger_leaves
        if conn.dialect.name == "sqlite":
            # One writer at a time (BEGIN IMMEDIATE): entries commit in id order, so
            # nothing below the highest sequenced id can still arrive. This keeps each
            # round's scan to the new entries instead of the whole straggler window,
            # which matters here because SQLite calls run on the event loop.
            value = await conn.scalar(select(func.max(leaf.c.entry_id)))
            return None if value is None else int(value)
        horizon = int(self._clock.now() - self._window)
        value = await conn.scalar(
            select(leaf.c.entry_id)
            .select_from(c.join(leaf, leaf.c.leaf_index == c.c.tree_size - 1))
            .where(c.c.created_at <= horizon)
            .order_by(c.c.tree_size.desc())
            .limit(1)
        )
        return None if value is None else int(value)

    def _sign(self, state: CompactRange) -> Checkpoint:
        now = int(self._clock.now())
        root = state.root()
        signed = self._signer.sign(
            checkpoint_claims(self._issuer, state.size, root, now),
            typ=CHECKPOINT_TYP,
            purpose="ledger",
        )
        return Checkpoint(state.size, root, now, signed_kid(signed), signed)
