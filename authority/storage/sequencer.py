"""The sequencer's port: one round gives committed entries their tree positions (RFC 9162).

The rules (which entries, in what order, the frontier, the signature) are
``authority.ledger.sequencer``'s; a round only reads the tree and the entries without a
leaf, and writes the leaves, the subtrees they complete and the signed checkpoint, all
in one transaction under a lock that admits one sequencer at a time across every
instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from authority.storage.ledger_reader import Checkpoint, TreeReader


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """A committed entry that has no leaf yet: its id and its body."""

    entry_id: int
    body: str


@dataclass(frozen=True, slots=True)
class Leaf:
    leaf_index: int
    entry_id: int
    leaf_hash: bytes


@dataclass(frozen=True, slots=True)
class Node:
    """A subtree hash above the leaves (level >= 1)."""

    level: int
    node_index: int
    hash: bytes


class SequencingRound(TreeReader, Protocol):
    """One round's transaction: the tree as it is, then one write."""

    async def floor(self, horizon: int) -> int | None:
        """The entry id at or below which every entry has its leaf, or None (scan all).

        ``horizon``: no transaction that appends to the ledger and began before it is
        still open (``ledger.sequencer``'s straggler window). Where appends commit in id
        order (one writer at a time), the highest sequenced entry id is the floor and
        ``horizon`` does not matter.
        """

    async def unsequenced(self, floor: int | None, limit: int) -> list[PendingEntry]:
        """Up to ``limit`` committed entries with an id above ``floor`` and no leaf, by
        increasing id."""

    async def write(
        self, leaves: Sequence[Leaf], nodes: Sequence[Node], checkpoint: Checkpoint
    ) -> None:
        """Store the leaves, the subtrees they complete and the checkpoint signing them."""


class SequencerStore(Protocol):
    def round(self) -> AbstractAsyncContextManager[SequencingRound | None]:
        """A round holding the sequencer lock, committed when the block ends, rolled
        back if it raises.

        None when another instance holds the lock: it is sequencing, and nothing is to
        be done. (Where writers queue anyway, as on SQLite, a round may instead wait for
        the other to commit, and then find its work done.)
        """
