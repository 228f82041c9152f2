"""The delegations port (``storage.delegations``) in SQL, through the engine.

Revoking is one conditional UPDATE (``status = 'active'``): it takes the row lock the
exchange's own spend UPDATE takes, so once it commits no exchange under the delegation
can succeed (``grants.token_exchange``), and of concurrent revocations exactly one
matches the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from authority.ledger.entries import Entry
from authority.storage.delegations import (
    Delegation,
    Grant,
    Grantee,
    Position,
    Revoked,
    ScopedTool,
)
from authority.storage.schema import agents, delegations, tools
from authority.storage.sql import events
from authority.storage.sql.ledger import append
from authority.storage.sql.records import page

_d = delegations.c
_COLUMNS = tuple(field.name for field in fields(Delegation))


def _delegation(row: Any) -> Delegation:
    return Delegation(**{name: row._mapping[name] for name in _COLUMNS})


def _visible(delegation_id: str, owner_id: str | None) -> list[ColumnElement[bool]]:
    where = [_d.id == delegation_id]
    if owner_id is not None:
        where.append(_d.owner_id == owner_id)
    return where


class SqlDelegationStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(
        self, owner_id: str, agent_id: str, tool_names: Sequence[str], grant: Grant
    ) -> Delegation | None:
        async with self._engine.begin() as conn:
            agent = (
                await conn.execute(
                    select(agents.c.status, agents.c.jwks)
                    .where(agents.c.id == agent_id, agents.c.owner_id == owner_id)
                    # FOR SHARE on PostgreSQL: a kill switch running now either commits
                    # first (the agent is quarantined, and refused by ``grant``) or
                    # waits for this delegation to commit and then revokes it.
                    .with_for_update(read=True)
                )
            ).first()
            if agent is None:
                return None
            known = {
                row.name: ScopedTool(row.name, row.actions, row.status)
                for row in (
                    await conn.execute(
                        select(tools.c.name, tools.c.actions, tools.c.status).where(
                            tools.c.name.in_(tool_names)
                        )
                    )
                ).all()
            }
            new = grant(Grantee(agent.status, agent.jwks), known)
            row = new.delegation
            await conn.execute(
                delegations.insert().values({name: getattr(row, name) for name in _COLUMNS})
            )
            kind, version, created_at, record = new.entry
            await append(conn, kind=kind, version=version, created_at=created_at, record=record)
        return row

    async def get(self, delegation_id: str, owner_id: str | None) -> Delegation | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(delegations).where(*_visible(delegation_id, owner_id)))
            ).first()
        return None if row is None else _delegation(row)

    async def page(
        self,
        *,
        owner_id: str | None,
        agent_id: str | None,
        limit: int,
        after: Position | None,
    ) -> tuple[list[Delegation], Position | None]:
        where: list[ColumnElement[bool]] = []
        if owner_id is not None:
            where.append(_d.owner_id == owner_id)
        if agent_id is not None:
            where.append(_d.agent_id == agent_id)
        async with self._engine.connect() as conn:
            rows, last = await page(conn, delegations, limit=limit, after=after, where=where)
        return [_delegation(r) for r in rows], last

    async def revoke(
        self,
        delegation_id: str,
        owner_id: str | None,
        *,
        now: int,
        actor: str,
        reason: str | None,
        entry: Entry,
        event_expires_at: int,
    ) -> Revoked | None:
        visible = _visible(delegation_id, owner_id)
        async with self._engine.begin() as conn:
            changed = (
                await conn.execute(
                    update(delegations)
                    .where(*visible, _d.status == "active")
                    .values(
                        status="revoked", revoked_at=now, revoked_by=actor, revoked_reason=reason
                    )
                    .returning(*delegations.c)
                )
            ).first()
            if changed is None:
                row = (await conn.execute(select(delegations).where(*visible))).first()
                return None if row is None else Revoked(_delegation(row), None)
            kind, version, created_at, record = entry
            await append(conn, kind=kind, version=version, created_at=created_at, record=record)
            # The feed's event, as the transaction's last statement (revocations.events).
            event = await events.record(
                conn,
                kind="delegation",
                now=now,
                expires_at=event_expires_at,
                delegation_id=delegation_id,
                owner_id=changed.owner_id,
                agent_id=changed.agent_id,
            )
        return Revoked(_delegation(changed), event)
