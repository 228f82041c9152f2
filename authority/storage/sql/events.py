"""Revocation events in SQL: the insert every revoking transaction ends with.

Why the insert takes a lock on PostgreSQL, and why it must be the transaction's last
statement, is ``authority.revocations.events`` ("no gaps").
"""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from authority.storage.events import Kind, RevocationEvent
from authority.storage.schema import revocation_events

_ADVISORY_LOCK = int.from_bytes(
    hashlib.sha256(b"authority.revocation_events").digest()[:8], "big", signed=True
)


async def record(
    conn: AsyncConnection,
    *,
    kind: Kind,
    now: int,
    expires_at: int | None,
    jti: str | None = None,
    delegation_id: str | None = None,
    agent_id: str | None = None,
    owner_id: str | None = None,
    tool: str | None = None,
) -> RevocationEvent:
    """Insert one event in the caller's transaction; call it as the last statement."""
    if conn.dialect.name == "postgresql":
        await conn.execute(select(func.pg_advisory_xact_lock(_ADVISORY_LOCK)))
    values = {
        "created_at": now,
        "kind": kind,
        "jti": jti,
        "delegation_id": delegation_id,
        "agent_id": agent_id,
        "owner_id": owner_id,
        "expires_at": expires_at,
        "tool": tool,
    }
    result = await conn.execute(
        revocation_events.insert().values(**values).returning(revocation_events.c.id)
    )
    return RevocationEvent(
        id=int(result.scalar_one()),
        kind=kind,
        time=now,
        expires_at=expires_at,
        jti=jti,
        delegation_id=delegation_id,
        agent_id=agent_id,
        owner_id=owner_id,
        tool=tool,
    )
