"""The sequencer: assigns tree positions to committed entries and signs checkpoints (RFC 9162).

Appends never wait on each other: each inserts its entry in its own transaction with an
autoincrement id, and on PostgreSQL ids may commit out of order or never (a rolled-back
transaction leaves a gap). One sequencer at a time, across every instance (the port's
round, ``storage.sequencer``, holds the lock), finds committed entries that have no leaf
yet, gives them the next contiguous leaf indices, stores the subtrees they complete and
writes a signed checkpoint, all in one round.

The scan starts above a *floor*: the entry id of the last leaf of the newest checkpoint
at least ``ledger_straggler_window`` seconds old. Every entry at or below it had its id
drawn before that checkpoint was signed, so as long as no transaction that appends to
the ledger lives longer than the window (less one round), it has committed and been
sequenced already; a late-committing lower id is still found, because the floor trails
the newest leaf by the whole window. The scan is a primary-key range, not the table.
(Where entries commit in id order, as on SQLite, the floor is the newest sequenced id.)

The compact range (one subtree root per set bit of the tree size) stays in memory
between rounds, so a round costs O(new leaves · log n); it is reloaded from its O(log n)
stored nodes when another instance has sequenced in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Literal, Protocol

from authority.clock import Clock
from authority.storage.ledger_reader import Checkpoint
from authority.storage.sequencer import Leaf, Node, SequencerStore, SequencingRound

from . import store
from .checkpoints import CHECKPOINT_TYP, checkpoint_claims, signed_kid
from .merkle import CompactRange, leaf_hash

log = logging.getLogger("authority.ledger")

DEFAULT_BATCH = 2000


class Signer(Protocol):
    """What the sequencer needs of the keyring (``authority.tokens.keyring.Keyring``)."""

    def sign(
        self, claims: dict[str, Any], *, typ: str, purpose: Literal["token", "ledger"] = ...
    ) -> str: ...


class Sequencer:
    """Runs sequencing rounds: call ``run_once`` directly, or ``run`` as a task."""

    def __init__(
        self,
        storage: SequencerStore,
        signer: Signer,
        clock: Clock,
        *,
        issuer: str,
        interval: float,
        straggler_window: float,
        batch_size: int = DEFAULT_BATCH,
    ) -> None:
        self._store = storage
        self._signer = signer
        self._clock = clock
        self._issuer = issuer
        self._interval = interval
        self._window = straggler_window
        self._batch = batch_size
        self._state: CompactRange | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        #: Every entry committed before this time (clock seconds) has its leaf and a
        #: checkpoint: the start of the newest round here that left no backlog (the
        #: metrics' sequenced time and lag). Until the first one, when sequencing began.
        self.sequenced_at: float | None = None
        #: Whether this instance's latest round failed (the readiness probe's question).
        self.failing = False

    def start(self) -> None:
        """Run rounds every ``interval`` seconds in the background until ``stop``."""
        if self._task is None:
            self.sequenced_at = self._clock.now()
            self._task = asyncio.create_task(self.run(), name="ledger-sequencer")

    @property
    def usable(self) -> bool:
        """Running in the background, and its latest round did not fail."""
        return self._task is not None and not self._task.done() and not self.failing

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
            started = self._clock.now()
            latest: Checkpoint | None = None
            while True:
                done, checkpoint, here = await self._round()
                latest = checkpoint or latest
                if done:
                    if here:
                        self.sequenced_at = started
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
                self.failing = False
            except Exception:
                # The database may be down; appends fail closed meanwhile, and the next
                # round picks up where this one stopped.
                log.exception("ledger sequencing round failed")
                self.failing = True
                self._state = None
            delay = max(0.0, self._interval - (loop.time() - started))

    async def _round(self) -> tuple[bool, Checkpoint | None, bool]:
        """One batch in one round: (whether the backlog is empty, the checkpoint, whether
        this instance held the lock)."""
        async with self._store.round() as sequencing:
            if sequencing is None:
                return True, None, False  # another instance is sequencing
            size = await sequencing.tree_size()
            state = self._state
            if state is None or state.size != size:
                state = await store.compact_range(sequencing, size)
            pending = await sequencing.unsequenced(await self._floor(sequencing), self._batch)
            if not pending:
                self._state = state
                return True, None, True
            state = state.copy()
            leaves: list[Leaf] = []
            nodes: list[Node] = []
            for entry in pending:
                digest = leaf_hash(entry.body.encode())
                leaves.append(Leaf(state.size, entry.entry_id, digest))
                for (level, index), value in state.append(digest)[1:]:
                    nodes.append(Node(level, index, value))
            checkpoint = self._sign(state)
            await sequencing.write(leaves, nodes, checkpoint)
        # Committed: only now does the in-memory state move on.
        self._state = state
        return len(pending) < self._batch, checkpoint, True

    async def _floor(self, sequencing: SequencingRound) -> int | None:
        """The entry id at or below which everything is sequenced (see the module doc)."""
        return await sequencing.floor(int(self._clock.now() - self._window))

    def _sign(self, state: CompactRange) -> Checkpoint:
        now = int(self._clock.now())
        root = state.root()
        signed = self._signer.sign(
            checkpoint_claims(self._issuer, state.size, root, now),
            typ=CHECKPOINT_TYP,
            purpose="ledger",
        )
        return Checkpoint(state.size, root, now, signed_kid(signed), signed)
