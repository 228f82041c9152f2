"""Autonomy levels 0-3: how much an agent may do without asking its owner.

Level 0 reads only; above that, tools up to the agent's level of risk need no approval
(``policy.checks.autonomy_covers_risk``). An owner (or an admin) sets the level
explicitly, and the authority lowers it after repeated containments
(``authority.containment``); every change is an ``autonomy_changed`` ledger entry naming
who and why, written in the transaction that makes it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from authority.context import Services
from authority.errors import Conflict
from authority.ledger.entries import append
from authority.storage.schema import agents

from . import records
from .agents import NOT_FOUND, Agent
from .agents import _agent as agent_view
from .auth import WRITERS, Principal, require_role, sees_all
from .inputs import Body, Description

Level = Annotated[int, Field(ge=0, le=3)]


class AutonomyBody(Body):
    level: Level
    reason: Description | None = None


async def record_change(
    conn: AsyncConnection,
    *,
    agent_id: str,
    owner_id: str,
    previous: int,
    level: int,
    actor: str,
    reason: str | None,
    now: int,
) -> None:
    await append(
        conn,
        kind="autonomy_changed",
        version=2,
        created_at=now,
        record={
            "agent_id": agent_id,
            "owner_id": owner_id,
            "previous_level": previous,
            "level": level,
            "actor": actor,
            "reason": reason,
        },
    )


async def set_level(
    services: Services, principal: Principal, agent_id: str, body: AutonomyBody
) -> Agent:
    """Set the level; setting the level it has changes nothing and records nothing."""
    require_role(principal, *WRITERS)
    visible = [] if sees_all(principal) else [agents.c.owner_id == principal.owner_id]
    now = services.now()
    async with services.engine.begin() as conn:
        row = await records.fetch(conn, agents, agent_id, NOT_FOUND, visible, for_update=True)
        if row.status == "retired":
            raise Conflict("The agent is retired.")
        if row.autonomy_level != body.level:
            await conn.execute(
                update(agents)
                .where(agents.c.id == agent_id)
                .values(autonomy_level=body.level, updated_at=now)
            )
            await record_change(
                conn,
                agent_id=agent_id,
                owner_id=row.owner_id,
                previous=row.autonomy_level,
                level=body.level,
                actor=principal.key_id,
                reason=body.reason,
                now=now,
            )
        row = await records.fetch(conn, agents, agent_id, NOT_FOUND)
    return agent_view(row)
