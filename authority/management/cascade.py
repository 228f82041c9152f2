"""The kill switch's cascade: contain the owner in one small commit, then stop each object.

Containment is the owner's row: ``contain`` turns an active owner ``suspended`` in the
kill's one short transaction (with the ``kill_switch`` ledger entry, the ``owner``
revocation event and this cascade's marker row). Every exchange (its spend statement),
every CIBA poll (the same statement) and every introspection (its join) requires
``owners.status == 'active'``, and resource servers verifying locally reject the owner's
earlier tokens on the ``owner`` event, so the owner's next call is refused on every
instance from that commit on, whatever the number of agents and delegations.

``suspended`` means exactly this: a kill switch is stopping the owner's objects. Nothing
else sets it, and the cascade that finishes last puts the owner back to ``active``
(a retired owner stays retired): the owner must still be able to work with the
authority after a kill, release agents one by one and delegate anew.

The cascade then quarantines every agent and revokes every delegation the kill covers
(the owner's active ones created at or before the containment), in id order, at most
``kill_cascade_batch_size`` per transaction, each object with its ledger entry written by
one bulk append. Each batch first locks the cascade's marker row and moves its cursor
in the same commit, so a batch is done once or not at all: the cascade is idempotent
(two runners, as after a restart of one of two instances, take turns on the marker and
never write an entry twice), resumable (``resume_unfinished`` at start-up, or the owner
pressing the kill switch again) and no transaction lives longer than one batch, far
inside the ledger's straggler window. Until it finishes the owner stays contained:
fail closed.

Lock order, PostgreSQL: a batch locks the marker row, then agent rows (agents phase) or
delegation rows (delegations phase), never both; the finishing transaction locks the
marker, then the owner row; ``contain`` locks the owner row first and only inserts the
marker. An exchange holds agent and owner rows FOR SHARE and then updates its
delegation: once the owner is suspended, the owner's exchanges match no row and lock
nothing, so they neither wait for a batch nor hold a connection while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from authority.context import Services
from authority.ledger.entries import Entry
from authority.policy.reasons import Reason
from authority.storage.schema import agents, containment_cascades, delegations, grants, owners
from authority.storage.sql.ledger import append_many

log = logging.getLogger("authority.containment")

#: The refusals containment causes: the owner, then the agent or the delegation stopped.
_CONTAINED = (Reason.OWNER_INACTIVE, Reason.AGENT_INACTIVE, Reason.DELEGATION_REVOKED)


@dataclass(slots=True)
class Stopped:
    """What one run of a cascade stopped (ids in the order they were stopped)."""

    quarantined: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)


async def contain(
    conn: AsyncConnection, *, owner_id: str, actor: str, reason: str, now: int
) -> tuple[int, int]:
    """In the kill's transaction: suspend the owner (if active) and write the marker.

    Returns (the cascade's id, the number of agents it covers). The caller has checked
    that the owner exists and appends the ledger entry and the revocation event.
    """
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
            .returning(containment_cascades.c.id)
        )
    ).scalar_one()
    return int(cascade_id), int(agent_count)


def _covered_agents(owner_id: str, contained_at: int) -> list[Any]:
    return [
        agents.c.owner_id == owner_id,
        agents.c.status == "active",
        agents.c.created_at <= contained_at,
    ]


async def run(services: Services, cascade_id: int) -> Stopped:
    """Run the cascade to its end, one bounded transaction per batch.

    The owner is contained already, so the rest can wait: after each batch the cascade
    rests ``kill_cascade_pace`` times as long as the batch took, which leaves the CPU and
    the database to other owners' requests (measured in ``bench/kill.py``).
    """
    stopped = Stopped()
    pace = services.settings.kill_cascade_pace
    while True:
        started = time.perf_counter()
        async with services.engine.begin() as conn:
            if await step(services, conn, cascade_id, stopped):
                return stopped
        if pace:
            await asyncio.sleep(pace * (time.perf_counter() - started))


async def step(
    services: Services, conn: AsyncConnection, cascade_id: int, stopped: Stopped
) -> bool:
    """One batch of the cascade, in the caller's transaction; True once it has finished."""
    c = containment_cascades.c
    row = (
        await conn.execute(select(containment_cascades).where(c.id == cascade_id).with_for_update())
    ).one()
    if row.finished_at is not None:
        return True
    now = services.now()
    limit = services.settings.kill_cascade_batch_size
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
            return False
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
        entries: list[Entry] = [
            (
                "agent_quarantined",
                1,
                now,
                {
                    "agent_id": agent_id,
                    "owner_id": row.owner_id,
                    "actor": row.actor,
                    "reason": row.reason,
                },
            )
            for agent_id in done
        ]
        await append_many(conn, entries)
        await _advance(conn, cascade_id, cursor=max(ids), quarantined=len(done))
        stopped.quarantined.extend(done)
        return False
    if row.phase == "delegations":
        d = delegations.c
        where = [d.owner_id == row.owner_id, d.status == "active"]
        where += [d.created_at <= row.contained_at, *(d.id > cursor for cursor in after)]
        ids = list(
            (await conn.execute(select(d.id).where(*where).order_by(d.id).limit(limit))).scalars()
        )
        if not ids:
            await _finish(conn, row, now)
            return True
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
        entries = [
            (
                "delegation_revoked",
                1,
                now,
                {
                    "delegation_id": r.id,
                    "owner_id": row.owner_id,
                    "agent_id": r.agent_id,
                    "actor": row.actor,
                    "reason": row.reason,
                },
            )
            for r in revoked
        ]
        await append_many(conn, entries)
        await _advance(conn, cascade_id, cursor=max(ids), revoked=len(revoked))
        stopped.revoked.extend(str(r.id) for r in revoked)
        return False
    await _finish(conn, row, now)
    return True


async def _advance(
    conn: AsyncConnection,
    cascade_id: int,
    *,
    cursor: str | None,
    phase: str | None = None,
    quarantined: int = 0,
    revoked: int = 0,
) -> None:
    c = containment_cascades.c
    values: dict[str, Any] = {
        "cursor": cursor,
        "quarantined": c.quarantined + quarantined,
        "revoked": c.revoked + revoked,
    }
    if phase is not None:
        values["phase"] = phase
    await conn.execute(update(containment_cascades).where(c.id == cascade_id).values(values))


async def _finish(conn: AsyncConnection, row: Any, now: int) -> None:
    """Mark the cascade done; the last one of the owner's lifts the suspension."""
    c = containment_cascades.c
    await conn.execute(
        update(containment_cascades)
        .where(c.id == row.id)
        .values(phase="done", cursor=None, finished_at=now)
    )
    # The owner row is locked before looking for other cascades: a kill that is
    # containing the owner right now holds it, and its marker is seen once it commits.
    await conn.execute(select(owners.c.id).where(owners.c.id == row.owner_id).with_for_update())
    others = (
        await conn.execute(
            select(func.count())
            .select_from(containment_cascades)
            .where(c.owner_id == row.owner_id, c.finished_at.is_(None), c.id != row.id)
        )
    ).scalar_one()
    if not others:
        await conn.execute(
            update(owners)
            .where(owners.c.id == row.owner_id, owners.c.status == "suspended")
            .values(status="active", updated_at=now)
        )


async def unfinished(services: Services, owner_id: str | None = None) -> list[int]:
    """Ids of the cascades not finished yet (of one owner, or of all), oldest first."""
    c = containment_cascades.c
    query = select(c.id).where(c.finished_at.is_(None)).order_by(c.id)
    if owner_id is not None:
        query = query.where(c.owner_id == owner_id)
    async with services.engine.connect() as conn:
        return [int(i) for i in (await conn.execute(query)).scalars()]


def start(services: Services, cascade_ids: list[int]) -> asyncio.Task[Stopped]:
    """Run cascades in the background: a kill's client going away does not stop them.

    Returns the task, which the kill awaits (shielded); ``shutdown`` cancels what is
    still running, and the next start-up resumes it.
    """
    started = time.perf_counter()

    async def go() -> Stopped:
        total = Stopped()
        for cascade_id in cascade_ids:
            stopped = await run(services, cascade_id)
            total.quarantined.extend(stopped.quarantined)
            total.revoked.extend(stopped.revoked)
        services.metrics.kill_cascade.observe(time.perf_counter() - started)
        return total

    tasks = services.cascades
    task = asyncio.create_task(go())
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task


def resume_unfinished(services: Services) -> None:
    """At start-up: finish the cascades a stopped or crashed process left behind."""

    async def go() -> None:
        try:
            ids = await unfinished(services)
            if ids:
                log.warning("resuming %d unfinished kill switch cascade(s)", len(ids))
                await start(services, ids)
        except Exception:  # the owners stay contained; the next start-up or kill retries
            log.exception("kill switch cascades not resumed")

    tasks = services.cascades
    task = asyncio.create_task(go())
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def shutdown(services: Services) -> None:
    tasks = services.cascades
    for task in list(tasks):
        task.cancel()
    for task in list(tasks):
        # Cancelled or failed: what is left is resumed at the next start-up.
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def refused_since(services: Services, owner_id: str, since: int) -> int:
    """Calls of the owner's agents refused because of containment since ``since``."""
    owned = select(agents.c.id).where(agents.c.owner_id == owner_id)
    query = (
        select(func.count())
        .select_from(grants)
        .where(
            grants.c.agent_id.in_(owned),
            grants.c.created_at >= since,
            grants.c.decision == "denied",
            grants.c.reason.in_([r.value for r in _CONTAINED]),
        )
    )
    async with services.engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())
