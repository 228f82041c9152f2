"""What a resource server verifying tokens locally knows of revocations: the authority's
revocation feed (Server-Sent Events), followed with resumption, applied to tokens.

Rules per event kind (see ``authority.revocations.events``): ``token`` revokes one jti;
``delegation`` every token of the delegation; ``agent`` and ``owner`` every token of that
agent (``act.sub``) or owner (``sub``) issued at or before the event; ``tool`` (a retired
tool) every token for that tool issued at or before the event. Events are dropped
once ``expires_at`` has passed: no token they could apply to is still alive.

Fail closed: ``healthy`` is False, and the middleware does not trust local verification
alone (it introspects), until the feed has caught up on the current connection, and
whenever it has been silent (no event, no heartbeat) for longer than ``max_silence``.
"Caught up" is the feed's ``ready`` message: the authority sends it once it has replayed
every event this follower could need (on a first connection, every revocation whose
tokens may still be alive, however long before the follower started; on a resumption,
everything after ``Last-Event-ID``). Between a lost connection and the next ``ready``
the follower is not caught up either: revocations may have been missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from authority.sdk.feed import FeedError, RevocationEvent, RevocationFeed
from authority.sdk.verifier import VerifiedToken

log = logging.getLogger("authority.sdk.revocations")
SWEEP_INTERVAL = 30.0
#: Seconds of clock difference between authority instances that an agent or owner event
#: still covers: a token issued that close after a quarantine counts as before it.
CLOCK_LEEWAY = 5


@dataclass
class RevocationList:
    tokens: dict[str, int] = field(default_factory=dict)  # jti -> expires_at
    delegations: dict[str, int] = field(default_factory=dict)
    agents: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (time, expires)
    owners: dict[str, tuple[int, int]] = field(default_factory=dict)
    tools: dict[str, tuple[int, int]] = field(default_factory=dict)

    def apply(self, event: dict[str, Any] | RevocationEvent, now: float) -> None:
        """Apply one event; raise ``MalformedEvent`` (and change nothing) if it is not one."""
        if not isinstance(event, RevocationEvent):
            event = RevocationEvent.from_value(event, require_id=False)
        expires = event.expires_at or int(now + 86400)
        at = event.time
        if event.kind == "token" and event.jti is not None:
            self.tokens[event.jti] = expires
        elif event.kind == "delegation" and event.delegation_id is not None:
            self.delegations[event.delegation_id] = expires
        elif event.kind == "agent" and event.agent_id is not None:
            self.agents[event.agent_id] = _later(self.agents.get(event.agent_id), at, expires)
        elif event.kind == "owner" and event.owner_id is not None:
            self.owners[event.owner_id] = _later(self.owners.get(event.owner_id), at, expires)
        elif event.kind == "tool" and event.tool is not None:
            self.tools[event.tool] = _later(self.tools.get(event.tool), at, expires)

    def revokes(self, token: VerifiedToken) -> bool:
        if token.jti in self.tokens or token.delegation_id in self.delegations:
            return True
        # iat comes from the clock of the instance that issued the token, the event's time
        # from the one that revoked: allow for their difference, failing closed.
        agent = self.agents.get(token.agent_id)
        if agent is not None and token.issued_at <= agent[0] + CLOCK_LEEWAY:
            return True
        owner = self.owners.get(token.owner_id)
        if owner is not None and token.issued_at <= owner[0] + CLOCK_LEEWAY:
            return True
        tool = self.tools.get(token.tool)
        return tool is not None and token.issued_at <= tool[0] + CLOCK_LEEWAY

    def forget_expired(self, now: float) -> None:
        self.tokens = {k: v for k, v in self.tokens.items() if v > now}
        self.delegations = {k: v for k, v in self.delegations.items() if v > now}
        self.agents = {k: v for k, v in self.agents.items() if v[1] > now}
        self.owners = {k: v for k, v in self.owners.items() if v[1] > now}
        self.tools = {k: v for k, v in self.tools.items() if v[1] > now}


def _later(current: tuple[int, int] | None, at: int, expires: int) -> tuple[int, int]:
    if current is None:
        return (at, expires)
    return (max(current[0], at), max(current[1], expires))


class FeedFollower:
    """Follows the feed in the background (``RevocationFeed``) and keeps a ``RevocationList``
    current; what the middleware and the gateway consult.

    The connection, resumption and reconnection are the feed client's; a refusal
    (``FeedError``: the credentials were revoked or rotated) is retried here too, every
    ``max_delay``, logged, while the middleware keeps failing closed on introspection.
    """

    def __init__(
        self,
        url: str,
        http: httpx.AsyncClient,
        *,
        auth: httpx.Auth | None = None,
        max_silence: float = 30.0,
        max_delay: float = 10.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.url = url
        self.revoked = RevocationList()
        self._max_silence = max_silence
        self._clock = clock
        self._sleep = sleep
        self._last_heard = float("-inf")
        self._last_sweep = float("-inf")
        self._connected = asyncio.Event()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # A silent connection is dropped after max_silence (the read timeout), and the
        # follower is unhealthy from then until the next ``ready``.
        self.feed = RevocationFeed(
            url,
            auth=auth,
            http=http,
            on_ready=self._ready.set,
            on_heard=self._heard,
            read_timeout=max_silence,
            max_delay=max_delay,
            sleep=sleep,
            clock=clock,
        )

    @property
    def healthy(self) -> bool:
        """Caught up on the current connection, and heard from within ``max_silence``."""
        return self.feed.caught_up and self._clock() - self._last_heard <= self._max_silence

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="authority-revocation-feed")

    async def wait_connected(self) -> None:
        """Until the feed has answered once (wrap in ``asyncio.wait_for`` to bound it)."""
        await self._connected.wait()

    async def wait_ready(self) -> None:
        """Until the feed has caught up once (wrap in ``asyncio.wait_for`` to bound it)."""
        await self._ready.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.follow()
            except FeedError as exc:
                log.warning("revocation feed refused this server: %s", exc.status)
            except Exception as exc:  # anything else: stay fail-closed and start again
                log.warning("revocation feed interrupted: %s", type(exc).__name__)
            if self._sleep is not None:
                await self._sleep(self.feed.max_delay)
            else:
                await asyncio.sleep(self.feed.max_delay)

    async def follow(self) -> None:
        """Apply the feed's events until it raises (``FeedError``: refused)."""
        async with contextlib.aclosing(self.feed.events()) as events:
            async for event in events:
                self._apply(event)

    def _heard(self) -> None:
        self._last_heard = self._clock()
        self._connected.set()

    def _apply(self, event: RevocationEvent) -> None:
        now = self._clock()
        self.revoked.apply(event, now)
        if now - self._last_sweep > SWEEP_INTERVAL:
            self.revoked.forget_expired(now)
            self._last_sweep = now
