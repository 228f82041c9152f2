"""The resource servers port (``storage.resource_servers``) in SQL."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from authority.ledger.entries import Entry
from authority.storage.registry import Position, RowPage, Stale, Taken, Written
from authority.storage.resource_servers import ServerRow
from authority.storage.schema import resource_servers, tools

from .registry import Table


class SqlResourceServerStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._servers = Table(
            engine,
            resource_servers,
            ServerRow,
            json=frozenset({"jwks"}),
            unique=(("name",), ("audience",)),
        )

    async def get(self, server_id: str) -> ServerRow | None:
        return await self._servers.get(server_id)

    async def page(self, *, limit: int, after: Position | None) -> RowPage[ServerRow]:
        return await self._servers.page(limit=limit, after=after)

    async def hosts_active_tools(self, server_id: str) -> bool:
        query = (
            select(tools.c.id)
            .where(tools.c.resource_server_id == server_id, tools.c.status == "active")
            .limit(1)
        )
        async with self._engine.connect() as conn:
            return (await conn.execute(query)).first() is not None

    async def create(self, server: ServerRow, entries: Sequence[Entry]) -> ServerRow | Taken:
        return await self._servers.create(server, entries)

    async def replace(
        self, expected: ServerRow, new: ServerRow, *, entries: Sequence[Entry] = ()
    ) -> Written[ServerRow] | Stale | Taken:
        return await self._servers.replace(expected, new, entries=entries)
