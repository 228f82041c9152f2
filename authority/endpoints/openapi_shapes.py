"""The JSON answers that are built as dicts rather than from a dataclass, as models.

The OpenAPI document (``endpoints.openapi``) describes them from these; answers built from
a dataclass (``Agent``, ``Tool``, ``Approval``...) are described from the dataclass
itself. Extra members are allowed (``extra="allow"``): what is listed is what a client
may rely on.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Shape(BaseModel):
    model_config = ConfigDict(extra="allow")


class OAuthError(Shape):
    """RFC 6749 §5.2: every refusal, whatever the endpoint."""

    error: str = Field(description="The RFC error code.")
    error_description: str = Field(
        description="A fixed sentence naming the problem; never the value sent."
    )


class ScopeEntry(Shape):
    tool: str
    resources: list[str]
    actions: list[str]


class Confirmation(Shape):
    jkt: str | None


class DelegationView(Shape):
    id: str
    owner_id: str
    agent_id: str
    intent: str
    scope: list[ScopeEntry]
    cnf: Confirmation
    expires_at: int
    max_calls: int | None
    rate_per_minute: int | None
    calls_used: int
    status: str
    revoked_at: int | None
    revoked_reason: str | None
    created_at: int


class CreatedDelegation(DelegationView):
    credential: str = Field(description="The delegation JWT, the agent's subject_token.")


class TokenResponse(Shape):
    """RFC 8693 §2.2.1."""

    access_token: str
    issued_token_type: str
    token_type: Literal["Bearer", "DPoP"]
    expires_in: int
    authorization_details: list[dict[str, Any]]


class CibaAcknowledgement(Shape):
    """CIBA §7.3: the call awaits the owner's approval; poll with the CIBA grant."""

    auth_req_id: str
    expires_in: int
    interval: int


class Introspection(Shape):
    """RFC 7662 §2.2: ``{"active": false}``, or the token's claims."""

    active: bool


class JwkSet(Shape):
    keys: list[dict[str, Any]]


class LedgerEntry(Shape):
    leaf_index: int
    leaf_hash: str
    entry: dict[str, Any]


class LedgerEntries(Shape):
    items: list[LedgerEntry]
    next_cursor: str | None


class LedgerCheckpoint(Shape):
    tree_size: int
    root_hash: str
    created_at: int
    kid: str
    signed: str = Field(description="The signed tree head, a checkpoint+jwt.")


class LedgerCheckpoints(Shape):
    items: list[LedgerCheckpoint]
    next_cursor: str | None


class InclusionProof(Shape):
    leaf_index: int
    tree_size: int
    leaf_hash: str
    inclusion_path: list[str]
    root_hash: str


class ConsistencyProof(Shape):
    first: int
    second: int
    consistency_path: list[str]
    first_root_hash: str
    second_root_hash: str


class RecordedEntry(Shape):
    leaf_index: int | None
    leaf_hash: str | None
    body: str | None


class RecordingView(Shape):
    call_id: str
    gateway: str
    grant_id: str | None
    jti: str | None
    recorded_at: int
    retained_until: int
    retained: bool
    entry: RecordedEntry
    request_head: str | None
    response_head: str | None
    unreadable: list[str]


class Recordings(Shape):
    items: list[RecordingView]
    next_cursor: str | None


class Submitted(Shape):
    call_id: str
    created: bool


class Metadata(Shape):
    """RFC 8414 §2 (and OpenID Discovery §3 at its own path)."""

    issuer: str
    token_endpoint: str
    jwks_uri: str
    grant_types_supported: list[str]


class Health(Shape):
    status: str


class Readiness(Shape):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str]
