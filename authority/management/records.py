"""What every registry shares: path id checks, visibility, times, conflicts, JSON columns."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
from sqlalchemy import Table, select
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement

from authority.context import Services
from authority.errors import Conflict, NotFound

# Every id this authority generates matches; anything else cannot name a stored object.
_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def valid_id(value: str) -> bool:
    return _ID.match(value) is not None


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
async def write(services: Services, conflict: str) -> AsyncIterator[AsyncConnection]:
    """One transaction; a unique constraint that a concurrent writer won becomes 409."""
    try:
        async with services.engine.begin() as conn:
            yield conn
    except IntegrityError:
        raise Conflict(conflict) from None


def dump_json(value: Any) -> str:
    """Canonical JSON text for a JSON column (sorted keys, no whitespace)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def load_json(text: str) -> Any:
    return orjson.loads(text)
