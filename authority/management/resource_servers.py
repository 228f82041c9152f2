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
never in it, and a JWKS only as its keys' kids and thumbprints. The rows are the resource
servers port's (``authority.storage.resource_servers``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StringConstraints

from authority.context import Services
from authority.errors import Conflict, InvalidRequest, NotFound
from authority.ledger.entries import Entry
from authority.management.field_errors import Refused
from authority.secrets import new_id, new_secret
from authority.storage.registry import Stale, Taken, Written
from authority.storage.resource_servers import ServerRow
from authority.tokens.jwks import validate_public_jwks

from . import changes as registry_changes
from . import paging, records
from .auth import ADMIN, READERS, Principal, require_role
from .inputs import Body, Name, PublicJwks, require_changes

KIND = "resource_servers"
NOT_FOUND = "No such resource server."
TAKEN = "A resource server with this name or audience already exists."
SECRET_PREFIX = "rss"
RETIRED = "The resource server is retired."

AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt"]
SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post"})


def _check_audience(value: str) -> str:
    """RFC 8707 §2: an absolute URI, without a fragment (and here without a query or
    credentials, which have no place in an identifier that every token carries)."""
    if not value.isascii() or not value.isprintable() or " " in value:
        raise Refused("not a URI")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise Refused("not an http(s) URI")
    if parts.fragment or "#" in value or parts.query or "?" in value:
        raise Refused("has a query or fragment")
    if parts.username is not None or "@" in parts.netloc:
        raise Refused("has credentials")
    try:
        _ = parts.port
    except ValueError:  # its text quotes the port sent
        raise Refused("has a bad port") from None
    return value


Audience = Annotated[
    str, StringConstraints(min_length=1, max_length=2048), AfterValidator(_check_audience)
]


class ServerCreate(Body):
    name: Name
    audience: Audience
    auth_method: AuthMethod = "client_secret_basic"
    jwks: PublicJwks | None = None


class ServerUpdate(Body):
    # PATCH: only the fields sent change; a default here is never applied.
    name: Name = ""
    jwks: PublicJwks = Field(default_factory=dict)


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


