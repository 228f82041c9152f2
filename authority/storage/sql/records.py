"""What every SQL registry shares: one row by id (with its visibility rule), one write
transaction whose lost unique-constraint race is a 409, JSON columns, keyset pages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Table, and_, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import ColumnElement

from authority.errors import Conflict, NotFound
from authority.secrets import valid_id
from authority.storage.json_columns import dump_json, load_json

__all__ = ["dump_json", "fetch", "load_json", "page", "transaction", "valid_id"]


async def fetch(
    conn: AsyncConnection,
    table: Table,
    row_id: str,
    not_found: str,
    where: Sequence[ColumnElement[bool]] = (),
    *,
    for_update: bool = False,
) -> Row[Any]:
    """The row ``row_id`` of ``table`` if it exists *and* matches ``where``, else 404.

    ``where`` carries the visibility rule (an owner's own objects), so an object that
    exists but is not visible is indistinguishable from one that does not exist.
    """
    if not valid_id(row_id):
        raise NotFound(not_found)
    query = select(table).where(table.c.id == row_id, *where)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(not_found)
    return row


@asynccontextmanager
async def transaction(engine: AsyncEngine, conflict: str) -> AsyncIterator[AsyncConnection]:
    """One transaction; a unique constraint that a concurrent writer won becomes 409."""
    try:
        async with engine.begin() as conn:
            yield conn
    except IntegrityError:
        raise Conflict(conflict) from None


async def page(
    conn: AsyncConnection,
    table: Table,
    *,
    limit: int,
    after: tuple[int, str] | None,
    where: Sequence[ColumnElement[bool]] = (),
) -> tuple[Sequence[Row[Any]], tuple[int, str] | None]:
    """Up to ``limit`` rows of ``table`` matching ``where`` after the position ``after``
    in (created_at, id) order, and the position of the last row when more follow."""
    created_at, row_id = table.c.created_at, table.c.id
    query = select(table).where(*where)
    if after is not None:
        after_time, after_id = after
        query = query.where(
            or_(created_at > after_time, and_(created_at == after_time, row_id > after_id))
        )
    query = query.order_by(created_at, row_id).limit(limit + 1)
    rows = (await conn.execute(query)).all()
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, (last.created_at, last.id)
