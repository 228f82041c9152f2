"""The agents port (``storage.agents``) in SQL."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from authority.ledger.entries import Entry
from authority.storage.agents import AgentRow
from authority.storage.registry import NewEvent, Position, RowPage, Stale, Taken, Written
from authority.storage.schema import agents

from .registry import Table


class SqlAgentStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._agents = Table(
            engine,
            agents,
            AgentRow,
            json=frozenset({"jwks", "workload"}),
            unique=(("owner_id", "name"),),
        )

    async def get(self, agent_id: str, *, owner_id: str | None = None) -> AgentRow | None:
        return await self._agents.get(agent_id, owner_id=owner_id)

    async def page(
        self, *, limit: int, after: Position | None, owner_id: str | None = None
    ) -> RowPage[AgentRow]:
        return await self._agents.page(limit=limit, after=after, owner_id=owner_id)

    async def create(self, agent: AgentRow, entries: Sequence[Entry]) -> AgentRow | Taken:
        return await self._agents.create(agent, entries)

    async def replace(
        self,
        expected: AgentRow,
        new: AgentRow,
        *,
        entries: Sequence[Entry] = (),
        events: Sequence[NewEvent] = (),
    ) -> Written[AgentRow] | Stale | Taken:
        return await self._agents.replace(expected, new, entries=entries, events=events)
