"""The exchange port's read (``storage.exchange.ExchangeStore.load``) in SQL, coalesced.

One query loads what a request names (``agents -> owners``, ``delegations``, ``tools ->
resource_servers``, all outer-joined to what is asked for: one round trip, one
consistent snapshot). On PostgreSQL, the loads that concurrent requests of one worker
ask for in the same turn of the event loop are read by one query (``Loads``): the asked
triples are ``unnest``-ed arrays, each row tagged with its ordinal, so N requests cost
one round trip instead of N, and each still reads one snapshot. A lone load is the
one-row query, as without coalescing. On SQLite a read is a call into a local file
(tens of microseconds, no round trip), so each runs alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Text, bindparam, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY

from authority.storage.driver import Driver
from authority.storage.exchange import ExchangeFacts, StoredAgent, StoredDelegation, StoredTool
from authority.storage.schema import agents, delegations, owners, resource_servers, tools

from .coalesce import Coalesced

_COLUMNS = (
    agents.c.id.label("agent_id"),
    agents.c.owner_id.label("agent_owner_id"),
    agents.c.status.label("agent_status"),
    agents.c.autonomy_level,
    agents.c.jwks,
    agents.c.workload,
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
)


def _joined(asked: Any, agent_id: Any, delegation_id: Any, tool: Any) -> Any:
    return (
        asked.outerjoin(agents, agents.c.id == agent_id)
        .outerjoin(owners, owners.c.id == agents.c.owner_id)
        .outerjoin(delegations, delegations.c.id == delegation_id)
        .outerjoin(tools, tools.c.name == tool)
        .outerjoin(resource_servers, resource_servers.c.id == tools.c.resource_server_id)
    )


# Built once: a statement object reused with bind parameters costs no cache-key work.
LOAD = select(*_COLUMNS).select_from(
    _joined(
        select(literal(1).label("one")).subquery("one"),
        bindparam("agent_id"),
        bindparam("delegation_id"),
        bindparam("tool"),
    )
)

_ASKED = (
    func.unnest(
        bindparam("agent_ids", type_=ARRAY(Text)),
        bindparam("delegation_ids", type_=ARRAY(Text)),
        bindparam("tools", type_=ARRAY(Text)),
    )
    .table_valued("w_agent", "w_delegation", "w_tool", with_ordinality="w_i")
    .render_derived(name="asked")
)
#: PostgreSQL: many loads in one query, a row per asked triple, tagged ``w_i`` (from 1).
PG_LOAD_MANY = select(_ASKED.c.w_i, *_COLUMNS).select_from(
    _joined(_ASKED, _ASKED.c.w_agent, _ASKED.c.w_delegation, _ASKED.c.w_tool)
)

Asked = tuple[str, str, str]


async def load_one(sql: Driver, asked: Asked) -> ExchangeFacts:
    agent_id, delegation_id, tool = asked
    params = {"agent_id": agent_id, "delegation_id": delegation_id, "tool": tool}
    row = await sql.fetchrow(LOAD, params)
    if row is None:  # the query is built on a one-row subquery: cannot happen
        raise RuntimeError("the exchange's load query returned no row")
    return facts(row)


#: Most loads one query answers; more in one turn are split into several queries.
MAX_BATCH = 128


class Loads:
    """PostgreSQL: the loads asked for in one turn of the event loop, in one query
    (``coalesce``: a cancelled waiter is left out; an error fails every waiter of that
    query, each then answering 503, as a lone read would)."""

    def __init__(self, sql: Driver) -> None:
        self._sql = sql
        self._coalesced: Coalesced[Asked, ExchangeFacts] = Coalesced(
            self._one, self._many, max_batch=MAX_BATCH
        )

    async def load(self, asked: Asked) -> ExchangeFacts:
        return await self._coalesced.ask(asked)

    async def _one(self, asked: Asked) -> ExchangeFacts:
        return await load_one(self._sql, asked)

    async def _many(self, asked: Sequence[Asked]) -> list[ExchangeFacts]:
        params = {
            "agent_ids": [a for a, _, _ in asked],
            "delegation_ids": [d for _, d, _ in asked],
            "tools": [t for _, _, t in asked],
        }
        found: list[ExchangeFacts | None] = [None] * len(asked)
        for row in await self._sql.fetch(PG_LOAD_MANY, params):
            found[row["w_i"] - 1] = facts(row)
        if any(f is None for f in found):  # one row per asked triple: cannot happen
            raise RuntimeError("the exchange's load query missed a row")
        return [f for f in found if f is not None]


def facts(row: Mapping[str, Any]) -> ExchangeFacts:
    agent = delegation = tool = None
    if row["agent_id"] is not None:
        agent = StoredAgent(
            id=row["agent_id"],
            owner_id=row["agent_owner_id"],
            status=row["agent_status"],
            autonomy_level=row["autonomy_level"],
            jwks=row["jwks"],
            owner_status=row["owner_status"],
            workload=row["workload"],
        )
    if row["delegation_id"] is not None:
        delegation = StoredDelegation(
            id=row["delegation_id"],
            owner_id=row["delegation_owner_id"],
            agent_id=row["delegation_agent_id"],
            status=row["delegation_status"],
            expires_at=row["delegation_expires_at"],
            scope=row["scope"],
            intent=row["intent"],
            max_calls=row["max_calls"],
            rate_per_minute=row["rate_per_minute"],
            calls_used=row["calls_used"],
            cnf_jkt=row["cnf_jkt"],
        )
    if row["tool_name"] is not None:
        tool = StoredTool(
            name=row["tool_name"],
            status=row["tool_status"],
            resource_server_id=row["resource_server_id"],
            actions=row["actions"],
            read_actions=row["read_actions"],
            risk_tier=row["risk_tier"],
            # SQLite's driver gives 0 or 1.
            approval_required=bool(row["approval_required"]),
            single_use=bool(row["single_use"]),
            dpop_required=bool(row["dpop_required"]),
            max_token_lifetime=row["max_token_lifetime"],
            audience=row["audience"],
            server_status=row["server_status"],
        )
    return ExchangeFacts(agent, delegation, tool)
