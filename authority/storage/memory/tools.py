"""The tool registry port (``storage.tools``) on ``Tables``."""

from __future__ import annotations

from collections.abc import Sequence

from authority.ledger.entries import Entry
from authority.storage.registry import NewEvent, Position, RowPage, Stale, Taken, Written
from authority.storage.tools import ToolRow

from . import Tables
from .registry import Table


class MemoryToolStore:
    def __init__(self, tables: Tables) -> None:
        self._tools = Table(
            tables,
            tables.tools,
            ToolRow,
            json=frozenset({"actions", "read_actions"}),
            unique=(("name",),),
        )

    async def get(self, tool_id: str) -> ToolRow | None:
        return self._tools.get(tool_id)

    async def page(self, *, limit: int, after: Position | None) -> RowPage[ToolRow]:
        return self._tools.page(limit=limit, after=after)

    async def create(self, tool: ToolRow, entries: Sequence[Entry]) -> ToolRow | Taken:
        return self._tools.create(tool, entries)

    async def replace(
        self,
        expected: ToolRow,
        new: ToolRow,
        *,
        entries: Sequence[Entry] = (),
        events: Sequence[NewEvent] = (),
    ) -> Written[ToolRow] | Stale | Taken:
        return self._tools.replace(expected, new, entries=entries, events=events)
