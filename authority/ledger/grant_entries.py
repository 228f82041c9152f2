"""Ledger records of decisions on exchanges: every grant, and every human approval.

One family because together they answer "why was this agent given (or refused) this
token": a grant names its approval, an approval names the call it decided.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .record import Actor, Code, Hash, Id, Name, Record, Text, Time, Url

#: ``sha-256:`` + 43 base64url characters (``authority.sdk.arguments``), never arguments.
ArgumentsDigest = Annotated[str, Field(pattern=r"^sha-256:[A-Za-z0-9_-]{43}$")]


def _check_decision(
    decision: str, reason: str | None, jti: str | None, token: str | None, exp: int | None
) -> None:
    if decision == "issued":
        if jti is None or token is None or exp is None:
            raise ValueError("an issued grant names its jti, token_hash and expires_at")
        if reason is not None:
            raise ValueError("an issued grant has no reason")
    else:
        if reason is None:
            raise ValueError("a denied or pending grant has a reason code")
        if jti is not None or token is not None:
            raise ValueError("only an issued grant names a token")


# --- grants (RFC 8693 exchanges: every decision) ------------------------------------------
class GrantV1(Record):
    """One decision on one exchange request; issued grants carry the jti and token hash."""

    kind: ClassVar[str] = "grant"
    version: ClassVar[int] = 1

    grant_id: Id
    decision: Literal["issued", "denied", "pending"]
    reason: Code | None = None  # stable deny / approval reason code
    agent_id: Id | None = None
    owner_id: Id | None = None
    delegation_id: Id | None = None
    tool: Name | None = None
    resource: Url | None = None
    action: Name | None = None
    audience: Url | None = None
    intent: Text | None = None
    jti: Hash | None = None
    token_hash: Hash | None = None  # never the token itself
    expires_at: Time | None = None
    cnf_jkt: Hash | None = None
    single_use: bool | None = None
    approval_id: Id | None = None

    @model_validator(mode="after")
    def _decision_fields(self) -> GrantV1:
        _check_decision(self.decision, self.reason, self.jti, self.token_hash, self.expires_at)
        return self


class GrantV2(Record):
    """V1 and the digest of the call's arguments, when the agent bound them to the call."""

    kind: ClassVar[str] = "grant"
    version: ClassVar[int] = 2

    grant_id: Id
    decision: Literal["issued", "denied", "pending"]
    reason: Code | None = None  # stable deny / approval reason code
    agent_id: Id | None = None
    owner_id: Id | None = None
    delegation_id: Id | None = None
    tool: Name | None = None
    resource: Url | None = None
    action: Name | None = None
    audience: Url | None = None
    intent: Text | None = None
    jti: Hash | None = None
    token_hash: Hash | None = None  # never the token itself
    expires_at: Time | None = None
    cnf_jkt: Hash | None = None
    single_use: bool | None = None
    approval_id: Id | None = None
    arguments_digest: ArgumentsDigest | None = None  # never the arguments themselves

    @model_validator(mode="after")
    def _decision_fields(self) -> GrantV2:
        _check_decision(self.decision, self.reason, self.jti, self.token_hash, self.expires_at)
        return self


ClaimName = Annotated[str, Field(min_length=1, max_length=100)]
ClaimValue = Annotated[str, Field(max_length=1024)]


class WorkloadRecord(BaseModel):
    """The verified workload identity: which domain vouched, for whom, with what."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    domain_id: Id
    issuer: Url
    subject: Text
    claims: dict[ClaimName, ClaimValue] = Field(default_factory=dict, max_length=50)


class GrantV3(GrantV2):
    """V2, the stored policy version whose rules decided it, and the workload identity
    the agent authenticated with.

    ``policy_version`` (``policy_versions``) is set once the request reached the rules
    (the built-in checks and Cedar), absent for a request refused before them (who is
    asking, what it holds); 0 is the built-in default (no policies), in force while no
    version is stored. ``workload`` is set when the agent proved itself by a platform
    token (``authority.federation``), whatever the decision.
    """

    version: ClassVar[int] = 3

    policy_version: Annotated[int, Field(ge=0, lt=2**53)] | None = None
    workload: WorkloadRecord | None = None


class ApprovalDecidedV1(Record):
    """A human decision on a call that needed approval (CIBA-style, poll mode)."""

    kind: ClassVar[str] = "approval_decided"
    version: ClassVar[int] = 1

    approval_id: Id
    decision: Literal["approved", "denied"]
    owner_id: Id
    agent_id: Id
    delegation_id: Id
    tool: Name | None = None
    resource: Url | None = None
    action: Name | None = None
    actor: Actor


class ApprovalDecidedV2(Record):
    """V1 and why: the owner's note, or the code of the rule that refused it at issue."""

    kind: ClassVar[str] = "approval_decided"
    version: ClassVar[int] = 2

    approval_id: Id
    decision: Literal["approved", "denied"]
    owner_id: Id
    agent_id: Id
    delegation_id: Id
    tool: Name | None = None
    resource: Url | None = None
    action: Name | None = None
    actor: Actor
    reason: Text | None = None
