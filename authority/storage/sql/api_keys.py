"""The API keys port (``storage.api_keys``) in SQL."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from authority.ledger.entries import Entry
from authority.storage.api_keys import KeyHolder, KeyRow
from authority.storage.registry import Position, RowPage, Stale, Taken, Written
from authority.storage.schema import api_keys, owners

from .registry import Table

#: An unrevoked key by its hash, with its owner's status: one query per API request.
_HOLDER = (
    select(
        api_keys.c.id.label("key_id"),
        api_keys.c.role,
        api_keys.c.owner_id,
        owners.c.status.label("owner_status"),
    )
    .select_from(api_keys.outerjoin(owners, api_keys.c.owner_id == owners.c.id))
    .where(api_keys.c.revoked_at.is_(None))
)


class SqlApiKeyStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._keys = Table(engine, api_keys, KeyRow)

    async def holder(self, key_hash: str) -> KeyHolder | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(_HOLDER.where(api_keys.c.key_hash == key_hash))).first()
        return None if row is None else KeyHolder(**row._mapping)

    async def get(self, key_id: str, *, owner_id: str | None = None) -> KeyRow | None:
        return await self._keys.get(key_id, owner_id=owner_id)

    async def page(
        self, *, limit: int, after: Position | None, owner_id: str | None = None
    ) -> RowPage[KeyRow]:
        return await self._keys.page(limit=limit, after=after, owner_id=owner_id)

    async def all(self) -> list[KeyRow]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
            )
            return [self._keys.load(row) for row in rows]

    async def role_of(self, key_id: str) -> str | None:
        async with self._engine.connect() as conn:
            role = await conn.scalar(select(api_keys.c.role).where(api_keys.c.id == key_id))
        return None if role is None else str(role)

    async def has_active_admin(self) -> bool:
        query = (
            select(api_keys.c.id)
            .where(api_keys.c.role == "admin", api_keys.c.revoked_at.is_(None))
            .limit(1)
        )
        async with self._engine.connect() as conn:
            return (await conn.execute(query)).first() is not None

    async def create(self, key: KeyRow, key_hash: str, entries: Sequence[Entry]) -> KeyRow:
        created = await self._keys.create(key, entries, extra={"key_hash": key_hash})
        if isinstance(created, Taken):  # no unique column but the 256-bit secret's hash
            raise RuntimeError("an API key's hash collided")
        return created

    async def replace(
        self, expected: KeyRow, new: KeyRow, *, entries: Sequence[Entry] = ()
    ) -> Written[KeyRow] | Stale:
        written = await self._keys.replace(expected, new, entries=entries)
        if isinstance(written, Taken):  # no unique column is ever replaced
            raise RuntimeError("replacing an API key broke a unique constraint")
        return written
