"""Ledger records of the data path: every call a gateway handled, by digest, never by body.

A gateway (a registered resource server in front of tools that embed nothing of ours)
submits one record per call (``authority.recordings``). The entry says what was called,
under which token, with what outcome, and what went through, as SHA-256 digests and
sizes of the whole bodies and of the heads kept sealed next to the entry: so the sealed
heads, while they are kept, are checked against the ledger, and the entry keeps
verifying once they are deleted.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .record import Hash, Id, Name, Record, Time, Url

#: The digest format of a body: "sha-256:" + unpadded base64url of the SHA-256.
DIGEST_PREFIX = "sha-256:"
Digest = Annotated[str, Field(pattern=r"^sha-256:[A-Za-z0-9_-]{43}$")]
Size = Annotated[int, Field(ge=0, lt=2**53)]
Status = Annotated[int, Field(ge=100, le=599)]
#: How many masking rules one entry may name.
MAX_MASKING_RULES = 64


def body_digest(data: bytes) -> str:
    """The digest of ``data`` as entries write it (``DIGEST_PREFIX`` + base64url SHA-256)."""
    raw = hashlib.sha256(data).digest()
    return DIGEST_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class CallBodyV1(BaseModel):
    """One side of a call: the whole body's digest and size, and the stored head's."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    digest: Digest
    size: Size
    head_digest: Digest
    head_size: Size
    truncated: bool

    @model_validator(mode="after")
    def _head_of_the_body(self) -> CallBodyV1:
        # The head is the body's first bytes: the whole body exactly when not truncated.
        if self.truncated:
            if self.head_size >= self.size:
                raise ValueError("a truncated head is shorter than its body")
        elif self.head_size != self.size or self.head_digest != self.digest:
            raise ValueError("a head that is not truncated is its whole body")
        return self


class GatewayCallV1(Record):
    """One call through a gateway, linked to the grant of the token that authorised it."""

    kind: ClassVar[str] = "gateway_call"
    version: ClassVar[int] = 1

    call_id: Id  # names the sealed heads (the auditor's /v1/recordings/{call_id})
    gateway: Id  # the resource server that handled and submitted it
    upstream: Name
    transport: Literal["http", "mcp"]
    method: Name  # the HTTP method, or the JSON-RPC method
    target: Url  # the request path, or the MCP tool name
    outcome: Literal["forwarded", "refused", "blocked", "upstream_error"]
    status: Status  # what the agent received
    started_at_ms: Time  # Unix milliseconds, by the gateway's clock
    duration_us: Size
    jti: Hash | None = None
    grant_id: Id | None = None
    # Taken from the grant, not from the gateway's word, when there is a token.
    agent_id: Id | None = None
    owner_id: Id | None = None
    delegation_id: Id | None = None
    tool: Name | None = None
    resource: Url | None = None
    action: Name | None = None
    request: CallBodyV1 | None = None
    response: CallBodyV1 | None = None
    #: What masking replaced, by rule or detector name: counts, never the values.
    masked: dict[Name, Size] | None = Field(None, max_length=MAX_MASKING_RULES)
    blocked_by: Name | None = None

    @model_validator(mode="after")
    def _outcome_fields(self) -> GatewayCallV1:
        if (self.jti is None) != (self.grant_id is None):
            raise ValueError("a call names both its token's jti and its grant, or neither")
        if self.jti is None:
            if self.outcome != "refused":
                raise ValueError("only a refused call has no token")
            if any(v is not None for v in (self.agent_id, self.owner_id, self.delegation_id)):
                raise ValueError("a call without a token names no agent, owner or delegation")
        if (self.outcome == "blocked") != (self.blocked_by is not None):
            raise ValueError("a blocked call, and only a blocked call, names its rule")
        return self
