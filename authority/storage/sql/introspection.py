"""The introspection port (``storage.introspection``) in SQL, on the hot path's driver.

One query joins the calling resource server's registration and the token's grant row
with its delegation, agent, owner and tool (``grants -> delegations, agents, owners,
tools``): one round trip, one row, whatever exists. On PostgreSQL the lookups of one
event-loop turn are one query (``SqlIntrospectionStore``): one row per question.
Consuming a single-use token is one conditional UPDATE, so exactly one introspection
across all instances wins it.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    String,
    bindparam,
    cast,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from authority.storage.driver import Driver
from authority.storage.introspection import IntrospectionFacts
from authority.storage.schema import agents, delegations, grants, owners, resource_servers, tools

from .coalesce import Coalesced
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


def _lookup(
    asked: FromClause, client_id: ColumnElement[Any], token_hash: ColumnElement[Any]
) -> Select[Any]:
    """The caller's registration and the token's grant with everything it hangs on, for
    each row of ``asked``. The tool joins on its unique name; the caller's active tools
    are a scalar subquery of the same statement: still one round trip, one row each."""
    own_tools = tools.alias("own_tools")
    server_tools = (
        select(_names(own_tools.c.name))
        .where(own_tools.c.resource_server_id == client_id)
        .where(own_tools.c.status == literal("active"))
        .correlate_except(own_tools)
        .scalar_subquery()
    )
    return select(
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
        server_tools.label("rs_tools"),
    ).select_from(
        asked.outerjoin(resource_servers, resource_servers.c.id == client_id)
        .outerjoin(grants, grants.c.token_hash == token_hash)
        .outerjoin(delegations, delegations.c.id == grants.c.delegation_id)
        .outerjoin(agents, agents.c.id == grants.c.agent_id)
        .outerjoin(owners, owners.c.id == grants.c.owner_id)
        .outerjoin(tools, tools.c.name == grants.c.tool)
    )


#: Built once: one lookup, on a one-row subquery.
_QUERY = _lookup(_ONE, bindparam("client_id"), bindparam("token_hash"))

#: Built once (PostgreSQL): many lookups, one row per pair of the two arrays, in order.
_ASKED = (
    func.unnest(
        cast(bindparam("client_ids"), ARRAY(String)), cast(bindparam("token_hashes"), ARRAY(String))
    )
    .table_valued("client_id", "token_hash", with_ordinality="asked_at")
    .render_derived(name="asked")
)
_BATCH = _lookup(_ASKED, _ASKED.c.client_id, _ASKED.c.token_hash).add_columns(_ASKED.c.asked_at)

#: Most lookups one query answers; more in one turn are split into several queries.
MAX_BATCH = 128

_FIELDS = tuple(f.name for f in dataclasses.fields(IntrospectionFacts))
_VALUES = operator.itemgetter(*_FIELDS)
#: Each field's slot (a member descriptor): what the frozen dataclass's own ``__init__``
#: stores into through ``object.__setattr__``, one call per field.
_SLOTS = tuple(getattr(IntrospectionFacts, name).__set__ for name in _FIELDS)


def facts_of(row: Mapping[str, Any]) -> IntrospectionFacts:
    """The facts of a row holding every field by name (other columns are ignored): the
    same frozen object as ``IntrospectionFacts(**{name: row[name] ...})``, stored slot by
    slot as that ``__init__`` does, without its keyword matching and its 26 calls of
    ``object.__setattr__`` (about as much CPU as the rest of the row's decoding)."""
    facts = object.__new__(IntrospectionFacts)
    for store, value in zip(_SLOTS, _VALUES(row), strict=True):
        store(facts, value)
    return facts


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
    """On PostgreSQL, the lookups asked in one event-loop turn are answered by one query
    (``coalesce``). On SQLite the driver answers inline without ever suspending, so
    lookups cannot overlap there and each runs its own statement."""

    def __init__(self, sql: Driver) -> None:
        self._sql = sql
        self._coalesced: Coalesced[tuple[str, str], IntrospectionFacts] | None = (
            Coalesced(self._asked_one, self._many, max_batch=MAX_BATCH)
            if sql.dialect == "postgresql"
            else None
        )

    async def lookup(self, client_id: str, token_hash: str) -> IntrospectionFacts:
        if self._coalesced is None:
            return await self._one(client_id, token_hash)
        return await self._coalesced.ask((client_id, token_hash))

    async def _asked_one(self, asked: tuple[str, str]) -> IntrospectionFacts:
        return await self._one(*asked)

    async def _one(self, client_id: str, token_hash: str) -> IntrospectionFacts:
        row = await self._sql.fetchrow(_QUERY, {"client_id": client_id, "token_hash": token_hash})
        if row is None:  # the query is built on a one-row subquery: cannot happen
            raise RuntimeError("the introspection query returned no row")
        return facts_of(row)

    async def _many(self, asked: Sequence[tuple[str, str]]) -> list[IntrospectionFacts]:
        rows = await self._sql.fetch(
            _BATCH,
            {
                "client_ids": [client_id for client_id, _ in asked],
                "token_hashes": [token_hash for _, token_hash in asked],
            },
        )
        by_position = {row["asked_at"]: row for row in rows}
        if len(by_position) != len(asked):  # one row per question: cannot happen
            raise RuntimeError("the introspection query returned the wrong rows")
        return [facts_of(by_position[i]) for i in range(1, len(asked) + 1)]

    async def consume(self, jti: str, now: int) -> bool:
        """The first active introspection of a single-use token wins; every other loses."""
        return await self._sql.commit_one(_CONSUME, {"jti": jti, "now": now}) is not None
