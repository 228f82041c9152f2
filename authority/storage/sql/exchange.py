"""The exchange port (``storage.exchange``) in SQL, on the hot path's driver.

The load is ``exchange_load`` (one query; on PostgreSQL one per turn of the event loop
for all of a worker's concurrent requests). The spend is one UPDATE of the delegation
row gated on a CTE that holds the agent, owner, tool and resource server rows FOR SHARE;
on PostgreSQL the single uses' claims, the spend and the grant with its ledger entry are
CTEs of one statement, and a refusal, rare, is read and written after it. SQLite
serialises writers (BEGIN IMMEDIATE), which gives the same order, in one transaction.

Spends are group-committed (``group_commit``): the spends concurrent requests of one
worker ask for are written together. On SQLite, in one transaction, each item's
statements exactly as alone, in the order of their delegation ids; on PostgreSQL, as one
statement over arrays (``exchange_batch``) whose lock waits are bounded by
``batch_lock_timeout``: a batch that meets a row held by a revocation or a kill switch
fails after that bound, and its items are retried one by one, so only the spends of that
owner wait for it. Two spends on one delegation in one batch both spend a call, the cap
exact. A token leaves only once the batch holding its grant and ledger entry has
committed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, Integer, and_, bindparam, select, update

from authority.storage.driver import Driver, Transaction
from authority.storage.exchange import (
    ApprovalFacts,
    ApprovalOutcome,
    Denial,
    ExchangeFacts,
    GrantWrite,
    NewApproval,
    NotRequested,
    NotSpent,
    Registered,
    Spend,
    SpendOutcome,
    SpendState,
)
from authority.storage.replay import MOST, SingleUse
from authority.storage.schema import agents, delegations, owners, resource_servers, tools

from . import approval_requests, exchange_batch, exchange_load, grant_writes, replay
from .group_commit import GroupCommit, RolledBack

#: The registrations the decision read (``Registered``), still as they were.
_REGISTERED_AS_DECIDED = (
    agents.c.jwks == bindparam("r_agent_jwks"),
    agents.c.autonomy_level == bindparam("r_autonomy_level"),
    tools.c.status == "active",
    tools.c.actions == bindparam("r_actions"),
    tools.c.read_actions == bindparam("r_read_actions"),
    tools.c.risk_tier == bindparam("r_risk_tier"),
    tools.c.approval_required == bindparam("r_approval_required", type_=Boolean),
    tools.c.single_use == bindparam("r_single_use", type_=Boolean),
    tools.c.dpop_required == bindparam("r_dpop_required", type_=Boolean),
    tools.c.max_token_lifetime.is_not_distinct_from(
        bindparam("r_max_token_lifetime", type_=Integer)
    ),
    resource_servers.c.status == "active",
    resource_servers.c.audience == bindparam("r_audience"),
)
_REGISTERED = tuple(Registered.__slots__)
if set(exchange_batch.REGISTERED_TYPES) != set(_REGISTERED):
    raise RuntimeError("storage.exchange.Registered does not match the batch's arrays")
#: PostgreSQL: a batch of spends in one statement.
_PG_BATCH = exchange_batch.statement(exchange_batch.REGISTERED_TYPES, _REGISTERED_AS_DECIDED)


def _parameters(spend: Spend) -> dict[str, Any]:
    params = {"p_delegation": spend.delegation_id, "p_agent": spend.agent_id, "p_now": spend.now}
    registered = spend.registered
    params.update({f"r_{name}": getattr(registered, name) for name in _REGISTERED})
    return params


def _spend_statement(gates: Sequence[Any] = ()) -> Any:
    """Spend one call, if the delegation, its agent, owner and tool are as decided.

    ``gates``: further conditions (the single-use claims of a one-statement write).
    """
    live = (
        select(delegations.c.id)
        .join(agents, agents.c.id == delegations.c.agent_id)
        .join(owners, owners.c.id == delegations.c.owner_id)
        .join(tools, tools.c.name == bindparam("r_tool"))
        .join(resource_servers, resource_servers.c.id == tools.c.resource_server_id)
        .where(
            delegations.c.id == bindparam("p_delegation"),
            delegations.c.agent_id == bindparam("p_agent"),
            delegations.c.status == "active",
            delegations.c.expires_at > bindparam("p_now"),
            agents.c.status == "active",
            owners.c.status == "active",
            *_REGISTERED_AS_DECIDED,
        )
        # FOR SHARE: a change to any of these rows waits for this grant's commit, and
        # one that committed first is seen here (PostgreSQL re-reads a locked row's
        # newest version and checks these conditions again on it).
        .with_for_update(read=True, of=[agents, owners, tools, resource_servers])
        .cte("live")
    )
    return (
        update(delegations)
        .where(
            delegations.c.id.in_(select(live.c.id)),
            # Repeated on the updated row itself: if a revocation committed while this
            # waited for the row lock, PostgreSQL re-checks these conditions on the new
            # version (READ COMMITTED), but not the CTE's, which keeps its snapshot.
            delegations.c.status == "active",
            delegations.c.expires_at > bindparam("p_now"),
            (delegations.c.max_calls.is_(None))
            | (delegations.c.calls_used < delegations.c.max_calls),
            *gates,
        )
        .values(calls_used=delegations.c.calls_used + 1)
        .returning(delegations.c.calls_used)
    )


_SPEND = _spend_statement()


def pg_spend_and_record(claims: int, *, inserts: Sequence[Any] = grant_writes.RECORDED) -> Any:
    """PostgreSQL: claim the uses, spend the call and write the grant, in one statement.

    The spend waits for every claim (a replay spends nothing); the uses are recorded
    whether or not the call is spent. It returns one row: ``calls_used`` (NULL when
    nothing was spent) and ``claimed_<i>`` for each use.
    """
    ctes = replay.pg_claims(claims)
    spent = _spend_statement(replay.all_claimed(ctes)).cte("spent")
    result = select(
        select(spent.c.calls_used).scalar_subquery().label("calls_used"),
        *replay.claimed_flags(ctes),
    )
    return grant_writes.pg_record(spent, inserts=inserts, result=result)


PG_SPEND_AND_RECORD = tuple(pg_spend_and_record(n) for n in range(MOST + 1))

_WHY_NOT_SPENT = (
    select(
        delegations.c.status,
        delegations.c.expires_at,
        delegations.c.max_calls,
        delegations.c.calls_used,
        agents.c.status.label("agent_status"),
        owners.c.status.label("owner_status"),
        tools.c.status.label("tool_status"),
        resource_servers.c.status.label("server_status"),
        and_(*_REGISTERED_AS_DECIDED).label("as_decided"),
    )
    .join(
        agents,
        and_(agents.c.id == delegations.c.agent_id, agents.c.id == bindparam("p_agent")),
    )
    .join(owners, owners.c.id == delegations.c.owner_id)
    .outerjoin(tools, tools.c.name == bindparam("r_tool"))
    .outerjoin(resource_servers, resource_servers.c.id == tools.c.resource_server_id)
    .where(delegations.c.id == bindparam("p_delegation"))
)


async def _refuse(
    tx: Transaction,
    params: Mapping[str, Any],
    claimed: tuple[bool, ...],
    refuse: Callable[[NotSpent], Denial],
) -> Denial:
    """After a refused spend: read its rows (unless a use was replayed), write the denial."""
    state = None
    if all(claimed):
        row = await tx.fetchrow(_WHY_NOT_SPENT, params)
        if row is not None:
            state = SpendState(
                status=row.status,
                expires_at=row.expires_at,
                max_calls=row.max_calls,
                calls_used=row.calls_used,
                agent_status=row.agent_status,
                owner_status=row.owner_status,
                tool_status=row.tool_status,
                server_status=row.server_status,
                as_decided=bool(row.as_decided),
            )
    denial = refuse(NotSpent(claimed, state))
    await grant_writes.insert(tx, grant_writes.rows(denial.grant))
    if denial.approval is not None:
        await approval_requests.close(tx, denial.approval)
    return denial


class _ApprovalTaken(Exception):
    """Another poll consumed the approval: the transaction rolls back."""


@dataclass(frozen=True, slots=True)
class _Spending:
    """One spend waiting for its batch: its parameters and rows, built by its caller."""

    params: dict[str, Any]
    uses: Sequence[SingleUse]
    rows: grant_writes.Rows
    refuse: Callable[[NotSpent], Denial]


async def _spend_in(tx: Transaction, dialect: str, item: _Spending) -> SpendOutcome:
    """One spend in the caller's transaction: the statements it runs alone, unchanged."""
    params, uses = item.params, item.uses
    if dialect == "postgresql":
        one = {**params, **replay.parameters(uses), **item.rows.prefixed()}
        row = await tx.fetchrow(PG_SPEND_AND_RECORD[len(uses)], one)
        if row is None:  # the statement always returns its one row
            raise RuntimeError("the spend statement returned no row")
        claimed = tuple(bool(row[f"claimed_{i}"]) for i in range(len(uses)))
        if row.calls_used is not None:
            return SpendOutcome(claimed)
        return SpendOutcome(claimed, await _refuse(tx, params, claimed, item.refuse))
    claimed = await replay.spend(tx, dialect, uses)
    if not all(claimed) or await tx.fetchrow(_SPEND, params) is None:
        return SpendOutcome(claimed, await _refuse(tx, params, claimed, item.refuse))
    await grant_writes.insert(tx, item.rows)
    return SpendOutcome(claimed)


