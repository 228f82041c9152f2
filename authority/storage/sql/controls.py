"""The kill switch's port (``storage.controls``) in SQL, through the engine.

Lock order, PostgreSQL: ``kill`` locks the owner row first (its UPDATE) and only inserts
the marker; a batch locks the marker row, then agent rows (agents phase) or delegation
rows (delegations phase), never both; the finishing transaction locks the marker, then
the owner row. An exchange holds agent and owner rows FOR SHARE and then updates its
delegation: once the owner is suspended, the owner's exchanges match no row and lock
nothing, so they neither wait for a batch nor hold a connection while it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authority.storage.controls import (
    Batch,
    BatchEntries,
    Cascade,
    Contained,
    KillEntry,
    RevokedDelegation,
)
from authority.storage.schema import agents, containment_cascades, delegations, grants, owners
from authority.storage.sql import events
from authority.storage.sql.ledger import append, append_many

_c = containment_cascades.c


def _covered_agents(owner_id: str, contained_at: int) -> list[ColumnElement[bool]]:
    return [
        agents.c.owner_id == owner_id,
        agents.c.status == "active",
        agents.c.created_at <= contained_at,
    ]


class SqlControlsStore:
    def __init__(self, engine: AsyncEngine, reader: AsyncEngine) -> None:
        self._engine = engine
        self._reader = reader

    async def agent_owner(self, agent_id: str) -> str | None:
        query = select(agents.c.owner_id).where(agents.c.id == agent_id)
        async with self._reader.connect() as conn:
            owner_id = (await conn.execute(query)).scalar()
        return None if owner_id is None else str(owner_id)

    async def kill(
        self,
        owner_id: str,
        *,
        actor: str,
        reason: str,
        now: int,
        entry: KillEntry,
        event_expires_at: int,
    ) -> Contained | None:
        async with self._engine.begin() as conn:
            if (
                await conn.execute(select(owners.c.id).where(owners.c.id == owner_id))
            ).first() is None:
                return None
            await conn.execute(
                update(owners)
                .where(owners.c.id == owner_id, owners.c.status == "active")
                .values(status="suspended", updated_at=now)
            )
            agent_count = (
                await conn.execute(
                    select(func.count()).select_from(agents).where(*_covered_agents(owner_id, now))
                )
            ).scalar_one()
            cascade_id = (
                await conn.execute(
                    containment_cascades.insert()
                    .values(
                        owner_id=owner_id,
                        actor=actor,
                        reason=reason,
                        contained_at=now,
                        phase="agents",
                        cursor=None,
                        quarantined=0,
                        revoked=0,
                        finished_at=None,
                    )
                    .returning(_c.id)
                )
            ).scalar_one()
            kind, version, created_at, record = entry(int(agent_count))
            await append(conn, kind=kind, version=version, created_at=created_at, record=record)
            event = await events.record(
                conn, kind="owner", now=now, expires_at=event_expires_at, owner_id=owner_id
            )
        return Contained(int(cascade_id), event)

    async def step(self, cascade_id: int, *, now: int, limit: int, entries: BatchEntries) -> Batch:
        async with self._engine.begin() as conn:
            return await _step(conn, cascade_id, now=now, limit=limit, entries=entries)

    async def unfinished(self, owner_id: str | None = None) -> list[int]:
        query = select(_c.id).where(_c.finished_at.is_(None)).order_by(_c.id)
        if owner_id is not None:
            query = query.where(_c.owner_id == owner_id)
        async with self._engine.connect() as conn:
            return [int(i) for i in (await conn.execute(query)).scalars()]

    async def refused_since(self, owner_id: str, since: int, reasons: Sequence[str]) -> int:
        owned = select(agents.c.id).where(agents.c.owner_id == owner_id)
        query = (
            select(func.count())
            .select_from(grants)
            .where(
                grants.c.agent_id.in_(owned),
                grants.c.created_at >= since,
                grants.c.decision == "denied",
                grants.c.reason.in_(list(reasons)),
            )
        )
        async with self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())


async def _step(
    conn: AsyncConnection, cascade_id: int, *, now: int, limit: int, entries: BatchEntries
) -> Batch:
    row = (
        await conn.execute(
            select(containment_cascades).where(_c.id == cascade_id).with_for_update()
        )
    ).first()
    if row is None or row.finished_at is not None:
        return Batch(finished=True)
    marker = Cascade(row.id, row.owner_id, row.actor, row.reason, row.contained_at)
    after = [] if row.cursor is None else [row.cursor]
    if row.phase == "agents":
        where = [*_covered_agents(row.owner_id, row.contained_at)]
        where += [agents.c.id > cursor for cursor in after]
        ids = list(
            (
                await conn.execute(
                    select(agents.c.id).where(*where).order_by(agents.c.id).limit(limit)
                )
            ).scalars()
        )
        if not ids:
            await _advance(conn, cascade_id, phase="delegations", cursor=None)
            return Batch(finished=False)
        # Status re-checked on the row itself: one released or quarantined meanwhile is
        # left as it is (PostgreSQL re-evaluates it on the newest version).
        done = sorted(
            (
                await conn.execute(
                    update(agents)
                    .where(agents.c.id.in_(ids), agents.c.status == "active")
                    .values(
                        status="quarantined",
                        status_reason=row.reason,
                        quarantined_by=row.actor,
                        updated_at=now,
                    )
                    .returning(agents.c.id)
                )
            ).scalars()
        )
        batch = Batch(finished=False, quarantined=tuple(str(i) for i in done))
        await append_many(conn, entries(marker, batch))
        await _advance(conn, cascade_id, cursor=max(ids), quarantined=len(done))
        return batch
    if row.phase == "delegations":
        d = delegations.c
        where = [d.owner_id == row.owner_id, d.status == "active"]
        where += [d.created_at <= row.contained_at, *(d.id > cursor for cursor in after)]
        ids = list(
            (await conn.execute(select(d.id).where(*where).order_by(d.id).limit(limit))).scalars()
        )
        if not ids:
            await _finish(conn, row, now)
            return Batch(finished=True)
        revoked = sorted(
            (
                await conn.execute(
                    update(delegations)
                    .where(d.id.in_(ids), d.status == "active")
                    .values(
                        status="revoked",
                        revoked_at=row.contained_at,
                        revoked_by=row.actor,
                        revoked_reason=row.reason,
                    )
                    .returning(d.id, d.agent_id)
                )
            ).all(),
            key=lambda r: str(r.id),
        )
        batch = Batch(
            finished=False,
            revoked=tuple(RevokedDelegation(str(r.id), str(r.agent_id)) for r in revoked),
        )
        await append_many(conn, entries(marker, batch))
        await _advance(conn, cascade_id, cursor=max(ids), revoked=len(revoked))
        return batch
    await _finish(conn, row, now)
    return Batch(finished=True)


async def _advance(
    conn: AsyncConnection,
    cascade_id: int,
    *,
    cursor: str | None,
    phase: str | None = None,
    quarantined: int = 0,
    revoked: int = 0,
) -> None:
    values: dict[str, Any] = {
        "cursor": cursor,
        "quarantined": _c.quarantined + quarantined,
        "revoked": _c.revoked + revoked,
    }
    if phase is not None:
        values["phase"] = phase
    await conn.execute(update(containment_cascades).where(_c.id == cascade_id).values(values))


async def _finish(conn: AsyncConnection, row: Any, now: int) -> None:
    """Mark the cascade done; the last one of the owner's lifts the suspension."""
    await conn.execute(
        update(containment_cascades)
        .where(_c.id == row.id)
        .values(phase="done", cursor=None, finished_at=now)
    )
    # The owner row is locked before looking for other cascades: a kill that is
    # containing the owner right now holds it, and its marker is seen once it commits.
    await conn.execute(select(owners.c.id).where(owners.c.id == row.owner_id).with_for_update())
    others = (
        await conn.execute(
            select(func.count())
            .select_from(containment_cascades)
            .where(_c.owner_id == row.owner_id, _c.finished_at.is_(None), _c.id != row.id)
        )
    ).scalar_one()
    if not others:
        await conn.execute(
            update(owners)
            .where(owners.c.id == row.owner_id, owners.c.status == "suspended")
            .values(status="active", updated_at=now)
        )
