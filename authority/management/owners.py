"""Owners: the humans every agent and delegation belongs to.

An admin creates, lists and retires owners; an owner reads (and may rename) itself.
Retiring is final and revokes the owner's API keys in the same transaction; the row stays,
because grants and the ledger name it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from authority.context import Services
from authority.errors import Conflict, NotFound
from authority.revocations import events
from authority.secrets import new_id
from authority.storage.events import RevocationEvent
from authority.storage.schema import api_keys, owners
from authority.storage.sql import events as sql_events
from authority.storage.sql.ledger import append

from . import paging, records
from .auth import ADMIN, READERS, SEE_ALL, WRITERS, Principal, may_see_owner, require_role
from .inputs import Body, Email, Name, require_changes

KIND = "owners"
NOT_FOUND = "No such owner."
NAME_TAKEN = "An owner with this name already exists."


class OwnerCreate(Body):
    name: Name
    email: Email | None = None


class OwnerUpdate(Body):
    # PATCH: only the fields sent change; a default here is never applied.
    name: Name = ""
    email: Email | None = None


@dataclass(frozen=True, slots=True)
class Owner:
    id: str
    name: str
    email: str | None
    status: str
    created_at: int
    updated_at: int


def _owner(row: Any) -> Owner:
    return Owner(
        id=row.id,
        name=row.name,
        email=row.email,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def create(services: Services, principal: Principal, body: OwnerCreate) -> Owner:
    require_role(principal, *ADMIN)
    now = services.now()
    owner_id = new_id("own")
    async with records.write(services, NAME_TAKEN) as conn:
        taken = await conn.execute(select(owners.c.id).where(owners.c.name == body.name))
        if taken.first() is not None:
            raise Conflict(NAME_TAKEN)
        await conn.execute(
            owners.insert().values(
                id=owner_id,
                name=body.name,
                email=body.email,
                status="active",
                created_at=now,
                updated_at=now,
            )
        )
        row = await records.fetch(conn, owners, owner_id, NOT_FOUND)
    return _owner(row)


async def get(services: Services, principal: Principal, owner_id: str) -> Owner:
    require_role(principal, *READERS)
    if not may_see_owner(principal, owner_id):
        raise NotFound(NOT_FOUND)
    async with services.engine.connect() as conn:
        return _owner(await records.fetch(conn, owners, owner_id, NOT_FOUND))


async def list_owners(
    services: Services, principal: Principal, request: paging.PageRequest
) -> paging.Page[Owner]:
    require_role(principal, *SEE_ALL)
    async with services.engine.connect() as conn:
        rows, cursor = await paging.fetch_page(conn, services, KIND, owners, request)
    return paging.Page([_owner(r) for r in rows], cursor)


async def update_owner(
    services: Services, principal: Principal, owner_id: str, body: OwnerUpdate
) -> Owner:
    require_role(principal, *WRITERS)
    changes = require_changes(body)
    if not may_see_owner(principal, owner_id):
        raise NotFound(NOT_FOUND)
    async with records.write(services, NAME_TAKEN) as conn:
        row = await records.fetch(conn, owners, owner_id, NOT_FOUND, for_update=True)
        if row.status == "retired":
            raise Conflict("The owner is retired.")
        if "name" in changes and changes["name"] != row.name:
            taken = await conn.execute(select(owners.c.id).where(owners.c.name == changes["name"]))
            if taken.first() is not None:
                raise Conflict(NAME_TAKEN)
        changes["updated_at"] = services.now()
        await conn.execute(update(owners).where(owners.c.id == owner_id).values(**changes))
        row = await records.fetch(conn, owners, owner_id, NOT_FOUND)
    return _owner(row)


async def retire(services: Services, principal: Principal, owner_id: str) -> Owner:
    """Retire the owner and revoke its API keys; retiring twice changes nothing."""
    require_role(principal, *ADMIN)
    async with records.write(services, NOT_FOUND) as conn:
        row = await records.fetch(conn, owners, owner_id, NOT_FOUND, for_update=True)
        event: RevocationEvent | None = None
        if row.status != "retired":
            now = services.now()
            await conn.execute(
                update(owners)
                .where(owners.c.id == owner_id)
                .values(status="retired", updated_at=now)
            )
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.owner_id == owner_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            await append(
                conn,
                kind="owner_retired",
                version=1,
                created_at=now,
                record={"owner_id": owner_id, "actor": principal.key_id},
            )
            event = await sql_events.record(
                conn,
                kind="owner",
                now=now,
                expires_at=events.cascade_expiry(services.settings, now),
                owner_id=owner_id,
            )
            row = await records.fetch(conn, owners, owner_id, NOT_FOUND)
    if event is not None:
        await events.publish(services, [event])
    return _owner(row)


async def check_open(conn: AsyncConnection, principal: Principal, owner_id: str) -> None:
    """404 unless ``owner_id`` exists and is visible to the principal; 409 if retired."""
    if not may_see_owner(principal, owner_id):
        raise NotFound(NOT_FOUND)
    row = await records.fetch(conn, owners, owner_id, NOT_FOUND)
    if row.status == "retired":
        raise Conflict("The owner is retired.")
