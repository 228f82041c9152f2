"""The resource servers port (``storage.resource_servers``) on ``Tables``."""

from __future__ import annotations

from collections.abc import Sequence

from authority.ledger.entries import Entry
from authority.storage.registry import Position, RowPage, Stale, Taken, Written
from authority.storage.resource_servers import ServerRow

from . import Tables
from .registry import Table


class MemoryResourceServerStore:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables
        self._servers = Table(
            tables,
            tables.resource_servers,
            ServerRow,
            json=frozenset({"jwks"}),
            unique=(("name",), ("audience",)),
        )

    async def get(self, server_id: str) -> ServerRow | None:
        return self._servers.get(server_id)

    async def page(self, *, limit: int, after: Position | None) -> RowPage[ServerRow]:
        return self._servers.page(limit=limit, after=after)

    async def hosts_active_tools(self, server_id: str) -> bool:
        return any(
            tool.get("resource_server_id") == server_id and tool.get("status") == "active"
            for tool in self._tables.tools.values()
        )

    async def create(self, server: ServerRow, entries: Sequence[Entry]) -> ServerRow | Taken:
        return self._servers.create(server, entries)

    async def replace(
        self, expected: ServerRow, new: ServerRow, *, entries: Sequence[Entry] = ()
    ) -> Written[ServerRow] | Stale | Taken:
        return self._servers.replace(expected, new, entries=entries)
