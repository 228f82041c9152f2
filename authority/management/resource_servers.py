"""Resource servers: the APIs that host tools, and how they authenticate to introspect.

A resource server is an OAuth client of the authority (its id is its ``client_id``)
using ``client_secret_basic``, ``client_secret_post`` (RFC 6749 §2.3.1) or
``private_key_jwt`` (RFC 7523 §2.2, with a registered JWKS). A client secret is
generated here, shown once and stored only as its keyed hash; rotating it replaces the
hash, so the old secret stops working at once.

The audience (RFC 8707 resource indicator) is fixed once registered: tokens already
issued carry it, and tools are bound to it.

Every registration, change, secret rotation and retirement is a ``registry_changed``
ledger entry in the same transaction (``authority.management.changes``); the secret is
never in it, and a JWKS only as its keys' kids and thumbprints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StringConstraints
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from authority.context import Services
from authority.errors import Conflict, InvalidRequest
from authority.secrets import new_id, new_secret
from authority.storage.schema import resource_servers, tools
from authority.tokens.jwks import validate_public_jwks

from . import changes as registry_changes
from . import paging, records
from .auth import ADMIN, READERS, Principal, require_role
from .inputs import Body, Name, require_changes

KIND = "resource_servers"
NOT_FOUND = "No such resource server."
TAKEN = "A resource server with this name or audience already exists."
SECRET_PREFIX = "rss"

AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt"]
SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post"})


def _check_audience(value: str) -> str:
    """RFC 8707 §2: an absolute URI, without a fragment (and here without a query or
    credentials, which have no place in an identifier that every token carries)."""
    if not value.isascii() or not value.isprintable() or " " in value:
        raise ValueError("not a URI")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("not an http(s) URI")
    if parts.fragment or "#" in value or parts.query or "?" in value:
        raise ValueError("has a query or fragment")
    if parts.username is not None or "@" in parts.netloc:
        raise ValueError("has credentials")
    _ = parts.port  # raises ValueError on a bad port
    return value


Audience = Annotated[
    str, StringConstraints(min_length=1, max_length=2048), AfterValidator(_check_audience)
]


class ServerCreate(Body):
    name: Name
    audience: Audience
    auth_method: AuthMethod = "client_secret_basic"
    jwks: dict[str, Any] | None = None


class ServerUpdate(Body):
    # PATCH: only the fields sent change; a default here is never applied.
    name: Name = ""
    jwks: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ResourceServer:
    id: str
    client_id: str
    name: str
    audience: str
    auth_method: str
    jwks: dict[str, Any] | None
    status: str
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class IssuedSecret:
    """A server and its new client secret: the only time the secret is ever shown."""

    server: ResourceServer
    client_secret: str | None


def _server(row: Any) -> ResourceServer:
    return ResourceServer(
        id=row.id,
        client_id=row.id,
        name=row.name,
        audience=row.audience,
        auth_method=row.auth_method,
        jwks=records.load_json(row.jwks) if row.jwks is not None else None,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def _unique(
    conn: AsyncConnection, *, name: str | None = None, audience: str | None = None
) -> None:
    for column, value in ((resource_servers.c.name, name), (resource_servers.c.audience, audience)):
        if value is not None:
            taken = await conn.execute(select(resource_servers.c.id).where(column == value))
            if taken.first() is not None:
                raise Conflict(TAKEN)


async def create(services: Services, principal: Principal, body: ServerCreate) -> IssuedSecret:
    require_role(principal, *ADMIN)
    secret: str | None = None
    jwks_text: str | None = None
    keys: list[dict[str, str]] | None = None
    if body.auth_method == "private_key_jwt":
        if body.jwks is None:
            raise InvalidRequest("The jwks field is required for private_key_jwt.")
        jwks = validate_public_jwks(body.jwks)
        jwks_text = records.dump_json(jwks)
        keys = registry_changes.key_refs(jwks)
    else:
        if body.jwks is not None:
            raise InvalidRequest("The jwks field is only for private_key_jwt.")
        secret = new_secret(SECRET_PREFIX)
    now = services.now()
    server_id = new_id("rs")
    async with records.write(services, TAKEN) as conn:
        await _unique(conn, name=body.name, audience=body.audience)
        await conn.execute(
            resource_servers.insert().values(
                id=server_id,
                name=body.name,
                audience=body.audience,
                auth_method=body.auth_method,
                secret_hash=services.hasher.hash(secret) if secret is not None else None,
                jwks=jwks_text,
                status="active",
                created_at=now,
                updated_at=now,
            )
        )
        await registry_changes.record(
            conn,
            now=now,
            actor=principal.key_id,
            object_type="resource_server",
            object_id=server_id,
            change="created",
            changes={"name": body.name, "audience": body.audience, "auth_method": body.auth_method},
            keys=keys,
        )
        row = await records.fetch(conn, resource_servers, server_id, NOT_FOUND)
    return IssuedSecret(_server(row), secret)


async def get(services: Services, principal: Principal, server_id: str) -> ResourceServer:
    require_role(principal, *READERS)
    async with services.engine.connect() as conn:
        return _server(await records.fetch(conn, resource_servers, server_id, NOT_FOUND))


async def list_servers(
    services: Services, principal: Principal, request: paging.PageRequest
) -> paging.Page[ResourceServer]:
    require_role(principal, *READERS)
    async with services.engine.connect() as conn:
        rows, cursor = await paging.fetch_page(conn, services, KIND, resource_servers, request)
    return paging.Page([_server(r) for r in rows], cursor)


async def update_server(
    services: Services, principal: Principal, server_id: str, body: ServerUpdate
) -> ResourceServer:
    require_role(principal, *ADMIN)
    changes = require_changes(body)
    keys: list[dict[str, str]] | None = None
    if "jwks" in changes:
        jwks = validate_public_jwks(changes["jwks"])
        changes["jwks"] = records.dump_json(jwks)
        keys = registry_changes.key_refs(jwks)
    async with records.write(services, TAKEN) as conn:
        row = await records.fetch(conn, resource_servers, server_id, NOT_FOUND, for_update=True)
        if row.status == "retired":
            raise Conflict("The resource server is retired.")
        if "jwks" in changes and row.auth_method != "private_key_jwt":
            raise InvalidRequest("The jwks field is only for private_key_jwt.")
        if "name" in changes and changes["name"] != row.name:
            await _unique(conn, name=changes["name"])
        changed = registry_changes.differences(
            {"name": changes.get("name", row.name)}, row._mapping
        )
        if changes.get("jwks", row.jwks) == row.jwks:
            keys = None
        changes["updated_at"] = services.now()
        await conn.execute(
            update(resource_servers).where(resource_servers.c.id == server_id).values(**changes)
        )
        if changed or keys is not None:
            await registry_changes.record(
                conn,
                now=changes["updated_at"],
                actor=principal.key_id,
                object_type="resource_server",
                object_id=server_id,
                change="updated",
                changes=changed,
                keys=keys,
            )
        row = await records.fetch(conn, resource_servers, server_id, NOT_FOUND)
    return _server(row)


async def rotate_secret(services: Services, principal: Principal, server_id: str) -> IssuedSecret:
    """A new client secret; the previous one stops working with this transaction."""
    require_role(principal, *ADMIN)
    secret = new_secret(SECRET_PREFIX)
    async with records.write(services, TAKEN) as conn:
        row = await records.fetch(conn, resource_servers, server_id, NOT_FOUND, for_update=True)
        if row.status == "retired":
            raise Conflict("The resource server is retired.")
        if row.auth_method not in SECRET_METHODS:
            raise Conflict("The resource server authenticates with private_key_jwt.")
        now = services.now()
        await conn.execute(
            update(resource_servers)
            .where(resource_servers.c.id == server_id)
            .values(secret_hash=services.hasher.hash(secret), updated_at=now)
        )
        await registry_changes.record(
            conn,
            now=now,
            actor=principal.key_id,
            object_type="resource_server",
            object_id=server_id,
            change="secret_rotated",
        )
        row = await records.fetch(conn, resource_servers, server_id, NOT_FOUND)
    return IssuedSecret(_server(row), secret)


async def retire(services: Services, principal: Principal, server_id: str) -> ResourceServer:
    """Retire the server and forget its secret; refused while it hosts an active tool.

    Retiring the tools first is explicit: the admin sees which tools stop working.
    """
    require_role(principal, *ADMIN)
    async with records.write(services, TAKEN) as conn:
        row = await records.fetch(conn, resource_servers, server_id, NOT_FOUND, for_update=True)
        if row.status != "retired":
            hosted = await conn.execute(
                select(tools.c.id)
                .where(tools.c.resource_server_id == server_id, tools.c.status == "active")
                .limit(1)
            )
            if hosted.first() is not None:
                raise Conflict("The resource server still hosts active tools.")
            now = services.now()
            await conn.execute(
                update(resource_servers)
                .where(resource_servers.c.id == server_id)
                .values(status="retired", secret_hash=None, updated_at=now)
            )
            await registry_changes.record(
                conn,
                now=now,
                actor=principal.key_id,
                object_type="resource_server",
                object_id=server_id,
                change="retired",
                changes={"status": "retired"},
            )
            row = await records.fetch(conn, resource_servers, server_id, NOT_FOUND)
    return _server(row)
