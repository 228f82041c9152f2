"""OAuth 2.0 Token Introspection (RFC 7662) for authenticated resource servers.

A "yes" must be trustworthy, so it is computed from SQL, the source of truth, every
time: one lookup of the introspection store (``storage.introspection``; in SQL one query,
``storage.sql.introspection``) reads the calling resource server's registration and the
token's grant row with its delegation, agent, owner and tool.
Nothing is cached that could answer "active" after a revocation has committed.

``active: true`` only when all of these hold right now; anything else is the one
constant ``{"active": false}`` (RFC 7662 §2.2: "If the introspection call is properly
authorized but the token is not active, does not exist on this server, or the protected
resource is not allowed to introspect this particular token, then the authorization
server MUST return an introspection response with the "active" field set to "false"
... SHOULD NOT include any additional information"):

* the token is the authority's: these exact bytes are those of an issued grant, found
  by their SHA-256 digest (stored when the token was signed and issued; as conclusive
  as the signature, for the cost of a hash), its header names a still published token
  key with our algorithm and ``typ: at+jwt`` (RFC 9068 §4), and ``iss`` is this issuer;
* ``exp`` is in the future;
* the token is for the caller: its ``aud`` and its grant's audience are the calling
  resource server's audience (RFC 7662 §4: the server "MUST ... determine whether the
  protected resource is allowed to introspect the token");
* the grant row exists, was issued, matches the token's hash, and is not revoked;
* its delegation is active and unexpired, its agent active, its owner active;
* its tool is still registered and active, and hosted by the caller, whose registration
  (in the same row) is active or it could not have authenticated: retiring a tool or
  deactivating its resource server stops the tokens already issued for it, not only new
  ones;
* single-use tools: the token has not been consumed; the first active answer consumes
  it (``IntrospectionStore.consume``: in SQL one conditional UPDATE), so exactly one
  introspection across all instances says yes.

An active answer also carries ``delegation_scope``: the entries of the token's delegation
for the tools the caller hosts (none of another server's), which the gateway uses to show
an agent only the tools its delegation covers; and ``single_use``, whether the token's
tool is single use (this answer consumed it), so that an enforcement point that shares
one request among concurrent checks of a token knows how many of them it may let pass.

Cost: one SQL round trip (shared with the other lookups of the same event-loop turn,
``storage.sql.introspection``), plus for ``private_key_jwt`` the assertion's jti and for
single-use tokens the consuming UPDATE. The per-client rate window is counted in process
and reconciled with hot state in the background (``authority.rate_window``). The header and
claims are checked in memory before any I/O. A hot-state or database
failure propagates (``HotStateUnavailable``, ``storage.driver.UNAVAILABLE``) and becomes
503 at the endpoint: never ``active: true``.
"""

from __future__ import annotations

import functools
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from authority.context import Services
from authority.domain_events import InactiveTokenPresented, TokenIntrospected
from authority.errors import InvalidRequest
from authority.secrets import token_hash
from authority.tokens.access_token import AT_TYP
from authority.tokens.inbound import JWTRejected, peek
from authority.tokens.validate import OwnToken, recognise_own

from .client_auth import (
    Presented,
    authenticate_server,
    enforce_rate,
    rate_window,
    require_fresh,
    server_from_row,
)

#: The one inactive answer: byte for byte the same whatever the reason.
INACTIVE: Final[Mapping[str, Any]] = {"active": False}

#: The claims an active answer carries (RFC 7662 §2.2 names; the rest are the token's own).
_ANSWERED_CLAIMS = (
    "iss",
    "sub",
    "aud",
    "client_id",
    "act",
    "delegation_id",
    "intent",
    "authorization_details",
    "exp",
    "iat",
    "jti",
    "cnf",
)


@dataclass(frozen=True, slots=True)
class IntrospectionRequest:
    """What the resource server sent: its credentials and the token, nothing verified."""

    credentials: Presented
    token: str | None
    endpoint_url: str


def _recognised(services: Services, raw: str) -> OwnToken | None:
    """Header and claims, if they can be ours: authentic only once ``_is_ours`` holds."""
    try:
        return recognise_own(services, peek(raw), AT_TYP)
    except JWTRejected:
        return None


def _is_ours(row: Any, digest: str) -> bool:
    """These bytes are those of a token the authority issued (see the module doc)."""
    stored = row.token_hash
    return (
        row.grant_id is not None
        and row.decision == "issued"
        and isinstance(stored, str)
        and hmac.compare_digest(stored, digest)
    )