class SqlExchangeStore:
    """``batch_lock_timeout``: how long a batch of spends waits for a row lock (seconds)
    before its items are retried one by one. ``group_commit``: batch concurrent spends.

    Measured: bench/README.md.
    """

    def __init__(
        self, sql: Driver, *, batch_lock_timeout: float = 0.05, group_commit: bool = True
    ) -> None:
        self._sql = sql
        self._loads = exchange_load.Loads(sql) if sql.dialect == "postgresql" else None
        self._lock_timeout = f"{max(1, round(batch_lock_timeout * 1000))}ms"
        self._group_commit = group_commit
        self.spends: GroupCommit[_Spending, SpendOutcome | exchange_batch.Refused] = GroupCommit(
            self._spend_alone, self._spend_many
        )

    async def load(self, agent_id: str, delegation_id: str, tool: str) -> ExchangeFacts:
        asked = (agent_id, delegation_id, tool)
        if self._loads is not None:
            return await self._loads.load(asked)
        return await exchange_load.load_one(self._sql, asked)

    async def _spend_alone(self, item: _Spending) -> SpendOutcome:
        sql = self._sql
        if sql.dialect == "postgresql":  # one statement, one round trip, no BEGIN/COMMIT
            one = {**item.params, **replay.parameters(item.uses), **item.rows.prefixed()}
            row = await sql.commit_one(PG_SPEND_AND_RECORD[len(item.uses)], one)
            if row is None:  # the statement always returns its one row
                raise RuntimeError("the spend statement returned no row")
            claimed = tuple(bool(row[f"claimed_{i}"]) for i in range(len(item.uses)))
            if row.calls_used is not None:
                return SpendOutcome(claimed)
            async with sql.transaction() as tx:
                return SpendOutcome(claimed, await _refuse(tx, item.params, claimed, item.refuse))
        async with sql.transaction() as tx:
            return await _spend_in(tx, sql.dialect, item)

    async def _spend_many(
        self, items: Sequence[_Spending]
    ) -> Sequence[SpendOutcome | exchange_batch.Refused]:
        sql = self._sql
        if sql.dialect == "postgresql":
            return await self._pg_spend_many(items)
        # Row locks in one order across workers: by delegation id (then as asked).
        order = sorted(range(len(items)), key=lambda i: items[i].params["p_delegation"])
        outcomes: list[SpendOutcome | None] = [None] * len(items)
        async with sql.transaction() as tx:
            try:
                for i in order:
                    outcomes[i] = await _spend_in(tx, sql.dialect, items[i])
            except sqlite3.OperationalError:
                raise  # locked past the busy timeout, disk I/O: every waiter answers 503
            except Exception as exc:  # raised before the commit: the transaction rolls back
                raise RolledBack() from exc
        # Past the commit: anything raised now is answered as of unknown outcome.
        return [o for o in outcomes if o is not None]

    async def _pg_spend_many(
        self, items: Sequence[_Spending]
    ) -> list[SpendOutcome | exchange_batch.Refused]:
        """One statement for the batch (``exchange_batch``), committed alone; the items
        it did not spend are refused by their own callers (``spend``)."""
        batch = [exchange_batch.Item(item.params, item.uses, item.rows) for item in items]
        return await exchange_batch.spend(
            self._sql, _PG_BATCH, batch, _REGISTERED, self._lock_timeout
        )

    async def spend(
        self,
        spend: Spend,
        issued: GrantWrite,
        uses: Sequence[SingleUse],
        refuse: Callable[[NotSpent], Denial],
        *,
        approval_id: str | None = None,
    ) -> SpendOutcome:
        sql = self._sql
        if len(uses) > MOST:  # never some of them recorded and the rest dropped
            raise ValueError(f"a decision records at most {MOST} single uses")
        params = _parameters(spend)
        rows = grant_writes.rows(issued)  # MalformedEntry here, before anything is queued
        if approval_id is None:
            item = _Spending(params, uses, rows, refuse)
            if not self._group_commit:
                return await self._spend_alone(item)
            outcome = await self.spends.submit(item)
            if isinstance(outcome, exchange_batch.Refused):  # the batch has committed
                async with sql.transaction() as tx:
                    denial = await _refuse(tx, params, outcome.claimed, refuse)
                return SpendOutcome(outcome.claimed, denial)
            return outcome
        taken: tuple[bool, ...] = ()
        try:
            async with sql.transaction() as tx:
                claimed = taken = await replay.spend(tx, sql.dialect, uses)
                if not all(claimed) or await tx.fetchrow(_SPEND, params) is None:
                    return SpendOutcome(claimed, await _refuse(tx, params, claimed, refuse))
                if not await approval_requests.consume(tx, approval_id, spend.now):
                    raise _ApprovalTaken()  # roll everything back
                await grant_writes.insert(tx, rows)
        except _ApprovalTaken:
            return SpendOutcome(taken, approval_taken=True)
        return SpendOutcome(claimed)

    async def deny(
        self, denial: GrantWrite, use: SingleUse | None, replayed: Callable[[], GrantWrite]
    ) -> bool | None:
        sql = self._sql
        rows = grant_writes.rows(denial)
        if sql.dialect == "postgresql":
            # One statement, so one round trip: it commits alone, the use and both rows,
            # or (a replay) the use alone.
            if use is None:
                await sql.commit_one(grant_writes.PG_RECORD, rows.prefixed())
                return None
            params = {**replay.parameters([use]), **rows.prefixed()}
            if await sql.commit_one(grant_writes.PG_CLAIM_AND_RECORD, params) is not None:
                return True
            await sql.commit_one(grant_writes.PG_RECORD, grant_writes.rows(replayed()).prefixed())
            return False
        claimed: bool | None = None
        async with sql.transaction() as tx:
            if use is not None:
                (claimed,) = await replay.spend(tx, sql.dialect, [use])
                if not claimed:
                    rows = grant_writes.rows(replayed())
            await grant_writes.insert(tx, rows)
        return claimed

    async def request_approval(
        self,
        approval: NewApproval,
        pending: GrantWrite,
        uses: Sequence[SingleUse],
        refuse: Callable[[NotRequested], GrantWrite],
        *,
        max_pending: int,
    ) -> ApprovalOutcome:
        sql = self._sql
        async with sql.transaction() as tx:
            claimed = await replay.spend(tx, sql.dialect, uses)
            limited = all(claimed) and await approval_requests.at_limit(
                tx, approval.agent_id, approval.created_at, max_pending
            )
            if not all(claimed) or limited:
                denial = refuse(NotRequested(claimed, limited))
                await grant_writes.insert(tx, grant_writes.rows(denial))
                return ApprovalOutcome(claimed, denial)
            await approval_requests.insert(tx, approval)
            await grant_writes.insert(tx, grant_writes.rows(pending))
        return ApprovalOutcome(claimed)

    async def approval(self, approval_id: str) -> ApprovalFacts | None:
        return await approval_requests.load(self._sql, approval_id)

    async def note_poll(self, approval_id: str, now: int, *, slow_down_step: int) -> bool:
        return await approval_requests.note_poll(self._sql, approval_id, now, slow_down_step)

    async def spend_uses(self, uses: Sequence[SingleUse]) -> tuple[bool, ...]:
        return await replay.spend_now(self._sql, uses)

    async def close_approval(self, denial: Denial) -> None:
        async with self._sql.transaction() as tx:
            await grant_writes.insert(tx, grant_writes.rows(denial.grant))
            if denial.approval is not None:
                await approval_requests.close(tx, denial.approval)
