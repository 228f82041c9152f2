"""The introspection port (``storage.introspection``) in SQL, on the hot path's driver.

One query joins the calling resource server's registration and the token's grant row
with its delegation, agent, owner and tool (``grants -> delegations, agents, owners,
tools``): one round trip, one row, whatever exists. Consuming a single-use token is one
conditional UPDATE, so exactly one introspection across all instances wins it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, bindparam, literal, select, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from authority.storage.driver import Driver
from authority.storage.introspection import IntrospectionFacts
from authority.storage.schema import agents, delegations, grants, owners, resource_servers, tools

from .columns import SERVER_COLUMNS

_ONE = select(literal(1).label("one")).subquery("one")


class _names(FunctionElement[str]):
    """Tool names joined by commas (which a tool name never holds), in each dialect's
    words; the separator is inline, for the driver's positional statements."""

    type = String()
    inherit_cache = True


@compiles(_names, "sqlite")
def _names_sqlite(element: _names, compiler: SQLCompiler, **kw: Any) -> str:
    return f"group_concat({compiler.process(element.clauses, **kw)}, ',')"


@compiles(_names, "postgresql")
def _names_postgresql(element: _names, compiler: SQLCompiler, **kw: Any) -> str:
    return f"string_agg({compiler.process(element.clauses, **kw)}, ',')"


_OWN_TOOLS = tools.alias("own_tools")
#: The caller's active tools, a scalar subquery of the same statement: still one round trip.
_SERVER_TOOLS = (
    select(_names(_OWN_TOOLS.c.name))
    .where(_OWN_TOOLS.c.resource_server_id == bindparam("client_id"))
    .where(_OWN_TOOLS.c.status == literal("active"))
    .scalar_subquery()
)
#: Built once: the caller's registration and the token's grant with everything it hangs on.
#: The tool joins on its unique name: still one round trip, one row.
_QUERY = select(
    *SERVER_COLUMNS,
    grants.c.id.label("grant_id"),
    grants.c.decision,
    grants.c.token_hash,
    grants.c.audience.label("grant_audience"),
    grants.c.expires_at.label("grant_expires_at"),
    grants.c.revoked_at,
    grants.c.single_use,
    grants.c.consumed_at,
    grants.c.delegation_id,
    grants.c.agent_id,
    grants.c.owner_id,
    delegations.c.status.label("delegation_status"),
    delegations.c.expires_at.label("delegation_expires_at"),
    agents.c.status.label("agent_status"),
    owners.c.status.label("owner_status"),
    tools.c.status.label("tool_status"),
    tools.c.resource_server_id.label("tool_server_id"),
    delegations.c.scope.label("delegation_scope"),
    _SERVER_TOOLS.label("rs_tools"),
).select_from(
    _ONE.outerjoin(resource_servers, resource_servers.c.id == bindparam("client_id"))
    .outerjoin(grants, grants.c.token_hash == bindparam("token_hash"))
    .outerjoin(delegations, delegations.c.id == grants.c.delegation_id)
    .outerjoin(agents, agents.c.id == grants.c.agent_id)
    .outerjoin(owners, owners.c.id == grants.c.owner_id)
    .outerjoin(tools, tools.c.name == grants.c.tool)
)

_CONSUME = (
    update(grants)
    .where(
        grants.c.jti == bindparam("jti"),
        grants.c.consumed_at.is_(None),
        grants.c.revoked_at.is_(None),
    )
    .values(consumed_at=bindparam("now"))
    .returning(grants.c.id)
)


class SqlIntrospectionStore:
    def __init__(self, sql: Driver) -> None:
        self._sql = sql

    async def lookup(self, client_id: str, token_hash: str) -> IntrospectionFacts:
        row = await self._sql.fetchrow(_QUERY, {"client_id": client_id, "token_hash": token_hash})
        if row is None:  # the query is built on a one-row subquery: cannot happen
            raise RuntimeError("the introspection query returned no row")
        return IntrospectionFacts(**row)

    async def consume(self, jti: str, now: int) -> bool:
        """The first active introspection of a single-use token wins; every other loses."""
        return await self._sql.commit_one(_CONSUME, {"jti": jti, "now": now}) is not None
