"""The owners' webhooks port (``storage.webhooks``) in SQL, through the engine.

Registering and removing lock the owner's row (FOR UPDATE on PostgreSQL), so that two
changes of one owner's webhook are written, and recorded, one after the other.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authority.storage.schema import owners
from authority.storage.sql.ledger import append
from authority.storage.webhooks import Change, OwnerWebhook, Target

_o = owners.c
_REGISTRATION = (_o.id, _o.status, _o.webhook_url, _o.webhook_updated_at)


def _webhook(row: Any) -> OwnerWebhook:
    return OwnerWebhook(row.id, row.status, row.webhook_url, row.webhook_updated_at)


class SqlWebhookStore:
    def __init__(self, engine: AsyncEngine, reader: AsyncEngine) -> None:
        self._engine = engine
        self._reader = reader

    async def target(self, owner_id: str) -> Target | None:
        query = select(_o.webhook_url, _o.webhook_secret).where(_o.id == owner_id)
        async with self._reader.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else Target(row.webhook_url, row.webhook_secret)

    async def get(self, owner_id: str) -> OwnerWebhook | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(*_REGISTRATION).where(_o.id == owner_id))).first()
        return None if row is None else _webhook(row)

    async def register(
        self, owner_id: str, *, url: str, sealed_secret: bytes, now: int, change: Change
    ) -> OwnerWebhook | None:
        return await self._write(
            owner_id,
            change,
            webhook_url=url,
            webhook_secret=sealed_secret,
            webhook_updated_at=now,
            updated_at=now,
        )

    async def remove(self, owner_id: str, *, now: int, change: Change) -> OwnerWebhook | None:
        return await self._write(
            owner_id,
            change,
            webhook_url=None,
            webhook_secret=None,
            webhook_updated_at=now,
            updated_at=now,
        )

    async def _write(self, owner_id: str, change: Change, **values: Any) -> OwnerWebhook | None:
        async with self._engine.begin() as conn:
            before = await _lock(conn, owner_id)
            if before is None:
                return None
            entry = change(before)
            await conn.execute(update(owners).where(_o.id == owner_id).values(**values))
            if entry is not None:
                kind, version, created_at, record = entry
                await append(conn, kind=kind, version=version, created_at=created_at, record=record)
        return before


async def _lock(conn: AsyncConnection, owner_id: str) -> OwnerWebhook | None:
    query = select(*_REGISTRATION).where(_o.id == owner_id).with_for_update()
    row = (await conn.execute(query)).first()
    return None if row is None else _webhook(row)
