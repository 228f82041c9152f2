"""One registry table on ``Tables``: the memory twin of ``storage.sql.registry``.

Rows are stored as the SQL columns (JSON columns as their canonical text), so the other
memory ports read them as they read SQL. Each method validates its ledger entries before
it changes anything and has no ``await`` inside: it is atomic, as a transaction is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from authority.ledger.entries import Entry, entry_row
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

from . import Rows, Tables

R = TypeVar("R", bound=Record)


def entry_rows(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """The entries' rows, every one validated (``MalformedEntry``) before any is kept."""
    return [
        entry_row(kind=kind, version=version, created_at=created_at, record=record)
        for kind, version, created_at, record in entries
    ]


def record_events(tables: Tables, new_events: Sequence[NewEvent]) -> tuple[RevocationEvent, ...]:
    """Record the events as ``revocation_events`` rows; ids count on from the last."""
    recorded = []
    for new in new_events:
        event = RevocationEvent(
            id=len(tables.revocation_events) + 1,
            kind=new.kind,
            time=new.time,
            expires_at=new.expires_at,
            agent_id=new.agent_id,
            owner_id=new.owner_id,
            tool=new.tool,
        )
        tables.revocation_events.append(
            {
                "id": event.id,
                "created_at": event.time,
                "kind": event.kind,
                "jti": event.jti,
                "delegation_id": event.delegation_id,
                "agent_id": event.agent_id,
                "owner_id": event.owner_id,
                "expires_at": event.expires_at,
                "tool": event.tool,
            }
        )
        recorded.append(event)
    return tuple(recorded)


class Table(Generic[R]):
    """A registry's rows in ``tables`` and the dataclass they are read as."""

    def __init__(
        self,
        tables: Tables,
        rows: Rows,
        row_type: type[R],
        *,
        json: frozenset[str] = frozenset(),
        unique: tuple[tuple[str, ...], ...] = (),
    ) -> None:
        self.tables = tables
        self.rows = rows
        self._row_type = row_type
        self._fields = tuple(field.name for field in dataclasses.fields(row_type))
        self._json = json
        self._unique = unique

    def load(self, row: Mapping[str, Any]) -> R:
        values: dict[str, Any] = {name: row.get(name) for name in self._fields}
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

    def matching(self, equal: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool]:
        """Equality filters on columns; a None value filters nothing (visibility: all)."""
        wanted = {name: value for name, value in equal.items() if value is not None}
        return lambda row: all(row.get(name) == value for name, value in wanted.items())

    def get(self, row_id: str, **equal: Any) -> R | None:
        row = self.rows.get(row_id)
        if row is None or not self.matching(equal)(row):
            return None
        return self.load(row)

    def page(self, *, limit: int, after: Position | None, **equal: Any) -> RowPage[R]:
        keep = self.matching(equal)
        ordered = sorted(
            (row for row in self.rows.values() if keep(row)),
            key=lambda row: (row["created_at"], row["id"]),
        )
        if after is not None:
            ordered = [row for row in ordered if (row["created_at"], row["id"]) > after]
        if len(ordered) <= limit:
            return RowPage(tuple(self.load(row) for row in ordered), None)
        rows = ordered[:limit]
        return RowPage(
            tuple(self.load(row) for row in rows), (rows[-1]["created_at"], rows[-1]["id"])
        )

    def _taken(self, value: R, before: R | None = None) -> bool:
        row_id = value.id
        for columns in self._unique:
            wanted = {name: getattr(value, name) for name in columns}
            if before is not None and all(getattr(before, n) == v for n, v in wanted.items()):
                continue
            for row in self.rows.values():
                if row["id"] != row_id and all(row.get(n) == v for n, v in wanted.items()):
                    return True
        return False

    def create(
        self, value: R, entries: Sequence[Entry], *, extra: Mapping[str, Any] | None = None
    ) -> R | Taken:
        row_id: str = value.id
        ledger = entry_rows(entries)
        if row_id in self.rows or self._taken(value):
            return TAKEN
        self.rows[row_id] = {**self.dump(value), **(extra or {})}
        self.tables.ledger_entries.extend(ledger)
        return self.load(self.rows[row_id])

    def replace(
        self,
        expected: R,
        new: R,
        *,
        entries: Sequence[Entry] = (),
        events: Sequence[NewEvent] = (),
        also: Callable[[], None] | None = None,
    ) -> Written[R] | Stale | Taken:
        row_id: str = expected.id
        ledger = entry_rows(entries)
        stored = self.rows.get(row_id)
        if stored is None or self.load(stored) != expected:
            return STALE
        if self._taken(new, expected):
            return TAKEN
        stored.update(self.dump(new))
        if also is not None:
            also()
        self.tables.ledger_entries.extend(ledger)
        return Written(self.load(stored), record_events(self.tables, events))
