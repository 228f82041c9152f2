"""Ledger entries: versioned, canonical JSON records appended with the effect they record.

``append`` runs inside the caller's transaction: the entry commits with the grant, the
revocation or the status change it describes, or neither does.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from authority.storage.schema import ledger_entries


def canonical_json(record: dict[str, Any]) -> str:
    """Sorted keys, no insignificant whitespace, UTF-8: one byte string per record."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()


async def append(
    conn: AsyncConnection,
    *,
    kind: str,
    version: int,
    created_at: int,
    record: dict[str, Any],
) -> None:
    """Append one entry in the caller's transaction. ``record`` is the entry's body."""
    body = {"kind": kind, "version": version, "time": created_at, **record}
    await conn.execute(
        ledger_entries.insert().values(
            created_at=created_at,
            kind=kind,
            version=version,
            body=canonical_json(body),
            agent_id=record.get("agent_id"),
            owner_id=record.get("owner_id"),
            delegation_id=record.get("delegation_id"),
            tool=record.get("tool"),
            decision=record.get("decision"),
        )
    )
