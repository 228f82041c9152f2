"""Management API authentication with bearer API keys (RFC 6750) and role checks.

Every ``/v1`` request carries ``Authorization: Bearer <api key>``. Keys are generated
secrets of 256 bits, stored only as their keyed hash, so a key is found by hashing what
was presented; a database dump holds nothing that authenticates.

Roles: ``admin`` may do everything; ``owner`` only what concerns its own owner (another
owner's objects do not exist for it: 404, never 403, so ids do not leak); ``auditor``
reads and lists, never writes.

Other layers import ``authenticate``, ``Principal`` and ``require_role`` from here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from authority.context import Services
from authority.errors import InsufficientScope, InvalidToken

Role = Literal["admin", "owner", "auditor"]

ADMIN: tuple[Role, ...] = ("admin",)
#: Roles that may change what they can see (an owner only its own objects).
WRITERS: tuple[Role, ...] = ("admin", "owner")
#: Every role may read what it can see.
READERS: tuple[Role, ...] = ("admin", "owner", "auditor")
#: Roles that see every owner's objects.
SEE_ALL: tuple[Role, ...] = ("admin", "auditor")

API_KEY_PREFIX = "ak"
REALM = "authority"
MAX_API_KEY_LENGTH = 256

# RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token
_BEARER = re.compile(r"^Bearer +([A-Za-z0-9\-._~+/]+=*)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the API key's id, its role and, for an owner key, the owner."""

    key_id: str
    role: Role
    owner_id: str | None


class _HasHeadersAndApp(Protocol):
    """What ``authenticate`` needs of a request (a Starlette ``Request`` fits)."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def app(self) -> Any: ...


def _invalid_token(description: str | None = None) -> InvalidToken:
    # RFC 6750 §3: "the resource server MUST include the HTTP WWW-Authenticate response
    # header field" with error="invalid_token" when the token is invalid or revoked.
    return InvalidToken(
        description,
        headers={"WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_token"'},
    )


async def authenticate(request: _HasHeadersAndApp) -> Principal:
    """The principal behind the request's bearer API key; ``InvalidToken`` (401) if none."""
    services: Services = request.app.state.services
    header = request.headers.get("authorization")
    if header is None:
        # RFC 6750 §3.1: "If the request lacks any authentication information ... the
        # resource server SHOULD NOT include an error code".
        raise InvalidToken(
            "The request needs an API key (Authorization: Bearer).",
            headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'},
        )
    match = _BEARER.match(header)
    if match is None or len(match.group(1)) > MAX_API_KEY_LENGTH:
        raise _invalid_token("The Authorization header is not a bearer API key.")
    return await principal_for_key(services, match.group(1))


async def principal_for_key(services: Services, api_key: str) -> Principal:
    """Look a presented key up by its keyed hash; revoked keys and retired owners fail."""
    holder = await services.api_key_store.holder(services.hasher.hash(api_key))
    if holder is None:
        raise _invalid_token()
    if holder.role == "owner" and holder.owner_status == "retired":
        raise _invalid_token()
    # The schema's constraint admits no other role.
    return Principal(key_id=holder.key_id, role=cast(Role, holder.role), owner_id=holder.owner_id)


def require_role(principal: Principal, *roles: Role) -> None:
    """Refuse with ``InsufficientScope`` (403) unless the principal has one of ``roles``."""
    if principal.role not in roles:
        raise InsufficientScope(
            headers={"WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope"'}
        )


def sees_all(principal: Principal) -> bool:
    """Whether the principal sees every owner's objects (admin, auditor)."""
    return principal.role in SEE_ALL


def may_see_owner(principal: Principal, owner_id: str) -> bool:
    """Whether objects of ``owner_id`` exist for this principal (else: 404)."""
    return sees_all(principal) or principal.owner_id == owner_id
