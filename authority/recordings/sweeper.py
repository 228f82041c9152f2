"""Retention: the sealed heads of a recorded call are deleted ``recording_retention`` days on.

Only the heads go; the recording's row and its ``gateway_call`` ledger entry stay, so
the ledger keeps verifying and an auditor asking for the call learns that it was
recorded and is past retention. Reads do not wait for the sweep: a recording past
retention is not served even while its heads are still stored (``audit``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from authority.context import Services

log = logging.getLogger("authority.recordings")

#: Recordings swept per transaction.
BATCH = 500
DAY = 86400


def retained_after(services: Services, now: int) -> int:
    """Recordings created before this time are past retention."""
    return now - services.settings.recording_retention * DAY


async def sweep(services: Services) -> int:
    """Delete every head past retention, a bounded batch per transaction; how many."""
    now = services.now()
    before = retained_after(services, now)
    total = 0
    while True:
        swept = await services.recording_store.sweep(before, now=now, limit=BATCH)
        total += swept
        if swept < BATCH:
            return total


class RecordingSweeper:
    """Runs ``sweep`` every ``recording_sweep_interval`` seconds in the background."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="recording-sweeper")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._services.settings.recording_sweep_interval)
            try:
                swept = await sweep(self._services)
            except Exception as exc:
                # Nothing is lost and nothing is served past retention: the next round
                # deletes what this one could not.
                log.warning("recording sweep failed: %s", type(exc).__name__)
                continue
            if swept:
                log.info("deleted the heads of %d recorded calls past retention", swept)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
