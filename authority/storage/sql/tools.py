"""The tool registry port (``storage.tools``) in SQL."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from authority.ledger.entries import Entry
from authority.storage.registry import NewEvent, Position, RowPage, Stale, Taken, Written
from authority.storage.schema import tools
from authority.storage.tools import ToolRow

from .registry import Table


class SqlToolStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._tools = Table(
            engine, tools, ToolRow, json=frozenset({"actions", "read_actions"}), unique=(("name",),)
        )

    async def get(self, tool_id: str) -> ToolRow | None:
        return await self._tools.get(tool_id)

    async def page(self, *, limit: int, after: Position | None) -> RowPage[ToolRow]:
        return await self._tools.page(limit=limit, after=after)

    async def create(self, tool: ToolRow, entries: Sequence[Entry]) -> ToolRow | Taken:
        return await self._tools.create(tool, entries)

    async def replace(
        self,
        expected: ToolRow,
        new: ToolRow,
        *,
        entries: Sequence[Entry] = (),
        events: Sequence[NewEvent] = (),
    ) -> Written[ToolRow] | Stale | Taken:
        return await self._tools.replace(expected, new, entries=entries, events=events)
