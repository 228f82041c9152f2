"""An agent's lifecycle state changes, by an actor: quarantine and release.

Each is one transaction that makes the change and writes its ledger entry (``actor``:
who did it, an API key's id or ``authority:containment``; the reason given), plus the
revocation event when tokens stop being good; the feed is woken once it commits
(``domain_events.Revoked``). No role is checked here: the owner's controls
(``management.controls``) check the caller's role and scope first and pass what it
permits; automatic containment (``authority.containment``) acts as the authority itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from authority.context import Services
from authority.domain_events import Revoked
from authority.errors import Conflict, InsufficientScope
from authority.revocations import events
from authority.storage.events import RevocationEvent
from authority.storage.schema import agents, api_keys
from authority.storage.sql import events as sql_events
from authority.storage.sql.ledger import append

from . import records
from .agents import NOT_FOUND


async def quarantine(
    services: Services,
    agent_id: str,
    *,
    actor: str,
    reason: str,
    overrides: bool,
    scope: Sequence[ColumnElement[bool]] = (),
) -> Row[Any]:
    """Quarantine now; the agent's row afterwards.

    Quarantining a quarantined agent changes nothing, except that an ``overrides`` actor
    (an admin) takes over a quarantine no admin made, so that only an admin can lift it.
    ``scope``: the rows the actor may see (another owner's agent is 404).
    """
    now = services.now()
    event: RevocationEvent | None = None
    async with services.engine.begin() as conn:
        row = await records.fetch(conn, agents, agent_id, NOT_FOUND, scope, for_update=True)
        if row.status == "retired":
            raise Conflict("The agent is retired.")
        was_active = row.status == "active"
        takes_over = (
            row.status == "quarantined"
            and overrides
            and not await quarantined_by_admin(conn, row.quarantined_by)
        )
        if was_active or takes_over:
            await conn.execute(
                update(agents)
                .where(agents.c.id == agent_id)
                .values(
                    status="quarantined",
                    status_reason=reason,
                    quarantined_by=actor,
                    updated_at=now,
                )
            )
            await append(
                conn,
                kind="agent_quarantined",
                version=1,
                created_at=now,
                record={
                    "agent_id": agent_id,
                    "owner_id": row.owner_id,
                    "actor": actor,
                    "reason": reason,
                },
            )
            owner_id = row.owner_id
            row = await records.fetch(conn, agents, agent_id, NOT_FOUND)
        if was_active:
            event = await sql_events.record(
                conn,
                kind="agent",
                now=now,
                expires_at=events.cascade_expiry(services.settings, now),
                agent_id=agent_id,
                owner_id=owner_id,
            )
    if event is not None:
        await services.events.publish(Revoked((event,)))
    return row


async def release(
    services: Services,
    agent_id: str,
    *,
    actor: str,
    reason: str | None,
    lifts_admin_quarantine: bool,
    scope: Sequence[ColumnElement[bool]] = (),
) -> Row[Any]:
    """Lift a quarantine; releasing an active agent changes nothing. The row afterwards.

    An admin's quarantine is lifted only when ``lifts_admin_quarantine`` (an admin).
    """
    now = services.now()
    async with services.engine.begin() as conn:
        row = await records.fetch(conn, agents, agent_id, NOT_FOUND, scope, for_update=True)
        if row.status == "retired":
            raise Conflict("The agent is retired.")
        if row.status == "quarantined":
            if not lifts_admin_quarantine and await quarantined_by_admin(conn, row.quarantined_by):
                raise InsufficientScope("An administrator's quarantine is lifted by an admin.")
            await conn.execute(
                update(agents)
                .where(agents.c.id == agent_id)
                .values(status="active", status_reason=None, quarantined_by=None, updated_at=now)
            )
            await append(
                conn,
                kind="agent_released",
                version=1,
                created_at=now,
                record={
                    "agent_id": agent_id,
                    "owner_id": row.owner_id,
                    "actor": actor,
                    "reason": reason,
                },
            )
        return await records.fetch(conn, agents, agent_id, NOT_FOUND)


async def quarantined_by_admin(conn: AsyncConnection, key_id: str | None) -> bool:
    """Whether the quarantine's author is an admin's API key."""
    if key_id is None:
        return False
    role = (await conn.execute(select(api_keys.c.role).where(api_keys.c.id == key_id))).scalar()
    return role == "admin"
