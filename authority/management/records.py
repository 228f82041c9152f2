"""What every registry shares: path id checks, visibility, times, conflicts, JSON columns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection

from authority.context import Services
from authority.storage.sql.records import dump_json, fetch, load_json, transaction, valid_id

__all__ = ["dump_json", "fetch", "load_json", "valid_id", "write"]


@asynccontextmanager
async def write(services: Services, conflict: str) -> AsyncIterator[AsyncConnection]:
    """One transaction; a unique constraint that a concurrent writer won becomes 409."""
    async with transaction(services.engine, conflict) as conn:
        yield conn
