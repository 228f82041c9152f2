"""API keys: the bearer credentials of the management API (RFC 6750).

A key is a generated 256-bit secret shown once, when it is created; only its keyed hash
is stored. Admin and auditor keys come from the CLI (``authority admin``) or an admin;
owner keys from an admin or the owner itself. Revocation sets ``revoked_at`` and keeps
the row, so who held which role, and when, stays answerable; and every creation and
revocation is a ``registry_changed`` ledger entry in the same transaction
(``authority.management.changes``), naming the key by its id, never its secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement

from authority.context import Services
from authority.errors import NotFound
from authority.secrets import new_id, new_secret
from authority.storage.schema import api_keys
from authority.storage.schema import owners as owners_table

from . import changes as registry_changes
from . import owners, paging, records
from .auth import (
    ADMIN,
    API_KEY_PREFIX,
    READERS,
    SEE_ALL,
    WRITERS,
    Principal,
    Role,
    may_see_owner,
    require_role,
)
from .inputs import Body, Label

KIND = "api_keys"
NOT_FOUND = "No such API key."


class OwnerKeyCreate(Body):
    label: Label = ""


class KeyCreate(Body):
    """An admin or auditor key; owner keys are created under their owner."""

    role: Literal["admin", "auditor"]
    label: Label = ""


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    role: str
    owner_id: str | None
    label: str
    created_at: int
    revoked_at: int | None


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key and its secret: the only time the secret exists outside its holder."""

    key: ApiKey
    secret: str


def _key(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        role=row.role,
        owner_id=row.owner_id,
        label=row.label,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


async def _insert(
    conn: AsyncConnection,
    services: Services,
    role: Role,
    owner_id: str | None,
    label: str,
    *,
    actor: str,
) -> IssuedKey:
    secret = new_secret(API_KEY_PREFIX)
    key_id = new_id("key")
    now = services.now()
    await conn.execute(
        api_keys.insert().values(
            id=key_id,
            key_hash=services.hasher.hash(secret),
            role=role,
            owner_id=owner_id,
            label=label,
            created_at=now,
            revoked_at=None,
        )
    )
    await registry_changes.record(
        conn,
        now=now,
        actor=actor,
        object_type="api_key",
        object_id=key_id,
        change="created",
        changes={"role": role, "label": label},
        owner_id=owner_id,
    )
    row = await records.fetch(conn, api_keys, key_id, NOT_FOUND)
    return IssuedKey(_key(row), secret)


# --- operator keys (CLI) ----------------------------------------------------------------
class AdminKeyExists(Exception):
    """``bootstrap`` found an active admin key and was not told to make another."""


async def bootstrap(
    services: Services,
    *,
    force_new: bool = False,
    label: str = "",
    actor: str = registry_changes.OPERATOR,
) -> IssuedKey:
    """The first admin key. Refused once an active admin key exists, unless ``force_new``."""
    async with services.engine.begin() as conn:
        existing = await conn.execute(
            select(api_keys.c.id)
            .where(api_keys.c.role == "admin", api_keys.c.revoked_at.is_(None))
            .limit(1)
        )
        if existing.first() is not None and not force_new:
            raise AdminKeyExists()
        return await _insert(conn, services, "admin", None, label or "bootstrap", actor=actor)


async def issue_operator_key(
    services: Services, role: Role, label: str = "", *, actor: str = registry_changes.OPERATOR
) -> IssuedKey:
    """An admin or auditor key, for the CLI (the operator already holds the machine)."""
    if role == "owner":
        raise ValueError("owner keys are issued under their owner")
    async with services.engine.begin() as conn:
        return await _insert(conn, services, role, None, label, actor=actor)


async def revoke_by_id(
    services: Services, key_id: str, *, actor: str = registry_changes.OPERATOR
) -> ApiKey:
    """Revoke any key by id, for the CLI."""
    async with services.engine.begin() as conn:
        return await _revoke(conn, services, key_id, (), actor=actor)


async def all_keys(services: Services) -> list[ApiKey]:
    async with services.engine.connect() as conn:
        rows = await conn.execute(select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id))
    return [_key(r) for r in rows]


# --- the API ------------------------------------------------------------------------------
async def create_for_owner(
    services: Services, principal: Principal, owner_id: str, body: OwnerKeyCreate
) -> IssuedKey:
    require_role(principal, *WRITERS)
    async with services.engine.begin() as conn:
        await owners.check_open(conn, principal, owner_id)
        return await _insert(conn, services, "owner", owner_id, body.label, actor=principal.key_id)


async def create(services: Services, principal: Principal, body: KeyCreate) -> IssuedKey:
    require_role(principal, *ADMIN)
    async with services.engine.begin() as conn:
        return await _insert(conn, services, body.role, None, body.label, actor=principal.key_id)


async def list_keys(
    services: Services,
    principal: Principal,
    request: paging.PageRequest,
    owner_id: str | None = None,
) -> paging.Page[ApiKey]:
    """Keys of one owner, or (admin, auditor) every key."""
    require_role(principal, *(READERS if owner_id is not None else SEE_ALL))
    async with services.engine.connect() as conn:
        if owner_id is not None:
            await _visible_owner(conn, principal, owner_id)
        where = _of_owner(owner_id)
        rows, cursor = await paging.fetch_page(conn, services, KIND, api_keys, request, where=where)
    return paging.Page([_key(r) for r in rows], cursor)


async def get(
    services: Services, principal: Principal, key_id: str, owner_id: str | None = None
) -> ApiKey:
    require_role(principal, *(READERS if owner_id is not None else SEE_ALL))
    async with services.engine.connect() as conn:
        if owner_id is not None:
            await _visible_owner(conn, principal, owner_id)
        where = _of_owner(owner_id)
        return _key(await records.fetch(conn, api_keys, key_id, NOT_FOUND, where))


async def revoke(
    services: Services, principal: Principal, key_id: str, owner_id: str | None = None
) -> ApiKey:
    """Revoke a key (admin: any; owner: its own); revoking twice changes nothing."""
    require_role(principal, *(WRITERS if owner_id is not None else ADMIN))
    async with services.engine.begin() as conn:
        if owner_id is not None:
            await _visible_owner(conn, principal, owner_id)
        where = _of_owner(owner_id)
        return await _revoke(conn, services, key_id, where, actor=principal.key_id)


async def _revoke(
    conn: AsyncConnection,
    services: Services,
    key_id: str,
    where: Sequence[ColumnElement[bool]],
    *,
    actor: str,
) -> ApiKey:
    row = await records.fetch(conn, api_keys, key_id, NOT_FOUND, where, for_update=True)
    if row.revoked_at is None:
        now = services.now()
        await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=now))
        await registry_changes.record(
            conn,
            now=now,
            actor=actor,
            object_type="api_key",
            object_id=key_id,
            change="revoked",
            changes={"revoked_at": now},
            owner_id=row.owner_id,
        )
        row = await records.fetch(conn, api_keys, key_id, NOT_FOUND)
    return _key(row)


async def _visible_owner(conn: AsyncConnection, principal: Principal, owner_id: str) -> None:
    if not may_see_owner(principal, owner_id):
        raise NotFound(owners.NOT_FOUND)
    await records.fetch(conn, owners_table, owner_id, owners.NOT_FOUND)


def _of_owner(owner_id: str | None) -> list[ColumnElement[bool]]:
    return [api_keys.c.owner_id == owner_id] if owner_id is not None else []
