"""Rows of any table, seeded and read back the same way on every implementation.

``support.Store`` seeds the rows every port hangs on; the suites of the management
ports (delegations, approvals, webhooks, the kill switch, containment) also need rows
of their own tables, and to read the rows their ports change.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select

from authority.storage import schema
from authority.storage.memory import Tables

from .support import Store

T = TypeVar("T")


def port(store: Store, memory: type[T], name: str) -> T:
    """The port ``name`` of the SQL services, or its memory implementation."""
    if store.tables is not None:
        return memory(store.tables)  # type: ignore[call-arg]
    assert store.services is not None
    value: T = getattr(store.services, name)
    return value


def _memory_table(tables: Tables, table: str) -> Any:
    return getattr(tables, table)


async def insert(store: Store, table: str, row: dict[str, Any]) -> None:
    """Insert ``row`` into ``table``; in memory, the columns absent from it are None."""
    if store.tables is not None:
        full = {column.name: None for column in schema.metadata.tables[table].columns}
        full.update(row)
        _memory_table(store.tables, table)[row["id"]] = full
        return
    assert store.services is not None
    async with store.services.engine.begin() as conn:
        await conn.execute(schema.metadata.tables[table].insert().values(**row))


async def rows(store: Store, table: str) -> list[dict[str, Any]]:
    """Every row of ``table``, in id order."""
    if store.tables is not None:
        found = _memory_table(store.tables, table)
        values = found.values() if isinstance(found, dict) else found
        return sorted((dict(r) for r in values), key=lambda r: r["id"])
    assert store.services is not None
    t = schema.metadata.tables[table]
    async with store.services.engine.connect() as conn:
        result = await conn.execute(select(t).order_by(t.c.id))
        return [dict(r._mapping) for r in result]


async def row(store: Store, table: str, row_id: Any) -> dict[str, Any]:
    (found,) = [r for r in await rows(store, table) if r["id"] == row_id]
    return found