def _is_active(row: Any, token: OwnToken, digest: str, audience: str | None, now: int) -> bool:
    claims = token.claims
    return (
        _is_ours(row, digest)
        and audience is not None
        # The token is for the caller, by its own signed claim and by its grant.
        and claims.get("aud") == audience
        and row.grant_audience == audience
        and token.exp > now
        and row.grant_expires_at is not None
        and row.grant_expires_at > now
        and row.revoked_at is None
        and not (row.single_use and row.consumed_at is not None)
        # The grant is what the token claims to be.
        and claims.get("delegation_id") == row.delegation_id
        and claims.get("client_id") == row.agent_id
        and claims.get("sub") == row.owner_id
        # The cascade: delegation, agent and owner are all live now.
        and row.delegation_status == "active"
        and row.delegation_expires_at is not None
        and row.delegation_expires_at > now
        and row.agent_status == "active"
        and row.owner_status == "active"
        # The registry: agents "can only ever get tokens for registered, active tools",
        # and a token outlives no retirement of its tool nor of the resource server
        # hosting it, which is the caller (``authenticate_server`` refuses an inactive
        # caller already; checked here too, from the same row, so the rule stands alone).
        and row.tool_status == "active"
        and row.tool_server_id is not None
        and row.tool_server_id == row.rs_id
        and row.rs_status == "active"
    )


def _scope_for_caller(row: Any) -> list[Any]:
    """The delegation's scope entries for the caller's own tools (RFC 7662 §2.2 allows
    service-specific members): a gateway shows an agent the tools its delegation covers
    there, and learns nothing of what the delegation grants on other servers."""
    return list(_own_entries(row.delegation_scope, row.rs_tools))


@functools.lru_cache(maxsize=4096)
def _own_entries(scope_json: str | None, rs_tools: str | None) -> tuple[Any, ...]:
    """Decoded and filtered once per (scope, tools) as stored: both are the row's own
    text, so a changed delegation or tool list is a new key, never a stale answer."""
    try:
        scope = json.loads(scope_json) if scope_json else []
    except ValueError:
        return ()
    own = set(rs_tools.split(",")) if rs_tools else set()
    return tuple(e for e in scope if isinstance(e, dict) and e.get("tool") in own)


def active_answer(token: OwnToken, row: Any = None) -> dict[str, Any]:
    claims = token.claims
    answer: dict[str, Any] = {"active": True}
    for name in _ANSWERED_CLAIMS:
        if name in claims:
            answer[name] = claims[name]
    if row is not None:
        answer["delegation_scope"] = _scope_for_caller(row)
        # Whether another introspection may find the token active too: an enforcement
        # point that shares one answer among concurrent checks of one token lets one of
        # them through when it is true (``authority.sdk.introspector``).
        answer["single_use"] = bool(row.single_use)
    # RFC 7662 §2.2 token_type; RFC 9449 §6.2: "DPoP" for a token bound with cnf.jkt.
    cnf = claims.get("cnf")
    answer["token_type"] = "DPoP" if isinstance(cnf, Mapping) and "jkt" in cnf else "Bearer"
    return answer


def _inactive(client_id: str, row: Any, ours: bool) -> TokenIntrospected:
    """An inactive answer's event: the grant named only for a token the authority issued."""
    return TokenIntrospected(
        client_id,
        active=False,
        grant_id=row.grant_id if ours else None,
        agent_id=row.agent_id if ours else None,
    )


async def introspect(services: Services, request: IntrospectionRequest) -> Mapping[str, Any]:
    """The RFC 7662 answer for an authenticated resource server."""
    now = services.now()
    token = _recognised(services, request.token) if request.token is not None else None
    digest = token_hash(request.token) if token is not None and request.token is not None else ""
    row = await services.introspection_store.lookup(request.credentials.client_id, digest)
    client = authenticate_server(
        services,
        request.credentials,
        server_from_row(row),
        endpoint_url=request.endpoint_url,
        now=now,
    )
    await require_fresh(services, client)
    limit = services.settings.introspection_rate_per_minute
    if services.introspection_rate is not None:
        count = await services.introspection_rate.count("introspect", client.id, now)
    else:
        window = rate_window("introspect", client.id, now)
        count = (await services.hot.apply([], [window])).counts[0]
    enforce_rate(count, limit, now)
    if request.token is None:
        # RFC 7662 §2.1: token is REQUIRED (checked once the caller is known).
        raise InvalidRequest("The token parameter is missing.")
    if token is None or not _is_active(row, token, digest, client.audience, now):
        ours = token is not None and _is_ours(row, digest)
        await services.events.publish(_inactive(client.id, row, ours))
        if token is not None and ours:
            # The agent's own token presented at a server it was not issued for counts
            # towards its automatic containment; nothing a resource server can do with
            # its own tokens (revoke, ask again) does. The answer stays the one constant.
            await services.events.publish(
                InactiveTokenPresented(row, token.claims, token.exp, digest, client.audience, now)
            )
        return INACTIVE
    # The first active introspection of a single-use token wins; every other loses.
    if row.single_use and not await services.introspection_store.consume(token.jti, now):
        await services.events.publish(_inactive(client.id, row, ours=True))
        return INACTIVE
    await services.events.publish(
        TokenIntrospected(client.id, active=True, grant_id=row.grant_id, agent_id=row.agent_id)
    )
    return active_answer(token, row)
