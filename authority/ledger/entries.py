"""Ledger entries: versioned, canonical JSON records appended with the effect they record.

``append`` runs inside the caller's transaction: the entry commits with the grant, the
revocation or the status change it describes, or neither does. It takes no lock beyond
the row it inserts: tree positions are assigned after commit by the sequencer
(``authority.ledger.sequencer``), so appends from concurrent requests never queue
behind each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.ext.asyncio import AsyncConnection

from authority.storage.driver import Executes
from authority.storage.schema import ledger_entries

from .schemas import MalformedEntry, build_body, canonical_json

__all__ = [
    "BULK_ROWS",
    "COLUMNS",
    "INSERT",
    "Entry",
    "MalformedEntry",
    "append",
    "append_many",
    "canonical_json",
    "entry_row",
]

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


def entry_row(
    *, kind: str, version: int, created_at: int, record: dict[str, Any]
) -> dict[str, Any]:
    """The ``ledger_entries`` row (``COLUMNS``) of one entry whose body is ``record``.

    The record is validated against the schema of ``kind`` and ``version``
    (``authority.ledger.schemas``): ``MalformedEntry`` (a ``ValueError``) means a
    programming error in the caller, and nothing may be written with it.
    """
    body = build_body(kind, version, created_at, record)
    decision = record.get("decision")
    return {
        "created_at": created_at,
        "kind": kind,
        "version": version,
        "body": body,
        "agent_id": record.get("agent_id"),
        "owner_id": record.get("owner_id"),
        "delegation_id": record.get("delegation_id"),
        "tool": record.get("tool"),
        "decision": decision if isinstance(decision, str) else None,
    }


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


#: One entry for ``append_many``: (kind, version, created_at, record).
Entry = tuple[str, int, int, dict[str, Any]]
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
