"""Owners: the humans every agent and delegation belongs to.

An admin creates, lists and retires owners; an owner reads (and may rename) itself.
Retiring is final and revokes the owner's API keys in the same transaction; the row stays,
because grants and the ledger name it. The rows are the owners port's
(``authority.storage.owners``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from authority.context import Services
from authority.errors import Conflict, NotFound
from authority.revocations import events
from authority.secrets import new_id
from authority.storage.owners import OwnerRow
from authority.storage.registry import NewEvent, Stale, Taken, Written

from . import paging, records
from .auth import ADMIN, READERS, SEE_ALL, WRITERS, Principal, may_see_owner, require_role
from .inputs import Body, Email, Name, require_changes

KIND = "owners"
NOT_FOUND = "No such owner."
NAME_TAKEN = "An owner with this name already exists."
RETIRED = "The owner is retired."


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


def _owner(row: OwnerRow) -> Owner:
    return Owner(
        id=row.id,
        name=row.name,
        email=row.email,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def visible(services: Services, principal: Principal, owner_id: str) -> OwnerRow:
    """The owner if it exists and the principal may see it; else 404."""
    if not may_see_owner(principal, owner_id):
        raise NotFound(NOT_FOUND)
    row = await services.owner_store.get(owner_id)
    if row is None:
        raise NotFound(NOT_FOUND)
    return row


async def create(services: Services, principal: Principal, body: OwnerCreate) -> Owner:
    require_role(principal, *ADMIN)
    now = services.now()
    row = OwnerRow(
        id=new_id("own"),
        name=body.name,
        email=body.email,
        status="active",
        created_at=now,
        updated_at=now,
    )
    created = await services.owner_store.create(row)
    if isinstance(created, Taken):
        raise Conflict(NAME_TAKEN)
    return _owner(created)


async def get(services: Services, principal: Principal, owner_id: str) -> Owner:
    require_role(principal, *READERS)
    return _owner(await visible(services, principal, owner_id))


async def list_owners(
    services: Services, principal: Principal, request: paging.PageRequest
) -> paging.Page[Owner]:
    require_role(principal, *SEE_ALL)
    rows = await services.owner_store.page(limit=request.limit, after=request.after)
    return paging.page_of(services, KIND, rows, _owner)


async def update_owner(
    services: Services, principal: Principal, owner_id: str, body: OwnerUpdate
) -> Owner:
    require_role(principal, *WRITERS)
    changes = require_changes(body)

    async def attempt() -> Written[OwnerRow] | Stale:
        row = await visible(services, principal, owner_id)
        if row.status == "retired":
            raise Conflict(RETIRED)
        new = replace(row, **changes, updated_at=services.now())
        written = await services.owner_store.replace(row, new)
        if isinstance(written, Taken):
            raise Conflict(NAME_TAKEN)
        return written

    return _owner((await records.until_written(attempt)).row)


async def retire(services: Services, principal: Principal, owner_id: str) -> Owner:
    """Retire the owner and revoke its API keys; retiring twice changes nothing."""
    require_role(principal, *ADMIN)

    async def attempt() -> Written[OwnerRow] | Stale:
        row = await visible(services, principal, owner_id)
        if row.status == "retired":
            return Written(row)
        now = services.now()
        return await services.owner_store.retire(
            row,
            replace(row, status="retired", updated_at=now),
            entries=[("owner_retired", 1, now, {"owner_id": owner_id, "actor": principal.key_id})],
            event=NewEvent(
                kind="owner",
                time=now,
                expires_at=events.cascade_expiry(services.settings, now),
                owner_id=owner_id,
            ),
        )

    written = await records.until_written(attempt)
    if written.events:
        await events.publish(services, written.events)
    return _owner(written.row)


async def check_open(services: Services, principal: Principal, owner_id: str) -> None:
    """404 unless ``owner_id`` exists and is visible to the principal; 409 if retired."""
    if (await visible(services, principal, owner_id)).status == "retired":
        raise Conflict(RETIRED)
