"""What an agent's request names, read in one query: the agent and its owner's status,
the delegation, and the tool with its resource server's audience.

Shared by the token exchange (RFC 8693) and the CIBA poll: both load through
``load`` (``agent_auth`` looks it up here, so a test can wrap it), and the spend
(``issuance``) compares what was read (``Registered``) with the rows under its lock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, literal, select

from authority.context import Services
from authority.policy.checks import AgentFacts, DelegationFacts, ToolFacts
from authority.storage.schema import agents, delegations, owners, resource_servers, tools

from .delegations import scope_from_json


@dataclass(frozen=True, slots=True)
class Registered:
    """The registrations a decision read, as stored: the spend finds them unchanged.

    The spend statement compares each with its row under the same lock that holds the
    agent and owner, so a tool retired or made approval-required, a risk tier raised, an
    agent key removed or an autonomy level lowered while the exchange was being decided
    refuses it (``Reason.REGISTRATION_CHANGED``) instead of issuing under the old rules.
    """

    agent_jwks: str
    autonomy_level: int
    tool: str
    actions: str
    read_actions: str
    risk_tier: int
    approval_required: bool
    single_use: bool
    dpop_required: bool
    max_token_lifetime: int | None
    audience: str

    def parameters(self) -> dict[str, Any]:
        return {f"r_{name}": getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class Loaded:
    agent: AgentFacts | None
    agent_jwks: str | None
    delegation: DelegationFacts | None
    delegation_jkt: str | None
    tool: ToolFacts | None
    registered: Registered | None  # None unless both agent and tool were found


# Built once: a statement object reused with bind parameters costs no cache-key work.
_LOAD = select(
    agents.c.id.label("agent_id"),
    agents.c.owner_id.label("agent_owner_id"),
    agents.c.status.label("agent_status"),
    agents.c.autonomy_level,
    agents.c.jwks,
    owners.c.status.label("owner_status"),
    delegations.c.id.label("delegation_id"),
    delegations.c.owner_id.label("delegation_owner_id"),
    delegations.c.agent_id.label("delegation_agent_id"),
    delegations.c.status.label("delegation_status"),
    delegations.c.expires_at.label("delegation_expires_at"),
    delegations.c.scope,
    delegations.c.intent,
    delegations.c.max_calls,
    delegations.c.rate_per_minute,
    delegations.c.calls_used,
    delegations.c.cnf_jkt,
    tools.c.name.label("tool_name"),
    tools.c.status.label("tool_status"),
    tools.c.resource_server_id,
    tools.c.actions,
    tools.c.read_actions,
    tools.c.risk_tier,
    tools.c.approval_required,
    tools.c.single_use,
    tools.c.dpop_required,
    tools.c.max_token_lifetime,
    resource_servers.c.audience,
    resource_servers.c.status.label("server_status"),
).select_from(
    select(literal(1).label("one"))
    .subquery("one")
    .outerjoin(agents, agents.c.id == bindparam("agent_id"))
    .outerjoin(owners, owners.c.id == agents.c.owner_id)
    .outerjoin(delegations, delegations.c.id == bindparam("delegation_id"))
    .outerjoin(tools, tools.c.name == bindparam("tool"))
    .outerjoin(resource_servers, resource_servers.c.id == tools.c.resource_server_id)
)


async def load(
    services: Services, agent_id: str | None, delegation_id: str | None, tool_name: str
) -> Loaded:
    """Agent with owner status, delegation and tool with its audience: one round trip."""
    params = {"agent_id": agent_id or "", "delegation_id": delegation_id or "", "tool": tool_name}
    row = await services.sql.fetchrow(_LOAD, params)
    if row is None:  # the query is built on a one-row subquery: cannot happen
        raise RuntimeError("the exchange's load query returned no row")
    return Loaded(
        agent=_agent_facts(row),
        agent_jwks=row.jwks,
        delegation=_delegation_facts(row),
        delegation_jkt=row.cnf_jkt,
        tool=_tool_facts(row),
        registered=_registered(row),
    )


def _registered(row: Any) -> Registered | None:
    if row.agent_id is None or row.tool_name is None or row.audience is None:
        return None
    return Registered(
        agent_jwks=row.jwks,
        autonomy_level=row.autonomy_level,
        tool=row.tool_name,
        actions=row.actions,
        read_actions=row.read_actions,
        risk_tier=row.risk_tier,
        approval_required=bool(row.approval_required),
        single_use=bool(row.single_use),
        dpop_required=bool(row.dpop_required),
        max_token_lifetime=row.max_token_lifetime,
        audience=row.audience,
    )


def _agent_facts(row: Any) -> AgentFacts | None:
    if row.agent_id is None:
        return None
    return AgentFacts(
        id=row.agent_id,
        owner_id=row.agent_owner_id,
        status=row.agent_status,
        autonomy_level=row.autonomy_level,
        owner_status=row.owner_status or "retired",
    )


def _delegation_facts(row: Any) -> DelegationFacts | None:
    if row.delegation_id is None:
        return None
    return DelegationFacts(
        id=row.delegation_id,
        owner_id=row.delegation_owner_id,
        agent_id=row.delegation_agent_id,
        status=row.delegation_status,
        expires_at=row.delegation_expires_at,
        scope=scope_from_json(row.scope),
        intent=row.intent,
        max_calls=row.max_calls,
        rate_per_minute=row.rate_per_minute,
        calls_used=row.calls_used,
    )


def _tool_facts(row: Any) -> ToolFacts | None:
    if row.tool_name is None:
        return None
    # A tool on a retired resource server is as unusable as a retired tool.
    status = row.tool_status if row.server_status == "active" else "retired"
    return ToolFacts(
        name=row.tool_name,
        status=status,
        audience=row.audience,
        resource_server_id=row.resource_server_id,
        actions=tuple(json.loads(row.actions)),
        read_actions=tuple(json.loads(row.read_actions)),
        risk_tier=row.risk_tier,
        approval_required=bool(row.approval_required),
        single_use=bool(row.single_use),
        dpop_required=bool(row.dpop_required),
        max_token_lifetime=row.max_token_lifetime,
    )
