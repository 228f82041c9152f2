"""The storage port of the agents registry (``management.agents``, ``management.lifecycle``).

An agent's name is unique among its owner's agents (``TAKEN``). Every change of an agent
(its name, description, keys, autonomy level, quarantine, release, retirement) is one
``replace`` with the ledger entries and revocation events that record it. Visibility is
the ``owner_id`` of the reads: given, another owner's agent reads as None (missing).
See ``storage.registry``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from authority.ledger.entries import Entry
from authority.storage.registry import NewEvent, Position, RowPage, Stale, Taken, Written


@dataclass(frozen=True, slots=True)
class AgentRow:
    id: str
    owner_id: str
    name: str
    description: str | None
    status: str  # active | quarantined | retired
    status_reason: str | None
    #: The actor (an API key's id, or the authority) whose quarantine is in force.
    quarantined_by: str | None
    autonomy_level: int
    jwks: dict[str, Any]  # the agent's public keys, a validated JWKS (no keys: none)
    created_at: int
    updated_at: int
    #: Its workload identity (``management.agent_workload``): ``{"rules": [...],
    #: "require_key_and_workload": bool}``; None: the agent proves itself by key only.
    workload: dict[str, Any] | None = None


class AgentStore(Protocol):
    async def get(self, agent_id: str, *, owner_id: str | None = None) -> AgentRow | None:
        """The agent, or None; with ``owner_id``, None unless it is that owner's."""

    async def page(
        self, *, limit: int, after: Position | None, owner_id: str | None = None
    ) -> RowPage[AgentRow]:
        """Up to ``limit`` agents (of ``owner_id`` if given) after ``after``."""

    async def create(self, agent: AgentRow, entries: Sequence[Entry]) -> AgentRow | Taken:
        """Insert the agent and append ``entries``, unless its owner has an agent of its name."""

    async def replace(
        self,
        expected: AgentRow,
        new: AgentRow,
        *,
        entries: Sequence[Entry] = (),
        events: Sequence[NewEvent] = (),
    ) -> Written[AgentRow] | Stale | Taken:
        """Store ``new``, append ``entries`` and record ``events`` (last), in one
        transaction, if the agent is still ``expected`` and a new name is free."""
