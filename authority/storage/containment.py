"""The storage port of automatic containment: the agent's state, and the account of one.

The quarantine itself is the agent's lifecycle (``management.lifecycle``). ``record``
writes what follows it: under the agent's row lock it reads the agent's autonomy level
and how many containments the ledger holds of it since a time, hands both to the
flow's ``Decide`` and writes what that returns (the lowered level, the entries) in one
transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from authority.ledger.entries import Entry


class NotRecorded(Exception):
    """The database failed while recording; nothing of the record was written."""


@dataclass(frozen=True, slots=True)
class History:
    """The agent as stored, and its containments so far."""

    autonomy_level: int
    #: ``agent_contained`` ledger entries of the agent created at or after ``since``.
    earlier: int


@dataclass(frozen=True, slots=True)
class Account:
    """What the flow writes: the agent's new autonomy level (None: unchanged) and the
    ledger entries."""

    autonomy_level: int | None
    entries: Sequence[Entry]


Decide = Callable[[History], Account]


class ContainmentStore(Protocol):
    async def agent_status(self, agent_id: str) -> str | None:
        """The agent's status now, without a transaction; None: no such agent."""

    async def record(
        self, agent_id: str, *, since: int, now: int, decide: Decide
    ) -> tuple[History, Account] | None:
        """Write ``decide``'s account of the agent's history, in one transaction that
        holds the agent's row (FOR UPDATE on PostgreSQL): a lowered level is set (updated
        at ``now``) and the entries appended. None, with nothing written, for no such
        agent; ``NotRecorded`` when the database fails."""
