"""Stable reason codes: the same string in the grant row, the ledger entry and the log.

Each code maps to the RFC error the client sees. Codes are part of the audit format:
add new ones, never rename or reuse one.
"""

from __future__ import annotations

from enum import StrEnum

from authority.errors import (
    AuthorityError,
    InvalidClient,
    InvalidDPoPProof,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    TooManyRequests,
    UnauthorizedClient,
)


class Reason(StrEnum):
    # the agent's proof of identity (actor_token / client_assertion)
    ATTESTATION_INVALID = "attestation_invalid"
    ATTESTATION_REPLAYED = "attestation_replayed"
    ATTESTATION_KID_REQUIRED = "attestation_kid_required"
    AGENT_UNKNOWN = "agent_unknown"
    # the platform token of an agent registered with identity rules (grants.workload_auth)
    WORKLOAD_INVALID = "workload_invalid"
    WORKLOAD_NOT_MATCHED = "workload_not_matched"
    WORKLOAD_REPLAYED = "workload_replayed"
    WORKLOAD_REQUIRED = "workload_required"
    ATTESTATION_REQUIRED = "attestation_required"
    AGENT_INACTIVE = "agent_inactive"
    OWNER_INACTIVE = "owner_inactive"
    # the delegation (subject_token)
    DELEGATION_INVALID = "delegation_invalid"
    DELEGATION_WRONG_AGENT = "delegation_wrong_agent"
    DELEGATION_KEY_MISMATCH = "delegation_key_mismatch"
    DELEGATION_EXPIRED = "delegation_expired"
    DELEGATION_REVOKED = "delegation_revoked"
    # the one tool call asked for
    TOOL_UNKNOWN = "tool_unknown"
    TOOL_INACTIVE = "tool_inactive"
    TOOL_NOT_DELEGATED = "tool_not_delegated"
    RESOURCE_NOT_DELEGATED = "resource_not_delegated"
    ACTION_NOT_DELEGATED = "action_not_delegated"
    ACTION_UNKNOWN = "action_unknown"
    AUDIENCE_MISMATCH = "audience_mismatch"
    LIFETIME_TOO_LONG = "lifetime_too_long"
    DPOP_REQUIRED = "dpop_required"
    DPOP_INVALID = "dpop_invalid"
    DPOP_REPLAYED = "dpop_replayed"
    # limits
    CALL_CAP_EXHAUSTED = "call_cap_exhausted"
    RATE_LIMITED = "rate_limited"
    # human in the loop and policy-as-code
    APPROVAL_REQUIRED = "approval_required"
    AUTONOMY_TOO_LOW = "autonomy_too_low"
    POLICY_DENIED = "policy_denied"
    APPROVAL_LIMIT = "approval_limit"
    # A call far outside the agent's baseline (authority.baselines): its owner decides.
    BEHAVIOUR_STEP_UP = "behaviour_step_up"
    # The tool's, its resource server's or the agent's registration changed between the
    # decision and the spend (grants.loading.Registered): decided again next time.
    REGISTRATION_CHANGED = "registration_changed"


_DESCRIPTIONS: dict[Reason, str] = {
    Reason.ATTESTATION_INVALID: "The agent attestation is invalid.",
    Reason.ATTESTATION_REPLAYED: "The agent attestation has already been used.",
    Reason.ATTESTATION_KID_REQUIRED: (
        "The agent attestation has no kid and the agent has too many keys for its alg: "
        "name the signing key with kid."
    ),
    Reason.AGENT_UNKNOWN: "The agent attestation is invalid.",
    Reason.WORKLOAD_INVALID: (
        "The actor_token is not a valid token of a trust domain the agent's identity rules name."
    ),
    Reason.WORKLOAD_NOT_MATCHED: "The workload identity matches none of the agent's rules.",
    Reason.WORKLOAD_REPLAYED: "The workload token has already been used.",
    Reason.WORKLOAD_REQUIRED: "The agent must also send its workload token as actor_token.",
    Reason.ATTESTATION_REQUIRED: (
        "The agent must also send an attestation by its key as client_assertion."
    ),
    Reason.AGENT_INACTIVE: "The agent is not active.",
    Reason.OWNER_INACTIVE: "The agent's owner is not active.",
    Reason.DELEGATION_INVALID: "The subject_token is not a valid delegation.",
    Reason.DELEGATION_WRONG_AGENT: "The delegation was not granted to this agent.",
    Reason.DELEGATION_KEY_MISMATCH: "The delegation is bound to another key of the agent.",
    Reason.DELEGATION_EXPIRED: "The delegation has expired.",
    Reason.DELEGATION_REVOKED: "The delegation has been revoked.",
    Reason.TOOL_UNKNOWN: "The requested tool is not registered.",
    Reason.TOOL_INACTIVE: "The requested tool is not active.",
    Reason.TOOL_NOT_DELEGATED: "The delegation does not cover the requested tool.",
    Reason.RESOURCE_NOT_DELEGATED: "The delegation does not cover the requested resource.",
    Reason.ACTION_NOT_DELEGATED: "The delegation does not cover the requested action.",
    Reason.ACTION_UNKNOWN: "The tool does not offer the requested action.",
    Reason.AUDIENCE_MISMATCH: "The resource is not the requested tool's resource server.",
    Reason.LIFETIME_TOO_LONG: "The requested lifetime exceeds the maximum for this tool.",
    Reason.DPOP_REQUIRED: "This tool requires a DPoP-bound token.",
    Reason.DPOP_INVALID: "The DPoP proof is invalid.",
    Reason.DPOP_REPLAYED: "The DPoP proof has already been used.",
    Reason.CALL_CAP_EXHAUSTED: "The delegation's call limit has been reached.",
    Reason.RATE_LIMITED: "The delegation's per-minute call limit has been reached.",
    Reason.APPROVAL_REQUIRED: "This call needs the owner's approval.",
    Reason.AUTONOMY_TOO_LOW: "This call needs the owner's approval.",
    Reason.POLICY_DENIED: "The request is denied by policy.",
    Reason.APPROVAL_LIMIT: "The agent has too many calls waiting for approval.",
    Reason.BEHAVIOUR_STEP_UP: "This call is unusual for this agent and needs the owner's approval.",
    Reason.REGISTRATION_CHANGED: "The tool or agent registration changed; send a new request.",
}

