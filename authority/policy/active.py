"""The active Cedar policy of this instance, and how a change reaches every instance.

Every instance (every uvicorn worker) holds the active version compiled, and confirms it
with the one small read ``PolicyStore.active_version`` at most every
``policy_refresh_interval`` seconds: the first decision after the interval reads it (the
decisions arriving meanwhile wait for the same read), and a changed number loads and
compiles that version before anything is decided. This is how the registries reach
every instance too: the database is the source of truth, read on the request path. So
a change made on one instance decides that instance's next request at once (``install``)
and every other instance's within ``policy_refresh_interval`` (0: every decision reads).

A read that fails or takes longer than ``database_timeout`` fails closed: the decision
is a 503 ``temporarily_unavailable``, never one made on a version that could not be
confirmed. A stale policy is thus never used beyond one interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from authority.errors import TemporarilyUnavailable
from authority.policy.cedar import DEFAULT_POLICY_FILE, CedarPolicy
from authority.storage.policies import PolicyStore

log = logging.getLogger("authority.policy")

#: The version decisions name while no version is stored (``policy.versions.BUILT_IN``).
BUILT_IN = 0
#: Compiled versions kept, so that a rollback and its undo compile nothing.
_KEPT = 8


@dataclass(frozen=True, slots=True)
class Versioned:
    """A compiled policy and the stored version it is (0: the built-in default)."""

    version: int
    policy: CedarPolicy


class ActivePolicy:
    """The active version, confirmed at most ``interval`` seconds ago (see module doc)."""

    def __init__(
        self,
        store: PolicyStore | None,
        *,
        interval: float,
        timeout: float,
        default: CedarPolicy | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._interval = interval
        self._timeout = timeout
        self._monotonic = monotonic
        self._default = Versioned(BUILT_IN, default or CedarPolicy.from_file(DEFAULT_POLICY_FILE))
        self._current = self._default
        self._confirmed = float("-inf")
        self._compiled: dict[int, CedarPolicy] = {}
        self._reading: asyncio.Future[Versioned] | None = None

    @classmethod
    def fixed(cls, policy: CedarPolicy, version: int = BUILT_IN) -> ActivePolicy:
        """A policy that is never re-read (a test's, or ``authority policy test``'s)."""
        holder = cls(None, interval=0, timeout=0, default=policy)
        holder._current = Versioned(version, policy)
        return holder

    async def current(self) -> Versioned:
        """The active version; ``TemporarilyUnavailable`` when it cannot be confirmed."""
        if self._store is None or self._monotonic() - self._confirmed < self._interval:
            return self._current
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(self._read(self._store, self._monotonic()))
        try:
            return await asyncio.wait_for(asyncio.shield(self._reading), self._timeout)
        except TimeoutError:
            log.warning("the active policy version could not be read in time")
        except Exception as exc:
            log.warning("the active policy version could not be read: %s", type(exc).__name__)
        raise TemporarilyUnavailable("The active policy could not be confirmed; retry shortly.")

    async def refresh(self) -> Versioned:
        """Read the active version now (at start, and after a change on this instance)."""
        if self._store is None:
            return self._current
        return await self._read(self._store, self._monotonic())

    def install(self, version: int, policy: CedarPolicy) -> None:
        """The version this instance has just made active decides its next request."""
        self._compiled[version] = policy
        self._current = Versioned(version, policy)
        self._confirmed = self._monotonic()

    async def _read(self, store: PolicyStore, started: float) -> Versioned:
        number = await store.active_version()
        if number is None:
            current = self._default
        elif number == self._current.version:
            current = self._current
        else:
            current = Versioned(number, await self._compile(store, number))
        if started >= self._confirmed:  # not over a change installed since it started
            self._current = current
            self._confirmed = started
        return self._current

    async def _compile(self, store: PolicyStore, number: int) -> CedarPolicy:
        policy = self._compiled.get(number)
        if policy is None:
            stored = await store.get(number)
            if stored is None:  # versions are never deleted: cannot happen
                raise LookupError(f"policy version {number} is not stored")
            policy = CedarPolicy(stored.text)
            while len(self._compiled) >= _KEPT:
                self._compiled.pop(next(iter(self._compiled)))
            self._compiled[number] = policy
        return policy
