"""PostgreSQL: a group-commit batch of spends (``storage.sql.exchange``) as one statement.

Alone, a spend is one statement of data-modifying CTEs (``exchange.pg_spend_and_record``).
A batch of N is one statement too, over arrays (``unnest``), so it costs one round trip
and one commit, with no BEGIN and no COMMIT of its own. What each item is told is what
it would have been told alone:

* single uses: each new key is claimed once (``INSERT ... ON CONFLICT DO NOTHING``); a
  key asked for twice in one batch is claimed for the first item only (the later one is
  a replay, decided here before the statement: a claim's RETURNING cannot say which of
  two rows with one key inserted it);
* the rows as decided: each item joins its delegation, agent, owner, tool and resource
  server, holding the last four ``FOR SHARE``, with the conditions of the spend alone;
* the calls: the delegations' rows are locked ``FOR NO KEY UPDATE`` in the order of
  their ids (one order across workers) and read as they are after any wait, each item
  checked against them at its own ``now``; of the ``n`` items on one delegation still
  live, the first ``min(n, max_calls - calls_used)``, in the batch's order, are spent,
  and the row is updated once by that many: two items on one delegation spend two
  calls, and a cap is never passed;
* the grant and its ledger entry are inserted for the spent items only.

An item not spent gets its refusal written afterwards, by its own caller (``Refused``),
as a spend alone does after its statement.

Lock order. The ``FOR SHARE`` row locks are taken in the join's order, not sorted: they
conflict with no spend's locks (shared with each other's; a spend's only exclusive row
locks are on delegations, taken in id order here and one per spend alone), so no two
spends can wait on each other through them. A cycle with an administrative write that
locks rows in its own order (a kill switch, a revocation) is possible whatever order
the batch used; it is broken by the bound below, well before the server's deadlock
check, and the batch's items are retried alone.

The row lock waits of the statement are bounded (``set_config('lock_timeout', ...,
true)``, evaluated before any row is read, for this statement's transaction only): past
the bound it fails, nothing is committed, and the group commit retries each item alone.
The table locks the statement takes as it starts are not: they are taken before any of
it runs. A table lock that conflicts with them (``LOCK TABLE``, a migration's DDL) stops
every spend alone just the same (the same tables in the same modes; ``used_jtis`` also
for a batch whose items have no single use, where such a spend alone does not touch
it), so a bound there
would only turn the batch's wait into each item's; the session's statement timeout
bounds both. (Bounding it would cost a transaction: BEGIN, SET LOCAL, COMMIT, three
round trips more per batch.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import BigInteger, Boolean, Column, Integer, String, and_, literal_column, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter

from authority.storage.driver import Driver
from authority.storage.exchange import SpendOutcome
from authority.storage.postgres_driver import BROKEN
from authority.storage.replay import MOST, SingleUse
from authority.storage.schema import grants, ledger_entries

from .grant_writes import GRANT_COLUMNS, Rows
from .group_commit import RolledBack
from .ledger import COLUMNS as ENTRY_COLUMNS

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]

#: What a spend's ``params`` hold besides the registrations (``exchange._parameters``).
_ITEM = (("p_delegation", "text"), ("p_agent", "text"), ("p_now", "bigint"))


#: Each registration a spend compares (``storage.exchange.Registered``), its SQL type.
REGISTERED_TYPES = {
    "agent_jwks": "text",
    "autonomy_level": "integer",
    "tool": "text",
    "actions": "text",
    "read_actions": "text",
    "risk_tier": "integer",
    "approval_required": "boolean",
    "single_use": "boolean",
    "dpop_required": "boolean",
    "max_token_lifetime": "integer",
    "audience": "text",
}


@dataclass(frozen=True, slots=True)
class Refused:
    """Not spent by the batch (committed): its caller writes the refusal, as alone."""

    claimed: tuple[bool, ...]


def _array_type(column: Column[Any]) -> str:
    """The array of the column's type without its length: a value too long for the
    column fails the INSERT, as alone, instead of being cut by the cast."""
    kind = column.type
    if isinstance(kind, Boolean):
        return "boolean[]"
    if isinstance(kind, BigInteger):
        return "bigint[]"
    if isinstance(kind, Integer):
        return "integer[]"
    if isinstance(kind, String):
        return "text[]"
    raise TypeError(f"no array type for {column.name}")


def _as_decided(clauses: Sequence[Any]) -> str:
    """The spend's "as decided" conditions, reading each ``r_<name>`` from the item row."""

    def to_item(element: Any, **_: Any) -> Any:
        if isinstance(element, BindParameter) and element.key.startswith("r_"):
            return literal_column(f"it.{element.key}")
        return None

    replaced = visitors.replacement_traverse(and_(*clauses), {}, to_item)
    return str(replaced.compile(dialect=_PG, compile_kwargs={"literal_binds": True}))


