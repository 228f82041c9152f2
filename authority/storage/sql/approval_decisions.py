"""The owner's side of approvals (``storage.approval_decisions``) in SQL, through the engine."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Literal

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from authority.ledger.entries import Entry
from authority.storage.approval_decisions import Position, Status, StoredApproval
from authority.storage.schema import approvals
from authority.storage.sql.ledger import append
from authority.storage.sql.records import page

_a = approvals.c
_COLUMNS = tuple(field.name for field in fields(StoredApproval))


def _approval(row: Any) -> StoredApproval:
    return StoredApproval(**{name: row._mapping[name] for name in _COLUMNS})


def _status(status: Status, now: int) -> list[ColumnElement[bool]]:
    if status == "all":
        return []
    if status == "expired":
        return [_a.status.in_(("pending", "approved")), _a.expires_at <= now]
    if status in ("pending", "approved"):
        return [_a.status == status, _a.expires_at > now]
    return [_a.status == status]


class SqlApprovalDecisionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, approval_id: str, owner_id: str | None) -> StoredApproval | None:
        query = select(approvals).where(_a.id == approval_id)
        if owner_id is not None:
            query = query.where(_a.owner_id == owner_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _approval(row)

    async def page(
        self,
        *,
        owner_id: str | None,
        status: Status,
        agent_id: str | None,
        now: int,
        limit: int,
        after: Position | None,
    ) -> tuple[list[StoredApproval], Position | None]:
        where = _status(status, now)
        if owner_id is not None:
            where.append(_a.owner_id == owner_id)
        if agent_id is not None:
            where.append(_a.agent_id == agent_id)
        async with self._engine.connect() as conn:
            rows, last = await page(conn, approvals, limit=limit, after=after, where=where)
        return [_approval(r) for r in rows], last

    async def decide(
        self,
        approval_id: str,
        *,
        decision: Literal["approved", "denied"],
        now: int,
        actor: str,
        reason: str | None,
        entry: Entry,
    ) -> StoredApproval | None:
        async with self._engine.begin() as conn:
            changed = (
                await conn.execute(
                    update(approvals)
                    .where(_a.id == approval_id, _a.status == "pending", _a.expires_at > now)
                    .values(
                        status=decision, decided_at=now, decided_by=actor, decision_reason=reason
                    )
                    .returning(*approvals.c)
                )
            ).first()
            if changed is None:
                return None  # decided already (a concurrent decision won), expired or unknown
            kind, version, created_at, record = entry
            await append(conn, kind=kind, version=version, created_at=created_at, record=record)
        return _approval(changed)
