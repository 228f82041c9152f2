"""Agents: the programs that act for an owner, known by their public keys (a JWKS).

An owner registers and edits its own agents; an admin any owner's. Status is not
editable here: quarantine and release are decisions with their own endpoints and ledger
entries, so an owner cannot lift a quarantine by editing its agent. Retiring is final.

Registering an agent and changing its name, description or keys is a
``registry_changed`` ledger entry in the same transaction
(``authority.management.changes``), the keys named by kid and thumbprint; a change of
autonomy is its own ``autonomy_changed`` entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement

from authority.context import Services
from authority.errors import Conflict, InvalidRequest
from authority.revocations import events
from authority.secrets import new_id
from authority.storage.events import RevocationEvent
from authority.storage.schema import agents
from authority.storage.sql import events as sql_events
from authority.storage.sql.ledger import append
from authority.tokens.jwks import validate_public_jwks

from . import autonomy, owners, paging, records
from . import changes as registry_changes
from .auth import READERS, WRITERS, Principal, require_role, sees_all
from .inputs import Body, Description, Name, require_changes

KIND = "agents"
NOT_FOUND = "No such agent."
NAME_TAKEN = "The owner already has an agent with this name."

AutonomyLevel = autonomy.Level


class AgentCreate(Body):
    name: Name
    description: Description | None = None
    # Required for an admin; an owner's agents are its own (naming another owner: 404).
    owner_id: str | None = None
    autonomy_level: AutonomyLevel = 0
    jwks: dict[str, Any]


class AgentUpdate(Body):
    # PATCH: only the fields sent change; a default here is never applied.
    name: Name = ""
    description: Description | None = None
    autonomy_level: AutonomyLevel = 0
    jwks: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    owner_id: str
    name: str
    description: str | None
    status: str
    status_reason: str | None
    autonomy_level: int
    jwks: dict[str, Any]
    created_at: int
    updated_at: int


def _agent(row: Any) -> Agent:
    return Agent(
        id=row.id,
        owner_id=row.owner_id,
        name=row.name,
        description=row.description,
        status=row.status,
        status_reason=row.status_reason,
        autonomy_level=row.autonomy_level,
        jwks=records.load_json(row.jwks),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _visible(principal: Principal) -> list[ColumnElement[bool]]:
    """The visibility rule: an owner sees its own agents only."""
    return [] if sees_all(principal) else [agents.c.owner_id == principal.owner_id]


async def _name_free(conn: AsyncConnection, owner_id: str, name: str) -> None:
    taken = await conn.execute(
        select(agents.c.id).where(agents.c.owner_id == owner_id, agents.c.name == name)
    )
    if taken.first() is not None:
        raise Conflict(NAME_TAKEN)


async def create(services: Services, principal: Principal, body: AgentCreate) -> Agent:
    require_role(principal, *WRITERS)
    if principal.role == "owner":
        owner_id = body.owner_id or principal.owner_id
    elif body.owner_id is None:
        raise InvalidRequest("The owner_id field is required.")
    else:
        owner_id = body.owner_id
    if owner_id is None:  # an owner key always names its owner (schema constraint)
        raise InvalidRequest("The owner_id field is required.")
    jwks = validate_public_jwks(body.jwks)
    now = services.now()
    agent_id = new_id("agt")
    async with records.write(services, NAME_TAKEN) as conn:
        await owners.check_open(conn, principal, owner_id)
        await _name_free(conn, owner_id, body.name)
        await conn.execute(
            agents.insert().values(
                id=agent_id,
                owner_id=owner_id,
                name=body.name,
                description=body.description,
                status="active",
                autonomy_level=body.autonomy_level,
                jwks=records.dump_json(jwks),
                status_reason=None,
                created_at=now,
                updated_at=now,
            )
        )
        await registry_changes.record(
            conn,
            now=now,
            actor=principal.key_id,
            object_type="agent",
            object_id=agent_id,
            change="created",
            changes={
                "name": body.name,
                "description": body.description,
                "autonomy_level": body.autonomy_level,
            },
            keys=registry_changes.key_refs(jwks),
            owner_id=owner_id,
            agent_id=agent_id,
        )
        row = await records.fetch(conn, agents, agent_id, NOT_FOUND)
    return _agent(row)


async def get(services: Services, principal: Principal, agent_id: str) -> Agent:
    require_role(principal, *READERS)
    async with services.engine.connect() as conn:
        return _agent(await records.fetch(conn, agents, agent_id, NOT_FOUND, _visible(principal)))


async def list_agents(
    services: Services, principal: Principal, request: paging.PageRequest
) -> paging.Page[Agent]:
    require_role(principal, *READERS)
    async with services.engine.connect() as conn:
        rows, cursor = await paging.fetch_page(
            conn, services, KIND, agents, request, where=_visible(principal)
        )
    return paging.Page([_agent(r) for r in rows], cursor)


async def update_agent(
    services: Services, principal: Principal, agent_id: str, body: AgentUpdate
) -> Agent:
    require_role(principal, *WRITERS)
    changes = require_changes(body)
    keys: list[dict[str, str]] | None = None
    if "jwks" in changes:
        jwks = validate_public_jwks(changes["jwks"])
        changes["jwks"] = records.dump_json(jwks)
        keys = registry_changes.key_refs(jwks)
    async with records.write(services, NAME_TAKEN) as conn:
        row = await records.fetch(
            conn, agents, agent_id, NOT_FOUND, _visible(principal), for_update=True
        )
        if row.status == "retired":
            raise Conflict("The agent is retired.")
        if "name" in changes and changes["name"] != row.name:
            await _name_free(conn, row.owner_id, changes["name"])
        changes["updated_at"] = services.now()
        if changes.get("autonomy_level", row.autonomy_level) != row.autonomy_level:
            # Every change of autonomy is in the ledger, whichever route made it.
            await autonomy.record_change(
                conn,
                agent_id=agent_id,
                owner_id=row.owner_id,
                previous=row.autonomy_level,
                level=changes["autonomy_level"],
                actor=principal.key_id,
                reason=None,
                now=changes["updated_at"],
            )
        await conn.execute(update(agents).where(agents.c.id == agent_id).values(**changes))
        # Autonomy has its entry above; the name, description and keys have this one.
        changed = registry_changes.differences(
            {name: changes[name] for name in ("name", "description") if name in changes},
            row._mapping,
        )
        if changes.get("jwks", row.jwks) == row.jwks:
            keys = None
        if changed or keys is not None:
            await registry_changes.record(
                conn,
                now=changes["updated_at"],
                actor=principal.key_id,
                object_type="agent",
                object_id=agent_id,
                change="updated",
                changes=changed,
                keys=keys,
                owner_id=row.owner_id,
                agent_id=agent_id,
            )
        row = await records.fetch(conn, agents, agent_id, NOT_FOUND)
    return _agent(row)


async def retire(services: Services, principal: Principal, agent_id: str) -> Agent:
    """Retire the agent for good; retiring twice changes nothing."""
    require_role(principal, *WRITERS)
    async with records.write(services, NOT_FOUND) as conn:
        row = await records.fetch(
            conn, agents, agent_id, NOT_FOUND, _visible(principal), for_update=True
        )
        event: RevocationEvent | None = None
        if row.status != "retired":
            now = services.now()
            await conn.execute(
                update(agents)
                .where(agents.c.id == agent_id)
                .values(status="retired", updated_at=now)
            )
            await append(
                conn,
                kind="agent_retired",
                version=1,
                created_at=now,
                record={"agent_id": agent_id, "owner_id": row.owner_id, "actor": principal.key_id},
            )
            # Introspection refuses its tokens at once (it reads the agent's status); the
            # feed tells resource servers that verify locally.
            event = await sql_events.record(
                conn,
                kind="agent",
                now=now,
                expires_at=events.cascade_expiry(services.settings, now),
                agent_id=agent_id,
                owner_id=row.owner_id,
            )
            row = await records.fetch(conn, agents, agent_id, NOT_FOUND)
    if event is not None:
        await events.publish(services, [event])
    return _agent(row)


async def set_autonomy_level(
    services: Services, principal: Principal, agent_id: str, body: autonomy.AutonomyBody
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
            await autonomy.record_change(
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
    return _agent(row)
