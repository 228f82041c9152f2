"""API keys: the bearer credentials of the management API (RFC 6750).

A key is a generated 256-bit secret shown once, when it is created; only its keyed hash
is stored. Admin and auditor keys come from the CLI (``authority admin``) or an admin;
owner keys from an admin or the owner itself. Revocation sets ``revoked_at`` and keeps
the row, so who held which role, and when, stays answerable; and every creation and
revocation is a ``registry_changed`` ledger entry in the same transaction
(``authority.management.changes``), naming the key by its id, never its secret. The rows
are the API keys port's (``authority.storage.api_keys``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from authority.context import Services
from authority.errors import NotFound
from authority.secrets import new_id, new_secret
from authority.storage.api_keys import KeyRow
from authority.storage.registry import Stale, Written

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


def _key(row: KeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        role=row.role,
        owner_id=row.owner_id,
        label=row.label,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


async def _insert(
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
    row = KeyRow(
        id=key_id, role=role, owner_id=owner_id, label=label, created_at=now, revoked_at=None
    )
    entry = registry_changes.entry(
        now=now,
        actor=actor,
        object_type="api_key",
        object_id=key_id,
        change="created",
        changes={"role": role, "label": label},
        owner_id=owner_id,
    )
    created = await services.api_key_store.create(row, services.hasher.hash(secret), [entry])
    return IssuedKey(_key(created), secret)


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
    if not force_new and await services.api_key_store.has_active_admin():
        raise AdminKeyExists()
    return await _insert(services, "admin", None, label or "bootstrap", actor=actor)


async def issue_operator_key(
    services: Services, role: Role, label: str = "", *, actor: str = registry_changes.OPERATOR
) -> IssuedKey:
    """An admin or auditor key, for the CLI (the operator already holds the machine)."""
    if role == "owner":
        raise ValueError("owner keys are issued under their owner")
    return await _insert(services, role, None, label, actor=actor)


async def revoke_by_id(
    services: Services, key_id: str, *, actor: str = registry_changes.OPERATOR
) -> ApiKey:
    """Revoke any key by id, for the CLI."""
    return await _revoke(services, key_id, None, actor=actor)


async def all_keys(services: Services) -> list[ApiKey]:
    return [_key(row) for row in await services.api_key_store.all()]


# --- the API ------------------------------------------------------------------------------
async def create_for_owner(
    services: Services, principal: Principal, owner_id: str, body: OwnerKeyCreate
) -> IssuedKey:
    require_role(principal, *WRITERS)
    await owners.check_open(services, principal, owner_id)
    return await _insert(services, "owner", owner_id, body.label, actor=principal.key_id)


async def create(services: Services, principal: Principal, body: KeyCreate) -> IssuedKey:
    require_role(principal, *ADMIN)
    return await _insert(services, body.role, None, body.label, actor=principal.key_id)


async def list_keys(
    services: Services,
    principal: Principal,
    request: paging.PageRequest,
    owner_id: str | None = None,
) -> paging.Page[ApiKey]:
    """Keys of one owner, or (admin, auditor) every key."""
    require_role(principal, *(READERS if owner_id is not None else SEE_ALL))
    if owner_id is not None:
        await _visible_owner(services, principal, owner_id)
    rows = await services.api_key_store.page(
        limit=request.limit, after=request.after, owner_id=owner_id
    )
    return paging.page_of(services, KIND, rows, _key)


async def get(
    services: Services, principal: Principal, key_id: str, owner_id: str | None = None
) -> ApiKey:
    require_role(principal, *(READERS if owner_id is not None else SEE_ALL))
    if owner_id is not None:
        await _visible_owner(services, principal, owner_id)
    return _key(await _found(services, key_id, owner_id))


async def revoke(
    services: Services, principal: Principal, key_id: str, owner_id: str | None = None
) -> ApiKey:
    """Revoke a key (admin: any; owner: its own); revoking twice changes nothing."""
    require_role(principal, *(WRITERS if owner_id is not None else ADMIN))
    if owner_id is not None:
        await _visible_owner(services, principal, owner_id)
    return await _revoke(services, key_id, owner_id, actor=principal.key_id)


async def _found(services: Services, key_id: str, owner_id: str | None) -> KeyRow:
    """The key, if it is ``owner_id``'s (None: anyone's); else 404."""
    row = await services.api_key_store.get(key_id, owner_id=owner_id)
    if row is None:
        raise NotFound(NOT_FOUND)
    return row


async def _revoke(services: Services, key_id: str, owner_id: str | None, *, actor: str) -> ApiKey:
    async def attempt() -> Written[KeyRow] | Stale:
        row = await _found(services, key_id, owner_id)
        if row.revoked_at is not None:
            return Written(row)
        now = services.now()
        entry = registry_changes.entry(
            now=now,
            actor=actor,
            object_type="api_key",
            object_id=key_id,
            change="revoked",
            changes={"revoked_at": now},
            owner_id=row.owner_id,
        )
        return await services.api_key_store.replace(
            row, replace(row, revoked_at=now), entries=[entry]
        )

    return _key((await records.until_written(attempt)).row)


async def _visible_owner(services: Services, principal: Principal, owner_id: str) -> None:
    await owners.visible(services, principal, owner_id)
