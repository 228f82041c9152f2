"""One registry table in SQL: the building block of every registry port (``storage.registry``).

A ``Table`` of a registry maps its rows to the port's frozen dataclass (fields named by
the columns; JSON columns as their documents) and does what every registry does: read by
id with a visibility filter, page in (created_at, id) order, insert, and replace a row
that is still as expected. A write checks its unique columns first and takes a lost
unique-constraint race (``IntegrityError``) as ``TAKEN``; entries are appended and events
recorded (last) in the write's transaction, so all of it commits or none of it does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

from sqlalchemy import Table as SqlTable
from sqlalchemy import select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import ColumnElement

from authority.ledger.entries import Entry
from authority.secrets import valid_id
from authority.storage.events import RevocationEvent
from authority.storage.json_columns import dump_json, load_json
from authority.storage.registry import (
    STALE,
    TAKEN,
    NewEvent,
    Position,
    Record,
    RowPage,
    Stale,
    Taken,
    Written,
)

from . import events as sql_events
from .ledger import append_many
from .records import page

R = TypeVar("R", bound=Record)

#: Work a write does in its transaction after its row and before its entries.
Also = Callable[[AsyncConnection], Awaitable[None]]


class _Lost(Exception):
    """A unique constraint that a concurrent writer's commit won."""


@asynccontextmanager
async def _transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    try:
        async with engine.begin() as conn:
            yield conn
    except IntegrityError:
        raise _Lost() from None


async def record_events(
    conn: AsyncConnection, new_events: Sequence[NewEvent]
) -> tuple[RevocationEvent, ...]:
    """Record the events in the caller's transaction: call it as the last statement."""
    return tuple(
        [
            await sql_events.record(
                conn,
                kind=event.kind,
                now=event.time,
                expires_at=event.expires_at,
                owner_id=event.owner_id,
                agent_id=event.agent_id,
                tool=event.tool,
            )
            for event in new_events
        ]
    )


class Table(Generic[R]):
    """A registry's table and the dataclass of its rows."""

    def __init__(
        self,
        engine: AsyncEngine,
        table: SqlTable,
        row_type: type[R],
        *,
        json: frozenset[str] = frozenset(),
        unique: tuple[tuple[str, ...], ...] = (),
    ) -> None:
        self.engine = engine
        self.table = table
        self._row_type = row_type
        self._fields = tuple(field.name for field in dataclasses.fields(row_type))
        self._json = json
        self._unique = unique

    def load(self, row: Row[Any]) -> R:
        columns = row._mapping
        values = {name: columns[name] for name in self._fields}
        for name in self._json:
            if values[name] is not None:
                values[name] = load_json(values[name])
        return self._row_type(**values)

    def dump(self, value: R) -> dict[str, Any]:
        values = {name: getattr(value, name) for name in self._fields}
        for name in self._json:
            if values[name] is not None:
                values[name] = dump_json(values[name])
        return values

    def where(self, equal: Mapping[str, Any]) -> list[ColumnElement[bool]]:
        """Equality filters on columns; a None value filters nothing (visibility: all)."""
        return [self.table.c[name] == value for name, value in equal.items() if value is not None]

    async def read(
        self, conn: AsyncConnection, row_id: str, *, for_update: bool = False
    ) -> R | None:
        query = select(self.table).where(self.table.c.id == row_id)
        if for_update:
            query = query.with_for_update()
        found = (await conn.execute(query)).first()
        return None if found is None else self.load(found)

    async def get(self, row_id: str, **equal: Any) -> R | None:
        if not valid_id(row_id):
            return None
        query = select(self.table).where(self.table.c.id == row_id, *self.where(equal))
        async with self.engine.connect() as conn:
            found = (await conn.execute(query)).first()
        return None if found is None else self.load(found)

    async def page(self, *, limit: int, after: Position | None, **equal: Any) -> RowPage[R]:
        async with self.engine.connect() as conn:
            rows, last = await page(
                conn, self.table, limit=limit, after=after, where=self.where(equal)
            )
        return RowPage(tuple(self.load(row) for row in rows), last)

    async def _taken(self, conn: AsyncConnection, value: R, before: R | None = None) -> bool:
        """Whether a unique set of columns of ``value`` (one it changes from ``before``)
        is another row's already."""
        for columns in self._unique:
            wanted = {name: getattr(value, name) for name in columns}
            if before is not None and all(getattr(before, n) == v for n, v in wanted.items()):
                continue
            same = [self.table.c[name] == v for name, v in wanted.items()]
            query = select(self.table.c.id).where(*same).limit(1)
            if (await conn.execute(query)).first() is not None:
                return True
        return False

    async def create(
        self, value: R, entries: Sequence[Entry], *, extra: Mapping[str, Any] | None = None
    ) -> R | Taken:
        """Insert ``value`` (and the ``extra`` columns) and append ``entries``."""
        row_id: str = value.id
        try:
            async with _transaction(self.engine) as conn:
                if await self._taken(conn, value):
                    return TAKEN
                await conn.execute(self.table.insert().values(**self.dump(value), **(extra or {})))
                await append_many(conn, entries)
                stored = await self.read(conn, row_id)
        except _Lost:
            return TAKEN
        if stored is None:  # inserted in this very transaction: cannot happen
            raise RuntimeError("an inserted row was not found")
        return stored

    async def replace(
        self,
        expected: R,
        new: R,
        *,
        entries: Sequence[Entry] = (),
        events: Sequence[NewEvent] = (),
        also: Also | None = None,
    ) -> Written[R] | Stale | Taken:
        """Store ``new`` if the row is still ``expected``; then ``also``, the entries and
        the events, the events last."""
        row_id: str = expected.id
        try:
            async with _transaction(self.engine) as conn:
                if await self.read(conn, row_id, for_update=True) != expected:
                    return STALE
                if await self._taken(conn, new, expected):
                    return TAKEN
                values = self.dump(new)
                del values["id"]
                await conn.execute(
                    update(self.table).where(self.table.c.id == row_id).values(**values)
                )
                if also is not None:
                    await also(conn)
                await append_many(conn, entries)
                stored = await self.read(conn, row_id)
                recorded = await record_events(conn, events)
        except _Lost:
            return TAKEN
        if stored is None:  # locked in this very transaction: cannot happen
            raise RuntimeError("a replaced row was not found")
        return Written(stored, recorded)
