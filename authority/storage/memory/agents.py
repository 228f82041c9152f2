"""The agents port (``storage.agents``) on ``Tables``."""

from __future__ import annotations

from collections.abc import Sequence

from authority.ledger.entries import Entry
from authority.storage.agents import AgentRow
from authority.storage.registry import NewEvent, Position, RowPage, Stale, Taken, Written

from . import Tables
from .registry import Table


class MemoryAgentStore:
    def __init__(self, tables: Tables) -> None:
        self._agents = Table(
            tables,
            tables.agents,
            AgentRow,
            json=frozenset({"jwks", "workload"}),
            unique=(("owner_id", "name"),),
        )

    async def get(self, agent_id: str, *, owner_id: str | None = None) -> AgentRow | None:
        return self._agents.get(agent_id, owner_id=owner_id)

    async def page(
        self, *, limit: int, after: Position | None, owner_id: str | None = None
    ) -> RowPage[AgentRow]:
        return self._agents.page(limit=limit, after=after, owner_id=owner_id)

    async def create(self, agent: AgentRow, entries: Sequence[Entry]) -> AgentRow | Taken:
        return self._agents.create(agent, entries)

    async def replace(
        self,
        expected: AgentRow,
        new: AgentRow,
        *,
        entries: Sequence[Entry] = (),
        events: Sequence[NewEvent] = (),
    ) -> Written[AgentRow] | Stale | Taken:
        return self._agents.replace(expected, new, entries=entries, events=events)
