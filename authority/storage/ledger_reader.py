"""The ledger's read port (RFC 9162): sequenced entries, tree nodes, checkpoints, the export.

What the auditors' API (``endpoints.ledger``), the proofs (``ledger.store``) and
``authority ledger export`` read. Nothing here writes: appends are the writers' own
(``storage.sql.ledger``), tree positions and checkpoints the sequencer's
(``storage.sequencer``). Entries are read by leaf index, so only sequenced entries are
seen, in the ledger's order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Protocol

#: A subtree of the Merkle tree as ``ledger.merkle`` names it: (level, index), level 0
#: being the leaves.
NodeKey = tuple[int, int]

#: Leaves per read of the export: memory holds one batch whatever the ledger's size.
EXPORT_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed tree head: the tree of ``tree_size`` leaves has ``root_hash``."""

    tree_size: int
    root_hash: bytes
    created_at: int
    kid: str
    signed: str


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """Entries whose columns equal every member given; ``since`` <= created_at < ``until``."""

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
    """An entry at its tree position: ``body`` verbatim, as its leaf hash covers it."""

    leaf_index: int
    leaf_hash: bytes
    body: str


class TreeReader(Protocol):
    """The stored tree, as much as a proof or the sequencer's frontier needs."""

    async def tree_size(self) -> int:
        """The number of sequenced leaves."""

    async def nodes(self, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
        """The stored hash of each subtree in ``keys`` (level 0: the leaf hashes).

        A key that is not stored is absent from the answer; the caller decides what a
        missing node means.
        """


class LedgerReader(TreeReader, Protocol):
    async def latest_checkpoint(self) -> Checkpoint | None:
        """The checkpoint of the largest tree, or None before the first."""

    async def checkpoints(
        self, *, after: int | None, limit: int, up_to: int | None = None
    ) -> list[Checkpoint]:
        """Up to ``limit`` checkpoints by increasing tree size: above the tree size
        ``after`` (a cursor), and with ``up_to`` of at most that size."""

    async def entries(
        self, filters: EntryFilter, *, after: int | None, limit: int
    ) -> list[SequencedEntry]:
        """Up to ``limit`` sequenced entries matching ``filters``, by increasing leaf
        index, above the leaf index ``after`` (a cursor)."""

    def export(
        self, *, start: int, end: int, batch: int = EXPORT_BATCH
    ) -> AsyncIterator[SequencedEntry]:
        """The leaves ``[start, end)`` in order, read ``batch`` at a time.

        No connection is held between batches, so a slow reader of the export holds
        none while it reads.
        """

    async def ledger_keys(self) -> list[str]:
        """The public JWK (JSON text) of every ledger signing key ever made."""