def statement(registered: Mapping[str, str], as_decided: Sequence[Any]) -> Any:
    """The batch statement; ``registered``: each registration and its SQL type."""
    item_columns = [("i", "integer"), *_ITEM]
    item_columns += [(f"r_{name}", kind) for name, kind in registered.items()]
    item_columns.append(("uses", "integer"))
    for j in range(MOST):
        item_columns += [(f"k{j}", "text"), (f"x{j}", "bigint")]
    arrays = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in item_columns)
    names = ", ".join(name for name, _ in item_columns)
    claims = "".join(
        f"""
claimed_{j} AS (
    INSERT INTO used_jtis (key, expires_at)
    SELECT k{j}, x{j} FROM items WHERE k{j} IS NOT NULL ORDER BY i
    ON CONFLICT (key) DO NOTHING RETURNING key
),"""  # noqa: S608 (names of the schema and indices: nothing of a request)
        for j in range(MOST)
    )
    all_claimed = " AND ".join(
        f"(it.uses <= {j} OR it.k{j} IN (SELECT key FROM claimed_{j}))"  # noqa: S608
        for j in range(MOST)
    )
    flags = ", ".join(
        f"coalesce(it.k{j} IN (SELECT key FROM claimed_{j}), false) AS claimed_{j}"  # noqa: S608
        for j in range(MOST)
    )

    def inserted(table: Any, prefix: str, columns: Sequence[str], name: str) -> str:
        listed = ", ".join(columns)
        unnested = ", ".join(
            [f"CAST(:{prefix}i AS integer[])"]
            + [f"CAST(:{prefix}{c} AS {_array_type(table.c[c])})" for c in columns]
        )
        return f"""
{name} AS (
    INSERT INTO {table.name} ({listed})
    SELECT {listed} FROM unnest({unnested}) AS v(i, {listed})
    WHERE v.i IN (SELECT i FROM winners) ORDER BY v.i
    RETURNING 1
){"," if name != "entered" else ""}"""  # noqa: S608

    sql = f"""
WITH items AS MATERIALIZED (
    SELECT t.*, set_config('lock_timeout', :lock_timeout, true) AS bounded
    FROM unnest({arrays}) AS t({names})
),{claims}
live AS (
    SELECT it.i, it.p_delegation AS delegation, it.p_now AS now
    FROM items AS it
    JOIN delegations ON delegations.id = it.p_delegation AND delegations.agent_id = it.p_agent
    JOIN agents ON agents.id = delegations.agent_id
    JOIN owners ON owners.id = delegations.owner_id
    JOIN tools ON tools.name = it.r_tool
    JOIN resource_servers ON resource_servers.id = tools.resource_server_id
    WHERE {all_claimed}
      AND delegations.status = 'active' AND delegations.expires_at > it.p_now
      AND agents.status = 'active' AND owners.status = 'active'
      AND {_as_decided(as_decided)}
    FOR SHARE OF agents, owners, tools, resource_servers
),
locked AS (
    SELECT delegations.id, delegations.calls_used, delegations.max_calls,
           delegations.status, delegations.expires_at
    FROM delegations WHERE delegations.id IN (SELECT delegation FROM live)
    ORDER BY delegations.id
    FOR NO KEY UPDATE
),
eligible AS (
    SELECT live.i, live.delegation,
           row_number() OVER (PARTITION BY live.delegation ORDER BY live.i) AS r
    FROM live JOIN locked ON locked.id = live.delegation
    WHERE locked.status = 'active' AND locked.expires_at > live.now
      AND (locked.max_calls IS NULL OR locked.calls_used < locked.max_calls)
),
granted AS (
    SELECT locked.id, locked.calls_used AS before,
           least(count(*), coalesce(locked.max_calls - locked.calls_used, count(*))) AS k
    FROM locked JOIN eligible ON eligible.delegation = locked.id
    GROUP BY locked.id, locked.calls_used, locked.max_calls
),
spent AS (
    UPDATE delegations SET calls_used = granted.before + granted.k
    FROM granted WHERE delegations.id = granted.id
    RETURNING delegations.id
),
winners AS (
    SELECT eligible.i FROM eligible JOIN granted ON granted.id = eligible.delegation
    WHERE eligible.r <= granted.k AND granted.id IN (SELECT id FROM spent)
),{inserted(grants, "g_", GRANT_COLUMNS, "granted_rows")}{
        inserted(ledger_entries, "e_", ENTRY_COLUMNS, "entered")
    }
SELECT it.i, it.i IN (SELECT i FROM winners) AS spent, {flags}
FROM items AS it ORDER BY it.i
"""  # noqa: S608 (every value is a bound parameter; the rest is the schema's names)
    return text(sql)


