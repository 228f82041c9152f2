"""The kill switch's cascade: contain the owner in one small commit, then stop each object.

Containment is the owner's row: the kill (``storage.controls.ControlsStore.kill``) turns
an active owner ``suspended`` in one short transaction (with the ``kill_switch`` ledger
entry, the ``owner`` revocation event and this cascade's marker row). Every exchange (its
spend statement), every CIBA poll (the same statement) and every introspection (its
join) requires ``owners.status == 'active'``, and resource servers verifying locally
reject the owner's earlier tokens on the ``owner`` event, so the owner's next call is
refused on every instance from that commit on, whatever the number of agents and
delegations.

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

The batches, their transactions and their locks are the store's (``storage.controls``);
here is when they run, how fast, and what the ledger says of each object.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from authority.context import Services
from authority.ledger.entries import Entry
from authority.policy.reasons import Reason
from authority.storage.controls import Batch, BatchEntries, Cascade

log = logging.getLogger("authority.containment")

#: The refusals containment causes: the owner, then the agent or the delegation stopped.
_CONTAINED = (Reason.OWNER_INACTIVE, Reason.AGENT_INACTIVE, Reason.DELEGATION_REVOKED)


@dataclass(slots=True)
class Stopped:
    """What one run of a cascade stopped (ids in the order they were stopped)."""

    quarantined: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)


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
        if await step(services, cascade_id, stopped):
            return stopped
        if pace:
            await asyncio.sleep(pace * (time.perf_counter() - started))


async def step(services: Services, cascade_id: int, stopped: Stopped) -> bool:
    """One batch of the cascade, in a transaction of its own; True once it has finished."""
    now = services.now()
    batch = await services.controls_store.step(
        cascade_id, now=now, limit=services.settings.kill_cascade_batch_size, entries=_entries(now)
    )
    stopped.quarantined.extend(batch.quarantined)
    stopped.revoked.extend(d.id for d in batch.revoked)
    return batch.finished


def _entries(now: int) -> BatchEntries:
    def entries(cascade: Cascade, batch: Batch) -> Sequence[Entry]:
        """One entry per object stopped, so that an auditor following one delegation
        or one agent through the ledger sees how it ended."""
        quarantined: list[Entry] = [
            (
                "agent_quarantined",
                1,
                now,
                {
                    "agent_id": agent_id,
                    "owner_id": cascade.owner_id,
                    "actor": cascade.actor,
                    "reason": cascade.reason,
                },
            )
            for agent_id in batch.quarantined
        ]
        revoked: list[Entry] = [
            (
                "delegation_revoked",
                1,
                now,
                {
                    "delegation_id": d.id,
                    "owner_id": cascade.owner_id,
                    "agent_id": d.agent_id,
                    "actor": cascade.actor,
                    "reason": cascade.reason,
                },
            )
            for d in batch.revoked
        ]
        return quarantined + revoked

    return entries


async def unfinished(services: Services, owner_id: str | None = None) -> list[int]:
    """Ids of the cascades not finished yet (of one owner, or of all), oldest first."""
    return await services.controls_store.unfinished(owner_id)


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
    return await services.controls_store.refused_since(
        owner_id, since, [r.value for r in _CONTAINED]
    )
