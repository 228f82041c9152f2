"""The built-in checks on every exchange (PRODUCT.md, "Checks on every exchange").

Each rule is one small function from the loaded facts to ``ALLOW`` or a ``Deny``. They
run in order and the first denial decides. Identity (attestation) and the delegation's
signature are verified before these run; replay, call caps and rate limits after them,
against shared state; Cedar policies last.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from authority.policy.patterns import resource_matches
from authority.policy.reasons import Reason


@dataclass(frozen=True, slots=True)
class Allow:
    pass


@dataclass(frozen=True, slots=True)
class Deny:
    reason: Reason


@dataclass(frozen=True, slots=True)
class NeedsApproval:
    """Neither granted nor refused: the owner must approve this one call."""

    reason: Reason


ALLOW: Final = Allow()
Decision = Allow | Deny | NeedsApproval


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The one call an exchange asks for (RFC 9396 ``tool_call`` authorization detail).

    ``arguments_digest`` binds the token to the call's arguments (``policy.arguments``);
    ``arguments`` are the arguments themselves when the agent sent them: for the
    decision (Cedar) and the owner's approval, never for the token or the ledger.
    """

    tool: str
    resource: str
    action: str
    arguments_digest: str | None = None
    arguments: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ScopeEntry:
    """One tool in a delegation, with the resource patterns and actions it covers."""

    tool: str
    resources: tuple[str, ...]
    actions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AgentFacts:
    id: str
    owner_id: str
    status: str
    autonomy_level: int
    owner_status: str


@dataclass(frozen=True, slots=True)
class DelegationFacts:
    id: str
    owner_id: str
    agent_id: str
    status: str
    expires_at: int
    scope: tuple[ScopeEntry, ...]
    intent: str
    max_calls: int | None
    rate_per_minute: int | None
    calls_used: int


