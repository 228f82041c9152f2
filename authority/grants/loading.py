"""What an agent's request names, read in one query: the agent and its owner's status,
the delegation, and the tool with its resource server's audience (``storage.exchange``).

Shared by the token exchange (RFC 8693) and the CIBA poll: both load through
``load`` (``agent_auth`` looks it up here, so a test can wrap it), and the spend
(``issuance``) compares what was read (``Registered``) with the rows under its lock.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from authority.context import Services
from authority.policy.checks import AgentFacts, DelegationFacts, ScopeEntry, ToolFacts
from authority.storage.exchange import Registered, StoredAgent, StoredDelegation, StoredTool

from .delegations import scope_from_json

__all__ = ["Loaded", "Registered", "load"]


@dataclass(frozen=True, slots=True)
class Loaded:
    agent: AgentFacts | None
    agent_jwks: str | None
    delegation: DelegationFacts | None
    delegation_jkt: str | None
    tool: ToolFacts | None
    registered: Registered | None  # None unless both agent and tool were found
    agent_workload: str | None = None  # the agent's identity rules, JSON (workload_auth)


async def load(
    services: Services, agent_id: str | None, delegation_id: str | None, tool_name: str
) -> Loaded:
    """Agent with owner status, delegation and tool with its audience: one round trip."""
    facts = await services.exchange_store.load(agent_id or "", delegation_id or "", tool_name)
    agent, delegation, tool = facts.agent, facts.delegation, facts.tool
    return Loaded(
        agent=_agent_facts(agent) if agent is not None else None,
        agent_jwks=agent.jwks if agent is not None else None,
        delegation=_delegation_facts(delegation) if delegation is not None else None,
        delegation_jkt=delegation.cnf_jkt if delegation is not None else None,
        tool=_tool_facts(tool) if tool is not None else None,
        registered=_registered(agent, tool),
        agent_workload=agent.workload if agent is not None else None,
    )


def _registered(agent: StoredAgent | None, tool: StoredTool | None) -> Registered | None:
    if agent is None or tool is None or tool.audience is None:
        return None
    return Registered(
        agent_jwks=agent.jwks,
        autonomy_level=agent.autonomy_level,
        tool=tool.name,
        actions=tool.actions,
        read_actions=tool.read_actions,
        risk_tier=tool.risk_tier,
        approval_required=tool.approval_required,
        single_use=tool.single_use,
        dpop_required=tool.dpop_required,
        max_token_lifetime=tool.max_token_lifetime,
        audience=tool.audience,
    )


def _agent_facts(agent: StoredAgent) -> AgentFacts:
    return AgentFacts(
        id=agent.id,
        owner_id=agent.owner_id,
        status=agent.status,
        autonomy_level=agent.autonomy_level,
        owner_status=agent.owner_status or "retired",
    )


def _delegation_facts(delegation: StoredDelegation) -> DelegationFacts:
    return DelegationFacts(
        id=delegation.id,
        owner_id=delegation.owner_id,
        agent_id=delegation.agent_id,
        status=delegation.status,
        expires_at=delegation.expires_at,
        scope=_scope(delegation.scope),
        intent=delegation.intent,
        max_calls=delegation.max_calls,
        rate_per_minute=delegation.rate_per_minute,
        calls_used=delegation.calls_used,
    )


@functools.lru_cache(maxsize=4096)
def _scope(text: str) -> tuple[ScopeEntry, ...]:
    """A delegation's scope, decoded once per stored text (it never changes in place)."""
    return scope_from_json(text)


# Keyed by the whole row as read, so a changed tool or server is a miss, never stale.
@functools.lru_cache(maxsize=1024)
def _tool_facts(tool: StoredTool) -> ToolFacts:
    # A tool on a retired resource server is as unusable as a retired tool (and one
    # without a server, which its foreign key rules out, as one on a retired server).
    status = tool.status if tool.server_status == "active" else "retired"
    return ToolFacts(
        name=tool.name,
        status=status,
        audience=tool.audience or "",
        resource_server_id=tool.resource_server_id,
        actions=tuple(json.loads(tool.actions)),
        read_actions=tuple(json.loads(tool.read_actions)),
        risk_tier=tool.risk_tier,
        approval_required=tool.approval_required,
        single_use=tool.single_use,
        dpop_required=tool.dpop_required,
        max_token_lifetime=tool.max_token_lifetime,
    )
