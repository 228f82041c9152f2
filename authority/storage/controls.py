"""The storage port of the kill switch: contain an owner in one commit, then stop each object.

``kill`` suspends the owner, inserts the cascade's marker and writes the ``kill_switch``
entry and the ``owner`` revocation event in one short transaction. ``step`` runs one
bounded batch of the cascade in a transaction of its own: it locks the marker row,
stops up to ``limit`` objects (agents first, then delegations) with one ledger entry
each, written by one bulk append, and moves the marker's cursor in the same commit, so
a batch is done once or not at all however many runners take turns on the marker. What
the entries say is the flow's (``BatchEntries``); which objects a cascade covers is
below. ``agent_owner`` serves the owner's controls over one agent.

A cascade covers the owner's agents and delegations that were active and created at or
before its ``contained_at``, taken in id order. A batch quarantines agents (status,
``status_reason`` = the kill's reason, ``quarantined_by`` = its actor) or revokes
delegations (``revoked_at`` = ``contained_at``, by the actor, for the reason), leaving
alone one that stopped or was released meanwhile. The batch that finds nothing left
finishes the cascade, and the last unfinished cascade of the owner puts a suspended
owner back to ``active``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from authority.ledger.entries import Entry
from authority.storage.events import RevocationEvent


@dataclass(frozen=True, slots=True)
class Contained:
    """What the kill's commit wrote: its cascade's marker and the owner's event."""

    cascade_id: int
    event: RevocationEvent


@dataclass(frozen=True, slots=True)
class Cascade:
    """A cascade's marker: whose objects it stops, by whom, why, and from when."""

    id: int
    owner_id: str
    actor: str
    reason: str
    contained_at: int


@dataclass(frozen=True, slots=True)
class RevokedDelegation:
    id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class Batch:
    """What one batch did: the objects it stopped (in id order), or that the cascade is
    finished (by this batch or an earlier one)."""

    finished: bool
    quarantined: tuple[str, ...] = ()
    revoked: tuple[RevokedDelegation, ...] = ()


#: The ``kill_switch`` entry, given the number of agents the cascade covers.
KillEntry = Callable[[int], Entry]
#: The entries of what a batch stopped, one per object, in the batch's transaction.
BatchEntries = Callable[[Cascade, Batch], Sequence[Entry]]


class ControlsStore(Protocol):
    async def agent_owner(self, agent_id: str) -> str | None:
        """The owner of the agent ``agent_id``; None: no such agent."""

    async def kill(
        self,
        owner_id: str,
        *,
        actor: str,
        reason: str,
        now: int,
        entry: KillEntry,
        event_expires_at: int,
    ) -> Contained | None:
        """Contain the owner in one transaction: an active owner turns ``suspended``, a
        cascade marker (by ``actor`` for ``reason``, contained at ``now``) is inserted,
        the entry appended and an ``owner`` event recorded. None, with nothing written,
        for no such owner."""

    async def step(self, cascade_id: int, *, now: int, limit: int, entries: BatchEntries) -> Batch:
        """One batch of the cascade ``cascade_id`` (see the module doc), at ``now``, in
        one transaction. ``Batch.finished`` once there is nothing left to do, and for a
        cascade that finished already or does not exist."""

    async def unfinished(self, owner_id: str | None = None) -> list[int]:
        """The ids of the cascades not finished yet (of one owner, or all), oldest first."""

    async def refused_since(self, owner_id: str, since: int, reasons: Sequence[str]) -> int:
        """How many exchanges of the owner's agents were denied at or after ``since`` for
        one of ``reasons``."""