# RFC 8693 §2.2.2: an invalid or unacceptable subject_token or actor_token is
# invalid_request. RFC 6749 §5.2: a requested scope beyond what was granted is
# invalid_scope. RFC 8707 §2: an unacceptable resource is invalid_target.
_ERRORS: dict[Reason, type[AuthorityError]] = {
    Reason.ATTESTATION_INVALID: InvalidRequest,
    Reason.ATTESTATION_REPLAYED: InvalidRequest,
    Reason.ATTESTATION_KID_REQUIRED: InvalidRequest,
    Reason.AGENT_UNKNOWN: InvalidRequest,
    Reason.WORKLOAD_INVALID: InvalidRequest,
    Reason.WORKLOAD_NOT_MATCHED: InvalidRequest,
    Reason.WORKLOAD_REPLAYED: InvalidRequest,
    Reason.WORKLOAD_REQUIRED: InvalidRequest,
    Reason.ATTESTATION_REQUIRED: InvalidRequest,
    Reason.AGENT_INACTIVE: InvalidRequest,
    Reason.OWNER_INACTIVE: InvalidRequest,
    Reason.DELEGATION_INVALID: InvalidRequest,
    Reason.DELEGATION_WRONG_AGENT: InvalidRequest,
    Reason.DELEGATION_KEY_MISMATCH: InvalidRequest,
    Reason.DELEGATION_EXPIRED: InvalidRequest,
    Reason.DELEGATION_REVOKED: InvalidRequest,
    Reason.TOOL_UNKNOWN: InvalidTarget,
    Reason.TOOL_INACTIVE: InvalidTarget,
    Reason.TOOL_NOT_DELEGATED: InvalidScope,
    Reason.RESOURCE_NOT_DELEGATED: InvalidScope,
    Reason.ACTION_NOT_DELEGATED: InvalidScope,
    Reason.ACTION_UNKNOWN: InvalidScope,
    Reason.AUDIENCE_MISMATCH: InvalidTarget,
    Reason.LIFETIME_TOO_LONG: InvalidRequest,
    Reason.DPOP_REQUIRED: InvalidDPoPProof,
    Reason.DPOP_INVALID: InvalidDPoPProof,
    Reason.DPOP_REPLAYED: InvalidDPoPProof,
    Reason.CALL_CAP_EXHAUSTED: InvalidGrant,
    Reason.RATE_LIMITED: TooManyRequests,
    Reason.APPROVAL_REQUIRED: InvalidScope,
    Reason.AUTONOMY_TOO_LOW: InvalidScope,
    Reason.POLICY_DENIED: InvalidScope,
    Reason.APPROVAL_LIMIT: TooManyRequests,
    Reason.BEHAVIOUR_STEP_UP: InvalidScope,
    Reason.REGISTRATION_CHANGED: InvalidRequest,
}

#: When the agent authenticated with client_assertion (RFC 7523 §2.2), a failure to
#: authenticate it is invalid_client (RFC 6749 §5.2), not invalid_request; a 400, since the
#: assertion came in the body, not the Authorization header.
CLIENT_AUTHENTICATION_FAILURES = frozenset(
    {
        Reason.ATTESTATION_INVALID,
        Reason.ATTESTATION_REPLAYED,
        Reason.ATTESTATION_KID_REQUIRED,
        Reason.AGENT_UNKNOWN,
        Reason.WORKLOAD_INVALID,
        Reason.WORKLOAD_NOT_MATCHED,
        Reason.WORKLOAD_REPLAYED,
        Reason.WORKLOAD_REQUIRED,
        Reason.ATTESTATION_REQUIRED,
    }
)


#: An authenticated client that may not use the grant now is unauthorized_client.
CLIENT_NOT_AUTHORIZED = frozenset({Reason.AGENT_INACTIVE, Reason.OWNER_INACTIVE})


def error_for(
    reason: Reason, *, client_assertion: bool = False, now: int | None = None
) -> AuthorityError:
    """The client-facing error for a denial: the RFC code and a fixed description.

    A rate-limited exchange says when its minute's window ends (``now``, seconds), so a
    client that retries asks once the window has turned, not into the same refusal; a
    full approval queue gives no ``Retry-After``: only the owner's decisions empty it.
    """
    description = _DESCRIPTIONS[reason]
    if client_assertion and reason in CLIENT_AUTHENTICATION_FAILURES:
        return InvalidClient(description)
    if client_assertion and reason in CLIENT_NOT_AUTHORIZED:
        return UnauthorizedClient(description)
    if reason is Reason.RATE_LIMITED:
        return TooManyRequests(description, retry_after=60 - (now or 0) % 60)
    if reason is Reason.APPROVAL_LIMIT:
        return TooManyRequests(description, retry_after=None)
    return _ERRORS[reason](description)