@dataclass(frozen=True, slots=True)
class ToolFacts:
    name: str
    status: str
    audience: str
    resource_server_id: str
    actions: tuple[str, ...]
    read_actions: tuple[str, ...]
    risk_tier: int
    approval_required: bool
    single_use: bool
    dpop_required: bool
    max_token_lifetime: int | None


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the checks look at, loaded before any of them runs."""

    now: int
    agent: AgentFacts
    delegation: DelegationFacts
    tool: ToolFacts | None
    call: ToolCall
    audience: str  # the resource indicator (RFC 8707) the agent asked for
    lifetime: int  # the token lifetime that would be issued
    server_max_lifetime: int
    dpop_bound: bool
    # The workload identity the agent proved itself with (``grants.workload_auth``): its
    # claims by their mapped names, with domain_id, issuer and subject; None without.
    workload: Mapping[str, str] | None = None


Check = Callable[[Facts], Decision]


def needs_tool(rule: Callable[[Facts, ToolFacts], Decision]) -> Check:
    """Run ``rule`` with the registered tool; without one the answer is TOOL_UNKNOWN."""

    def check(f: Facts) -> Decision:
        return rule(f, f.tool) if f.tool is not None else Deny(Reason.TOOL_UNKNOWN)

    check.__name__ = rule.__name__
    check.__doc__ = rule.__doc__
    return check


def agent_active(f: Facts) -> Decision:
    return ALLOW if f.agent.status == "active" else Deny(Reason.AGENT_INACTIVE)


def owner_active(f: Facts) -> Decision:
    return ALLOW if f.agent.owner_status == "active" else Deny(Reason.OWNER_INACTIVE)


def delegation_for_agent(f: Facts) -> Decision:
    d = f.delegation
    if d.agent_id != f.agent.id or d.owner_id != f.agent.owner_id:
        return Deny(Reason.DELEGATION_WRONG_AGENT)
    return ALLOW


def delegation_not_revoked(f: Facts) -> Decision:
    return ALLOW if f.delegation.status == "active" else Deny(Reason.DELEGATION_REVOKED)


def delegation_not_expired(f: Facts) -> Decision:
    return ALLOW if f.delegation.expires_at > f.now else Deny(Reason.DELEGATION_EXPIRED)


def tool_registered(f: Facts) -> Decision:
    return ALLOW if f.tool is not None else Deny(Reason.TOOL_UNKNOWN)


@needs_tool
def tool_active(f: Facts, tool: ToolFacts) -> Decision:
    return ALLOW if tool.status == "active" else Deny(Reason.TOOL_INACTIVE)


@needs_tool
def tool_offers_action(f: Facts, tool: ToolFacts) -> Decision:
    return ALLOW if f.call.action in tool.actions else Deny(Reason.ACTION_UNKNOWN)


def _entry(f: Facts) -> ScopeEntry | None:
    for entry in f.delegation.scope:
        if entry.tool == f.call.tool:
            return entry
    return None


def tool_delegated(f: Facts) -> Decision:
    return ALLOW if _entry(f) is not None else Deny(Reason.TOOL_NOT_DELEGATED)


def resource_delegated(f: Facts) -> Decision:
    entry = _entry(f)
    if entry is None:
        return Deny(Reason.TOOL_NOT_DELEGATED)
    if any(resource_matches(p, f.call.resource) for p in entry.resources):
        return ALLOW
    return Deny(Reason.RESOURCE_NOT_DELEGATED)


def action_delegated(f: Facts) -> Decision:
    entry = _entry(f)
    if entry is None:
        return Deny(Reason.TOOL_NOT_DELEGATED)
    return ALLOW if f.call.action in entry.actions else Deny(Reason.ACTION_NOT_DELEGATED)


@needs_tool
def audience_is_tools_server(f: Facts, tool: ToolFacts) -> Decision:
    # RFC 8707 §2: the resource indicator must name where the token will be used; a
    # token for one resource server must never be usable at another.
    return ALLOW if f.audience == tool.audience else Deny(Reason.AUDIENCE_MISMATCH)


@needs_tool
def lifetime_within_max(f: Facts, tool: ToolFacts) -> Decision:
    cap = f.server_max_lifetime
    if tool.max_token_lifetime is not None:
        cap = min(cap, tool.max_token_lifetime)
    return ALLOW if f.lifetime <= cap else Deny(Reason.LIFETIME_TOO_LONG)


@needs_tool
def dpop_if_required(f: Facts, tool: ToolFacts) -> Decision:
    if tool.dpop_required and not f.dpop_bound:
        return Deny(Reason.DPOP_REQUIRED)
    return ALLOW


@needs_tool
def autonomy_covers_risk(f: Facts, tool: ToolFacts) -> Decision:
    """Autonomy 0 reads only; above that, risk tiers up to the level need no approval."""
    if tool.approval_required:
        return NeedsApproval(Reason.APPROVAL_REQUIRED)
    level = f.agent.autonomy_level
    if level == 0 and f.call.action not in tool.read_actions:
        return NeedsApproval(Reason.AUTONOMY_TOO_LOW)
    if tool.risk_tier > level:
        return NeedsApproval(Reason.AUTONOMY_TOO_LOW)
    return ALLOW


CHECKS: Sequence[Check] = (
    agent_active,
    owner_active,
    delegation_for_agent,
    delegation_not_revoked,
    delegation_not_expired,
    tool_registered,
    tool_active,
    tool_offers_action,
    tool_delegated,
    resource_delegated,
    action_delegated,
    audience_is_tools_server,
    lifetime_within_max,
    dpop_if_required,
    autonomy_covers_risk,
)


def evaluate(facts: Facts, checks: Sequence[Check] = CHECKS) -> Decision:
    """The first decision that is not ``ALLOW``, or ``ALLOW``."""
    for check in checks:
        decision = check(facts)
        if decision is not ALLOW:
            return decision
    return ALLOW
