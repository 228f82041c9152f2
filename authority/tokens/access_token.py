"""The JWT access token profile (RFC 9068) for one authorised tool call.

Header ``typ: at+jwt`` (RFC 9068 §2.1). Claims: the required iss, exp, aud, sub,
client_id, iat and jti (§2.2); the owner as ``sub``, the agent as ``client_id`` and as the
actor ``act.sub`` (RFC 8693 §4.1); the delegation and its intent; the one call in
``authorization_details`` (RFC 9396 §9.1), with the digest of its arguments when they
are bound; ``cnf.jkt`` when bound with DPoP (RFC 9449 §6.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from authority import protocol
from authority.policy.checks import ToolCall

AT_TYP = protocol.ACCESS_TOKEN_TYP
TOOL_CALL_TYPE = protocol.AUTHORIZATION_DETAILS_TYPE
ACCESS_TOKEN_TYPE = protocol.ACCESS_TOKEN_TYPE


def authorization_detail(call: ToolCall, audience: str) -> dict[str, Any]:
    """The RFC 9396 object for one call; ``locations`` is the resource server (§2.2).

    A call whose arguments are bound carries their ``arguments_digest``, never the
    arguments: the token says which call it is for without repeating what it sends.
    """
    detail: dict[str, Any] = {
        "type": TOOL_CALL_TYPE,
        "tool": call.tool,
        "resource": call.resource,
        "action": call.action,
        "locations": [audience],
    }
    if call.arguments_digest is not None:
        detail[protocol.DETAIL_ARGUMENTS_DIGEST] = call.arguments_digest
    return detail


def access_token_claims(
    *,
    issuer: str,
    owner_id: str,
    agent_id: str,
    audience: str,
    delegation_id: str,
    intent: str,
    call: ToolCall,
    issued_at: int,
    expires_at: int,
    jti: str,
    jkt: str | None,
    workload: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": owner_id,
        "aud": audience,
        "client_id": agent_id,
        protocol.CLAIM_ACTOR: {"sub": agent_id},
        "iat": issued_at,
        "exp": expires_at,
        "jti": jti,
        protocol.CLAIM_DELEGATION_ID: delegation_id,
        protocol.CLAIM_INTENT: intent,
        protocol.CLAIM_AUTHORIZATION_DETAILS: [authorization_detail(call, audience)],
    }
    if jkt is not None:
        claims[protocol.CLAIM_CONFIRMATION] = {"jkt": jkt}
    if workload is not None:
        # RFC 8693 §4.1: act's members identify the current actor, which is the agent;
        # ``workload`` says which platform workload it was (not a prior actor, so not a
        # nested act).
        claims[protocol.CLAIM_ACTOR] = {"sub": agent_id, "workload": dict(workload)}
    return claims
