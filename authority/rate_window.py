"""Per-client rate windows counted in process and reconciled with hot state on a short interval.

Introspection's per-resource-server window (``introspection_rate_per_minute``) used to
cost one hot-state round trip per request, about as much as the rest of an
introspection. Here each worker counts its own admissions and adds them to the shared
counter (``HotState.apply`` with ``Count.by``) in one round trip for every window, every
``introspection_rate_sync_interval`` seconds, in the background; the reply is the shared
count, which every later decision starts from.

The bound on over-admission. A worker counts a request locally only while fewer than
``budget`` (``introspection_rate_local_budget``) of its admissions in that window are not
yet in the shared counter; the next request waits for a reconciliation. Each worker
stops admitting once the shared count it last read, plus its own unreconciled count,
reaches the limit. The increments the shared counter took while it was still under the
limit number fewer than the limit; beyond those, each worker has at most ``budget``
admissions (those in the reconciliation that crossed the limit, and those made before
its reply). So across ``N`` workers (instances x workers per instance) one window admits
at most ``limit + N x min(budget, limit)`` requests. With one worker the local count is
the whole count: exact.

Without hot state. A reconciliation that fails is not retried at once; the worker goes
on counting locally, and its unreconciled admissions keep counting towards ``budget``,
so the bound above holds during an outage too. It keeps answering for at most
``introspection_rate_outage_allowance`` seconds since its last successful reconciliation
(and at most ``budget`` admissions per window). Past either it fails closed:
``HotStateUnavailable``, 503 ``temporarily_unavailable`` at the endpoint, exactly as
when every request needed the round trip. A worker that has never reached hot state
counts nothing locally: its first request waits for a reconciliation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from authority.storage.hot import Count, HotState, HotStateUnavailable

log = logging.getLogger(__name__)

#: Fixed windows of a minute (the shared counter's key names the minute).
WINDOW = 60


@dataclass(slots=True)
class _Window:
    key: str
    minute: int
    known: int = 0  # the shared count as last read (this worker's reconciled ones included)
    pending: int = 0  # counted here, not yet added to the shared counter


if TYPE_CHECKING:
    from authority.settings import Settings


class RateWindows:
    """One worker's view of the fixed per-client windows of one kind of request."""

    def __init__(
        self,
        hot: HotState,
        *,
        interval: float,
        budget: int,
        allowance: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hot = hot
        self._interval = interval
        self._budget = budget
        self._allowance = allowance
        self._monotonic = monotonic
        self._windows: dict[tuple[str, str], _Window] = {}
        self._last_ok = float("-inf")
        self._next_sync = float("-inf")
        self._sync: asyncio.Task[bool] | None = None

    @classmethod
    def from_settings(
        cls, hot: HotState, settings: Settings, *, monotonic: Callable[[], float] = time.monotonic
    ) -> RateWindows:
        """Introspection's windows, as its ``introspection_rate_*`` settings bound them."""
        return cls(
            hot,
            interval=settings.introspection_rate_sync_interval,
            budget=settings.introspection_rate_local_budget,
            allowance=settings.introspection_rate_outage_allowance,
            monotonic=monotonic,
        )

    async def count(self, kind: str, client_id: str, now: int) -> int:
        """Count one request of ``client_id`` in the window of ``now`` (seconds since the
        epoch); the window's count so far, this request included, for ``enforce_rate``.

        Raises ``HotStateUnavailable`` when the count cannot be bounded (see the module doc).
        """
        window = self._window(kind, client_id, now)
        while not self._may_count_locally(window):
            await self._reconcile()
            window = self._window(kind, client_id, now)  # as the reconciliation left it
        if self._sync is None and self._monotonic() >= self._next_sync:
            self._sync = asyncio.get_running_loop().create_task(self._background())
        window.pending += 1
        return window.known + window.pending

    def _may_count_locally(self, window: _Window) -> bool:
        fresh = self._monotonic() - self._last_ok <= self._allowance
        return fresh and window.pending < self._budget

    def _window(self, kind: str, client_id: str, now: int) -> _Window:
        minute = now // WINDOW
        window = self._windows.get((kind, client_id))
        if window is None or window.minute != minute:
            # A new minute starts from zero (and replaces the last one: what it had not
            # reconciled no longer decides anything).
            # Hash tag: one minute's windows of a kind are in one Redis Cluster slot, so
            # they are reconciled in one apply (storage.hot.one_slot).
            window = _Window(f"rate:{{{kind}:{minute}}}:{client_id}", minute)
            self._windows[(kind, client_id)] = window
        return window

    async def _reconcile(self) -> None:
        """Wait for a reconciliation (joining the one under way); raise if it failed."""
        task = self._sync
        if task is None:
            task = self._sync = asyncio.get_running_loop().create_task(self._background())
        # Shielded: a cancelled request must not cancel the reconciliation others wait on.
        if not await asyncio.shield(task):
            raise HotStateUnavailable("rate window not reconciled")

    async def _background(self) -> bool:
        self._next_sync = self._monotonic() + self._interval
        try:
            await self._flush()
        except HotStateUnavailable:
            log.warning("rate windows not reconciled with hot state")
            return False
        finally:
            self._sync = None
        return True

    async def _flush(self) -> None:
        # A past minute's window with nothing left to add decides nothing more.
        latest = max((w.minute for w in self._windows.values()), default=0)
        for name, window in list(self._windows.items()):
            if window.minute < latest and window.pending == 0:
                del self._windows[name]
        # One apply per hash tag (a kind's minute): usually one, two as a minute turns.
        groups: dict[str, list[_Window]] = {}
        for window in self._windows.values():
            groups.setdefault(window.key.partition("}")[0], []).append(window)
        # Every apply ends before this reconciliation does (the next one must not send
        # what one still in flight is adding); one that failed fails it.
        results = await asyncio.gather(
            *(self._add(windows) for windows in groups.values()), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        self._last_ok = self._monotonic()

    async def _add(self, windows: list[_Window]) -> None:
        sent = [w.pending for w in windows]
        counts = [Count(w.key, WINDOW, by=n) for w, n in zip(windows, sent, strict=True)]
        outcome = await self._hot.apply([], counts)
        for window, n, total in zip(windows, sent, outcome.counts, strict=True):
            window.pending -= n
            window.known = total

    async def close(self) -> None:
        """Let a reconciliation under way finish (before hot state closes)."""
        if self._sync is not None:
            await asyncio.shield(self._sync)