def _server(row: ServerRow) -> ResourceServer:
    return ResourceServer(
        id=row.id,
        client_id=row.id,
        name=row.name,
        audience=row.audience,
        auth_method=row.auth_method,
        jwks=row.jwks,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def found(services: Services, server_id: str, not_found: str = NOT_FOUND) -> ServerRow:
    row = await services.resource_server_store.get(server_id)
    if row is None:
        raise NotFound(not_found)
    return row


async def _replace(
    services: Services, row: ServerRow, new: ServerRow, entries: list[Entry]
) -> Written[ServerRow] | Stale:
    written = await services.resource_server_store.replace(row, new, entries=entries)
    if isinstance(written, Taken):
        raise Conflict(TAKEN)
    return written


async def create(services: Services, principal: Principal, body: ServerCreate) -> IssuedSecret:
    require_role(principal, *ADMIN)
    secret: str | None = None
    jwks: dict[str, Any] | None = None
    keys: list[dict[str, str]] | None = None
    if body.auth_method == "private_key_jwt":
        if body.jwks is None:
            raise InvalidRequest("The jwks field is required for private_key_jwt.")
        jwks = validate_public_jwks(body.jwks)
        keys = registry_changes.key_refs(jwks)
    else:
        if body.jwks is not None:
            raise InvalidRequest("The jwks field is only for private_key_jwt.")
        secret = new_secret(SECRET_PREFIX)
    now = services.now()
    server_id = new_id("rs")
    row = ServerRow(
        id=server_id,
        name=body.name,
        audience=body.audience,
        auth_method=body.auth_method,
        secret_hash=services.hasher.hash(secret) if secret is not None else None,
        jwks=jwks,
        status="active",
        created_at=now,
        updated_at=now,
    )
    entry = registry_changes.entry(
        now=now,
        actor=principal.key_id,
        object_type="resource_server",
        object_id=server_id,
        change="created",
        changes={"name": body.name, "audience": body.audience, "auth_method": body.auth_method},
        keys=keys,
    )
    created = await services.resource_server_store.create(row, [entry])
    if isinstance(created, Taken):
        raise Conflict(TAKEN)
    return IssuedSecret(_server(created), secret)


async def get(services: Services, principal: Principal, server_id: str) -> ResourceServer:
    require_role(principal, *READERS)
    return _server(await found(services, server_id))


async def list_servers(
    services: Services, principal: Principal, request: paging.PageRequest
) -> paging.Page[ResourceServer]:
    require_role(principal, *READERS)
    rows = await services.resource_server_store.page(limit=request.limit, after=request.after)
    return paging.page_of(services, KIND, rows, _server)


async def update_server(
    services: Services, principal: Principal, server_id: str, body: ServerUpdate
) -> ResourceServer:
    require_role(principal, *ADMIN)
    changes = require_changes(body)
    keys: list[dict[str, str]] | None = None
    if "jwks" in changes:
        changes["jwks"] = validate_public_jwks(changes["jwks"])
        keys = registry_changes.key_refs(changes["jwks"])

    async def attempt() -> Written[ServerRow] | Stale:
        row = await found(services, server_id)
        if row.status == "retired":
            raise Conflict(RETIRED)
        if "jwks" in changes and row.auth_method != "private_key_jwt":
            raise InvalidRequest("The jwks field is only for private_key_jwt.")
        now = services.now()
        new = replace(row, **changes, updated_at=now)
        changed = registry_changes.differences({"name": new.name}, {"name": row.name})
        new_keys = None if records.same_json(new.jwks, row.jwks) else keys
        entries: list[Entry] = []
        if changed or new_keys is not None:
            entries.append(
                registry_changes.entry(
                    now=now,
                    actor=principal.key_id,
                    object_type="resource_server",
                    object_id=server_id,
                    change="updated",
                    changes=changed,
                    keys=new_keys,
                )
            )
        return await _replace(services, row, new, entries)

    return _server((await records.until_written(attempt)).row)


async def rotate_secret(services: Services, principal: Principal, server_id: str) -> IssuedSecret:
    """A new client secret; the previous one stops working with this transaction."""
    require_role(principal, *ADMIN)
    secret = new_secret(SECRET_PREFIX)

    async def attempt() -> Written[ServerRow] | Stale:
        row = await found(services, server_id)
        if row.status == "retired":
            raise Conflict(RETIRED)
        if row.auth_method not in SECRET_METHODS:
            raise Conflict("The resource server authenticates with private_key_jwt.")
        now = services.now()
        new = replace(row, secret_hash=services.hasher.hash(secret), updated_at=now)
        entry = registry_changes.entry(
            now=now,
            actor=principal.key_id,
            object_type="resource_server",
            object_id=server_id,
            change="secret_rotated",
        )
        return await _replace(services, row, new, [entry])

    return IssuedSecret(_server((await records.until_written(attempt)).row), secret)


async def retire(services: Services, principal: Principal, server_id: str) -> ResourceServer:
    """Retire the server and forget its secret; refused while it hosts an active tool.

    Retiring the tools first is explicit: the admin sees which tools stop working.
    """
    require_role(principal, *ADMIN)

    async def attempt() -> Written[ServerRow] | Stale:
        row = await found(services, server_id)
        if row.status == "retired":
            return Written(row)
        if await services.resource_server_store.hosts_active_tools(server_id):
            raise Conflict("The resource server still hosts active tools.")
        now = services.now()
        new = replace(row, status="retired", secret_hash=None, updated_at=now)
        entry = registry_changes.entry(
            now=now,
            actor=principal.key_id,
            object_type="resource_server",
            object_id=server_id,
            change="retired",
            changes={"status": "retired"},
        )
        return await _replace(services, row, new, [entry])

    return _server((await records.until_written(attempt)).row)
