"""Ledger records of the controls over agents: delegations, revocations, quarantines.

One family because each changes what an agent may still do: the delegations it holds,
the tokens still good, whether it may act at all (quarantine, retirement, kill switch)
and how much it may do without a human (autonomy, containment).
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from .record import Actor, Code, Hash, Id, Level, Name, Record, Text, Time, Url


# --- revocations and status changes ---------------------------------------------------------
class TokenRevokedV1(Record):
    """RFC 7009 revocation (or consumption-triggered revocation) of one token."""

    kind: ClassVar[str] = "token_revoked"
    version: ClassVar[int] = 1

    jti: Hash
    grant_id: Id | None = None
    agent_id: Id | None = None
    owner_id: Id | None = None
    delegation_id: Id | None = None
    tool: Name | None = None
    actor: Actor
    reason: Code | None = None


class ScopeItem(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    tool: Name
    resources: list[Url] = Field(max_length=256)
    actions: list[Name] = Field(max_length=64)


class DelegationCreatedV1(Record):
    kind: ClassVar[str] = "delegation_created"
    version: ClassVar[int] = 1

    delegation_id: Id
    owner_id: Id
    agent_id: Id
    intent: Text
    scope: list[ScopeItem] = Field(max_length=256)
    cnf_jkt: Hash
    expires_at: Time
    max_calls: Annotated[int, Field(ge=0)] | None = None
    rate_per_minute: Annotated[int, Field(ge=0)] | None = None
    actor: Actor


class DelegationRevokedV1(Record):
    """An owner's (or admin's) revocation; it cascades to every token under the delegation."""

    kind: ClassVar[str] = "delegation_revoked"
    version: ClassVar[int] = 1

    delegation_id: Id
    owner_id: Id
    agent_id: Id
    actor: Actor
    reason: Text | None = None


class AgentQuarantinedV1(Record):
    kind: ClassVar[str] = "agent_quarantined"
    version: ClassVar[int] = 1

    agent_id: Id
    owner_id: Id
    actor: Actor
    reason: Text | None = None


class AgentReleasedV1(Record):
    kind: ClassVar[str] = "agent_released"
    version: ClassVar[int] = 1

    agent_id: Id
    owner_id: Id
    actor: Actor
    reason: Text | None = None


class AgentRetiredV1(Record):
    """An agent retired for good: every token and delegation of it stops."""

    kind: ClassVar[str] = "agent_retired"
    version: ClassVar[int] = 1

    agent_id: Id
    owner_id: Id
    actor: Actor


class OwnerRetiredV1(Record):
    """An owner retired for good: its API keys, agents' tokens and delegations stop."""

    kind: ClassVar[str] = "owner_retired"
    version: ClassVar[int] = 1

    owner_id: Id
    actor: Actor


class KillSwitchV1(Record):
    """An owner's stop of all their agents at once."""

    kind: ClassVar[str] = "kill_switch"
    version: ClassVar[int] = 1

    owner_id: Id
    actor: Actor
    reason: Text | None = None
    agent_count: Annotated[int, Field(ge=0)] | None = None


class AutonomyChangedV1(Record):
    kind: ClassVar[str] = "autonomy_changed"
    version: ClassVar[int] = 1

    agent_id: Id
    owner_id: Id
    previous_level: Level
    level: Level
    actor: Actor


class AutonomyChangedV2(Record):
    """V1 and why: an owner's promotion, or the authority's demotion after containment."""

    kind: ClassVar[str] = "autonomy_changed"
    version: ClassVar[int] = 2

    agent_id: Id
    owner_id: Id
    previous_level: Level
    level: Level
    actor: Actor
    reason: Text | None = None


class AgentContainedV1(Record):
    """The figures behind an automatic quarantine (its agent_quarantined entry says it
    happened): how many violations in which window crossed which threshold, the one
    that crossed it, and how many containments the agent has had."""

    kind: ClassVar[str] = "agent_contained"
    version: ClassVar[int] = 1

    agent_id: Id
    owner_id: Id
    actor: Actor
    violations: Annotated[int, Field(ge=0)]
    window: Annotated[int, Field(ge=1)]
    threshold: Annotated[int, Field(ge=1)]
    trigger: Code
    containments: Annotated[int, Field(ge=1)]
    autonomy_level: Level
