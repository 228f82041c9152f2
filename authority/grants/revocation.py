"""OAuth 2.0 Token Revocation (RFC 7009) of access tokens, by the agent the token was issued
to or by the resource server it is for.

RFC 7009 §2.1: "The authorization server first validates the client credentials ... and
then verifies whether the token was issued to the client making the revocation request.
If this validation fails, the request is refused". Two clients qualify for a token here:
the agent (its ``client_id``) and the resource server (its ``aud``). Anyone else is
refused with ``invalid_grant`` (RFC 6749 §5.2: the grant "was issued to another client")
and the token stays active.

"Invalid tokens do not cause an error response" (§2.2): a token that is malformed, not
signed by us, unknown, or already expired gets 200 and changes nothing. Only access
tokens are revocable here; a delegation credential (also signed by us) is answered
``unsupported_token_type`` (§2.2.1): delegations are revoked by their owner.

``token_type_hint`` is ignored, as §2.1 allows ("An authorization server MAY ignore this
parameter, particularly if it is able to detect the token type automatically"): the
token's own ``typ`` says what it is, so an unknown hint value is not an error either.

Revoking writes ``grants.revoked_at``, a ``token_revoked`` ledger entry and a revocation
event in one transaction (the revocation store, ``storage.revocation``); introspection
reads ``revoked_at`` on every call, so the token is inactive on every instance from the
commit on. Then the feed is notified.

A revocation is never held against the agent: introspecting a revoked token afterwards
does not count towards its automatic containment, whoever revoked it (see
``authority.containment``), so a resource server revoking every token it is sent cannot
get the agent quarantined.
"""

from __future__ import annotations

from dataclasses import dataclass

from authority import domain_events
from authority.context import Services
from authority.errors import InvalidGrant, InvalidRequest, UnsupportedTokenType
from authority.storage.events import RevocationEvent
from authority.storage.revocation import RevocationFacts
from authority.tokens.access_token import AT_TYP
from authority.tokens.inbound import JWTRejected, UnverifiedJWT, peek
from authority.tokens.validate import OwnToken, verify_own

from .client_auth import (
    AuthenticatedClient,
    Presented,
    authenticate_agent,
    authenticate_server,
    check_client,
    server_from_row,
)
from .delegations import DELEGATION_TYP

#: Agents that may still authenticate here: a quarantined agent may give up its tokens.
_AGENT_CAN_REVOKE = frozenset({"active", "quarantined"})


@dataclass(frozen=True, slots=True)
class RevocationRequest:
    credentials: Presented
    token: str | None
    endpoint_url: str


@dataclass(frozen=True, slots=True)
class Revoked:
    """What the request changed: the event written, or None when nothing changed."""

    event: RevocationEvent | None


def _classify(services: Services, raw: str) -> tuple[OwnToken | None, bool]:
    """(the access token if it is one of ours, whether it is one of our delegations)."""
    try:
        unverified: UnverifiedJWT = peek(raw)
    except JWTRejected:
        return None, False
    try:
        return verify_own(services, unverified, AT_TYP), False
    except JWTRejected:
        pass
    try:
        verify_own(services, unverified, DELEGATION_TYP)
    except JWTRejected:
        return None, False
    return None, True


def _authenticate(
    services: Services, request: RevocationRequest, row: RevocationFacts, now: int
) -> AuthenticatedClient:
    server = server_from_row(row)
    if server is not None or row.agent_client_id is None:
        return authenticate_server(
            services, request.credentials, server, endpoint_url=request.endpoint_url, now=now
        )
    usable = row.agent_client_status in _AGENT_CAN_REVOKE
    return authenticate_agent(
        services,
        request.credentials,
        row.agent_client_id if usable else None,
        row.agent_client_jwks if usable else None,
        endpoint_url=request.endpoint_url,
        now=now,
    )


def _issued_to(client: AuthenticatedClient, token: OwnToken, row: RevocationFacts) -> bool:
    if client.kind == "agent":
        return row.agent_id == client.id and token.claims.get("client_id") == client.id
    return (
        client.audience is not None
        and row.grant_audience == client.audience
        and token.claims.get("aud") == client.audience
    )


async def revoke(services: Services, request: RevocationRequest) -> Revoked:
    now = services.now()
    token, is_delegation = (
        _classify(services, request.token) if request.token is not None else (None, False)
    )
    row = await services.revocation_store.lookup(
        request.credentials.client_id, token.jti if token is not None else ""
    )
    client = _authenticate(services, request, row, now)
    await check_client(
        services, client, "revoke", services.settings.revocation_rate_per_minute, now
    )
    if request.token is None:
        raise InvalidRequest("The token parameter is missing.")
    if is_delegation:
        raise UnsupportedTokenType("Delegations are revoked by their owner, not at this endpoint.")
    if token is None or row.grant_id is None or row.decision != "issued" or token.exp <= now:
        return Revoked(None)  # §2.2: an invalid (unknown, expired) token is not an error
    if not _issued_to(client, token, row):
        # §2.1: the request is refused; nothing changes.
        raise InvalidGrant("The token was not issued to this client.")
    if row.revoked_at is not None:
        return Revoked(None)  # already revoked: nothing more to do
    event = await _revoke(services, client, token, now)
    if event is not None:
        await services.events.publish(domain_events.Revoked((event,)))
    return Revoked(event)


async def _revoke(
    services: Services, client: AuthenticatedClient, token: OwnToken, now: int
) -> RevocationEvent | None:
    expires_at = token.exp + services.settings.clock_skew
    revoked = await services.revocation_store.revoke(
        token.jti,
        now=now,
        actor=client.id,
        reason="revoked_by_agent" if client.kind == "agent" else "revoked_by_resource_server",
        event_expires_at=expires_at,
    )
    if revoked is None:
        return None  # a concurrent revocation of the same token won
    return RevocationEvent(
        id=revoked.event_id,
        kind="token",
        time=now,
        expires_at=expires_at,
        jti=token.jti,
        delegation_id=revoked.delegation_id,
        agent_id=revoked.agent_id,
        owner_id=revoked.owner_id,
    )
