"""The owners port (``storage.owners``) in SQL."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authority.ledger.entries import Entry
from authority.storage.owners import OwnerRow
from authority.storage.registry import NewEvent, Position, RowPage, Stale, Taken, Written
from authority.storage.schema import api_keys, owners

from .registry import Table


class SqlOwnerStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._owners = Table(engine, owners, OwnerRow, unique=(("name",),))

    async def get(self, owner_id: str) -> OwnerRow | None:
        return await self._owners.get(owner_id)

    async def page(self, *, limit: int, after: Position | None) -> RowPage[OwnerRow]:
        return await self._owners.page(limit=limit, after=after)

    async def create(self, owner: OwnerRow) -> OwnerRow | Taken:
        return await self._owners.create(owner, ())

    async def replace(self, expected: OwnerRow, new: OwnerRow) -> Written[OwnerRow] | Stale | Taken:
        return await self._owners.replace(expected, new)

    async def retire(
        self, expected: OwnerRow, new: OwnerRow, *, entries: Sequence[Entry], event: NewEvent
    ) -> Written[OwnerRow] | Stale:
        async def revoke_keys(conn: AsyncConnection) -> None:
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.owner_id == new.id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=new.updated_at)
            )

        written = await self._owners.replace(
            expected, new, entries=entries, events=[event], also=revoke_keys
        )
        if isinstance(written, Taken):  # the name is the one it had: cannot happen
            raise RuntimeError("retiring an owner changed its name")
        return written
