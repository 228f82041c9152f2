"""Ledger entries in SQL: appended in the caller's transaction, with the effect they record.

``append`` takes no lock beyond the row it inserts: tree positions are assigned after
commit by the sequencer (``authority.ledger.sequencer``), so appends from concurrent
requests never queue behind each other. The entry's body is built and validated by
``authority.ledger.entries.entry_row``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.ext.asyncio import AsyncConnection

from authority.ledger.entries import Entry, entry_row
from authority.storage.driver import Executes
from authority.storage.schema import ledger_entries

#: The columns an append writes (``id`` is the database's).
COLUMNS = (
    "created_at",
    "kind",
    "version",
    "body",
    "agent_id",
    "owner_id",
    "delegation_id",
    "tool",
    "decision",
)
# Built once and executed with parameters: appends are on every request's path, through
# the engine or the driver (storage.driver), which needs every value as a bound parameter.
INSERT = ledger_entries.insert().values({name: bindparam(name) for name in COLUMNS})


async def append(
    conn: Executes,
    *,
    kind: str,
    version: int,
    created_at: int,
    record: dict[str, Any],
) -> None:
    """Append one entry in the caller's transaction. ``record`` is the entry's body.

    Validated first (``entry_row``): on ``MalformedEntry`` the caller's transaction
    must roll back.
    """
    row = entry_row(kind=kind, version=version, created_at=created_at, record=record)
    await conn.execute(INSERT, row)


#: Rows per multi-row INSERT: 9 parameters a row stays far below the drivers' limits
#: (32,767 bound parameters on PostgreSQL, 32,766 on SQLite).
BULK_ROWS = 500


async def append_many(conn: AsyncConnection, entries: Sequence[Entry]) -> None:
    """Append several entries in the caller's transaction, a few statements in all.

    Every entry is validated first (``entry_row``), so a ``MalformedEntry`` writes none
    of them. The rows go in as multi-row INSERTs in the order given: ids are drawn in
    that order within the statement, exactly as consecutive ``append`` calls would draw
    them, and the sequencer orders leaves by id, so the ledger's order is the same.
    """
    rows = [
        entry_row(kind=kind, version=version, created_at=created_at, record=record)
        for kind, version, created_at, record in entries
    ]
    for start in range(0, len(rows), BULK_ROWS):
        await conn.execute(ledger_entries.insert().values(rows[start : start + BULK_ROWS]))
