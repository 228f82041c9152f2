"""Approval requests in SQL (``storage.exchange``): asked for, read, polled, redeemed, closed.

Every statement runs in the exchange's or the poll's own transaction on the hot path's
driver, so an exchange's approval request commits with its attestation's use and its
``pending`` grant, and a poll's redemption with the token's grant.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, bindparam, func, select, update

from authority.ledger.entries import entry_row
from authority.storage.driver import Driver, Transaction
from authority.storage.exchange import ApprovalFacts, ClosedApproval, NewApproval
from authority.storage.schema import approvals

from .ledger import INSERT as INSERT_ENTRY

_PENDING_COUNT = select(func.count().label("n")).where(
    approvals.c.agent_id == bindparam("agent_id"),
    approvals.c.status == "pending",
    approvals.c.expires_at > bindparam("now"),
)
_INSERT = approvals.insert()


async def at_limit(tx: Transaction, agent_id: str, now: int, limit: int) -> bool:
    """Whether the agent has ``limit`` pending, unexpired requests or more."""
    row = await tx.fetchrow(_PENDING_COUNT, {"agent_id": agent_id, "now": now})
    return (int(row.n) if row is not None else 0) >= limit


async def insert(tx: Transaction, approval: NewApproval) -> None:
    await tx.execute(
        _INSERT,
        {
            "id": approval.id,
            "created_at": approval.created_at,
            "expires_at": approval.expires_at,
            "status": "pending",
            "owner_id": approval.owner_id,
            "agent_id": approval.agent_id,
            "delegation_id": approval.delegation_id,
            "request": approval.request,
            "reason": approval.reason,
            "decided_at": None,
            "decided_by": None,
            "decision_reason": None,
            "last_polled_at": None,
            "poll_interval": approval.poll_interval,
        },
    )


_LOAD = select(approvals).where(approvals.c.id == bindparam("id"))


async def load(sql: Driver, approval_id: str) -> ApprovalFacts | None:
    row = await sql.fetchrow(_LOAD, {"id": approval_id})
    if row is None:
        return None
    return ApprovalFacts(
        id=row.id,
        status=row.status,
        created_at=row.created_at,
        expires_at=row.expires_at,
        owner_id=row.owner_id,
        agent_id=row.agent_id,
        delegation_id=row.delegation_id,
        request=row.request,
        reason=row.reason,
    )


_NOTE_POLL = (
    update(approvals)
    .where(
        approvals.c.id == bindparam("id"),
        approvals.c.status == "pending",
        (approvals.c.last_polled_at.is_(None))
        | (approvals.c.last_polled_at + approvals.c.poll_interval <= bindparam("now")),
    )
    .values(last_polled_at=bindparam("now"))
    .returning(approvals.c.id)
)
_SLOW_DOWN = (
    update(approvals)
    .where(approvals.c.id == bindparam("id"), approvals.c.status == "pending")
    .values(poll_interval=approvals.c.poll_interval + bindparam("step", type_=Integer))
)


async def note_poll(sql: Driver, approval_id: str, now: int, step: int) -> bool:
    """One conditional UPDATE, so two instances answering two fast polls cannot both
    say "pending". A poll that is too soon does not move ``last_polled_at`` (the client
    must wait from its last accepted poll) and raises the interval by ``step``."""
    async with sql.transaction() as tx:
        if await tx.fetchrow(_NOTE_POLL, {"id": approval_id, "now": now}) is not None:
            return True
        await tx.execute(_SLOW_DOWN, {"id": approval_id, "step": step})
    return False


_CONSUME = (
    update(approvals)
    .where(
        approvals.c.id == bindparam("id"),
        approvals.c.status == "approved",
        approvals.c.expires_at > bindparam("now"),
    )
    .values(status="used")
    .returning(approvals.c.id)
)


async def consume(tx: Transaction, approval_id: str, now: int) -> bool:
    """Mark an approved request used, in the transaction that issues its token: True for
    exactly one caller across all instances."""
    return await tx.fetchrow(_CONSUME, {"id": approval_id, "now": now}) is not None


_CLOSE = (
    update(approvals)
    .where(approvals.c.id == bindparam("id"), approvals.c.status == "approved")
    .values(
        status="denied",
        decided_at=bindparam("now"),
        decided_by=bindparam("decided_by"),
        decision_reason=bindparam("reason"),
    )
    .returning(approvals.c.id)
)


async def close(tx: Transaction, closed: ClosedApproval) -> None:
    """Deny a request still approved, with its ``approval_decided`` entry."""
    kind, version, created_at, record = closed.entry
    entry: dict[str, Any] = entry_row(
        kind=kind, version=version, created_at=created_at, record=record
    )
    params = {
        "id": closed.approval_id,
        "now": closed.decided_at,
        "decided_by": closed.decided_by,
        "reason": closed.reason,
    }
    if await tx.fetchrow(_CLOSE, params) is not None:
        await tx.execute(INSERT_ENTRY, entry)