@dataclass(frozen=True, slots=True)
class Item:
    """One spend of a batch: the spend's parameters, its uses and its rows."""

    params: Mapping[str, Any]
    uses: Sequence[SingleUse]
    rows: Rows


def parameters(
    items: Sequence[Item], registered: Sequence[str], lock_timeout: str
) -> dict[str, Any]:
    """The arrays of ``statement`` for ``items``, in the batch's order.

    A key already asked for by an earlier item of the batch is passed as NULL: that
    use is not this item's to make (a replay), so it is refused, as it would be alone.
    ``ValueError`` for an item of more than ``MOST`` uses: the statement has room for
    ``MOST``, and a use left out would be a use not recorded.
    """
    if any(len(item.uses) > MOST for item in items):
        raise ValueError(f"a spend of a batch records at most {MOST} single uses")
    names = [name for name, _ in _ITEM] + [f"r_{name}" for name in registered]
    params: dict[str, Any] = {name: [] for name in names}
    params["i"] = list(range(len(items)))
    params["uses"] = [len(item.uses) for item in items]
    params["lock_timeout"] = lock_timeout
    seen: set[str] = set()
    for j in range(MOST):
        params[f"k{j}"], params[f"x{j}"] = [], []
    for item in items:
        for name in names:
            params[name].append(item.params[name])
        for j in range(MOST):
            use = item.uses[j] if j < len(item.uses) else None
            fresh = use is not None and use.key not in seen
            params[f"k{j}"].append(use.key if use is not None and fresh else None)
            params[f"x{j}"].append(use.expires_at if use is not None else None)
            if use is not None:
                seen.add(use.key)
    for prefix, columns, part in (("g_", GRANT_COLUMNS, "grant"), ("e_", ENTRY_COLUMNS, "entry")):
        params[f"{prefix}i"] = params["i"]
        for column in columns:
            params[prefix + column] = [getattr(item.rows, part)[column] for item in items]
    return params


def outcomes(rows: Sequence[Mapping[str, Any]], items: Sequence[Item]) -> list[tuple[bool, ...]]:
    """For each item, in order: its claims, and (appended) whether its call was spent."""
    if len(rows) != len(items):
        raise RuntimeError("the batch statement did not answer for every item")
    answers = []
    for row, item in zip(rows, items, strict=True):
        claimed = tuple(bool(row[f"claimed_{j}"]) for j in range(len(item.uses)))
        answers.append((*claimed, bool(row["spent"])))
    return answers


async def spend(
    sql: Driver, batch: Any, items: Sequence[Item], registered: Sequence[str], lock_timeout: str
) -> list[SpendOutcome | Refused]:
    """``items`` spent by one run of ``batch`` (``statement``), committed alone.

    ``RolledBack`` only when nothing was committed: an item refused before anything was
    sent, or an error the server reported for the statement itself (its implicit
    transaction rolled back) on a connection still open (the driver turns one the server
    then closed into a ``ConnectionError``). Not those of ``BROKEN`` (a statement
    timeout, a shutdown, a connection lost), nor any error once the statement returned:
    the batch may have committed, so every waiter answers 503 and none is retried.
    """
    try:
        params = parameters(items, registered, lock_timeout)
    except ValueError as exc:
        raise RolledBack() from exc
    try:
        rows = await sql.fetch(batch, params)
    except BROKEN:
        raise
    except asyncpg.PostgresError as exc:
        raise RolledBack() from exc
    answers: list[SpendOutcome | Refused] = []
    for *claimed, spent in outcomes(rows, items):
        flags = tuple(claimed)
        answers.append(SpendOutcome(flags) if spent else Refused(flags))
    return answers
