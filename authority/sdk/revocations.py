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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from authority.sdk.feed import EVENT_NAME, READY_NAME, MalformedEvent, RevocationEvent, parse_sse
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
    """Follows the feed in the background and keeps a ``RevocationList`` current."""

    def __init__(
        self,
        url: str,
        http: httpx.AsyncClient,
        *,
        auth: httpx.Auth | None = None,
        max_silence: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.revoked = RevocationList()
        self._http = http
        self._auth = auth
        self._max_silence = max_silence
        self._clock = clock
        self._last_event_id = ""
        self._last_heard = float("-inf")
        self._last_sweep = float("-inf")
        self._connected = asyncio.Event()
        self._ready = asyncio.Event()
        self._caught_up = False
        self._task: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        """Caught up on the current connection, and heard from within ``max_silence``."""
        return self._caught_up and self._clock() - self._last_heard <= self._max_silence

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
        delay = 0.5
        while True:
            try:
                await self._follow()
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # reconnect on anything: the list stays fail-closed
                log.warning("revocation feed interrupted: %s", type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _follow(self) -> None:
        headers = {"Accept": "text/event-stream"}
        if self._last_event_id:
            headers["Last-Event-ID"] = self._last_event_id
        async with self._http.stream(
            "GET",
            self.url,
            headers=headers,
            auth=self._auth or httpx.USE_CLIENT_DEFAULT,
            timeout=httpx.Timeout(10.0, read=self._max_silence),
        ) as response:
            response.raise_for_status()
            try:
                async for message in parse_sse(self._lines(response), self._last_event_id):
                    # The id counts as seen only once its message is complete (parse_sse),
                    # so a connection cut mid-message resumes with that message again.
                    # Only once its event is applied, too: a malformed one is met again
                    # on resumption, never skipped (and the feed is not caught up).
                    if message.event == EVENT_NAME and message.data:
                        self._dispatch(message.data)
                    self._last_event_id = message.last_event_id
                    if message.event == READY_NAME:
                        self._caught_up = True
                        self._ready.set()
            finally:
                # Whatever is revoked until the next connection's ``ready`` is unknown.
                self._caught_up = False

    async def _lines(self, response: httpx.Response) -> AsyncIterator[str]:
        """Every line, heartbeat comments included, is a sign of life."""
        async for line in response.aiter_lines():
            self._heard()
            yield line

    def _heard(self) -> None:
        self._last_heard = self._clock()
        self._connected.set()

    def _dispatch(self, data: str) -> None:
        try:
            event = RevocationEvent.from_json(data)
        except MalformedEvent:
            # Fail closed: the follower reconnects from before it (the caller's loop) and
            # is not caught up, so it is not healthy, until the event parses.
            log.warning("revocation feed sent a malformed event")
            raise
        now = self._clock()
        self.revoked.apply(event, now)
        if now - self._last_sweep > SWEEP_INTERVAL:
            self.revoked.forget_expired(now)
            self._last_sweep = now
