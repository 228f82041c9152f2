"""The revocation feed: revocation events as Server-Sent Events (HTML Living Standard,
"Server-sent events"), for resource servers that verify tokens locally.

Wire format, one message per event (``text/event-stream``)::

    id: 42
    event: revocation
    data: {"id":42,"kind":"delegation","time":1760000000,"expires_at":1760000065,
           "delegation_id":"dlg_...","agent_id":"agt_...","owner_id":"own_..."}

(``data`` is one line.) ``kind`` is ``token``, ``delegation``, ``agent`` or ``owner``,
with the members and meaning listed in ``authority.revocations.events``; absent members
are omitted. Every stream starts with ``retry: 1000`` and an ``id:`` line holding the
position it starts from (the HTML standard sets the last event id even for a message
without data), so a client that reconnects with ``Last-Event-ID`` resumes exactly there
even if it saw no event. Idle streams carry a ``: heartbeat`` comment every
``revocation_feed_heartbeat`` seconds, and end after ``revocation_feed_max_duration``
seconds; clients reconnect with ``Last-Event-ID``. When the instance stops (SIGTERM,
``authority.shutdown``), every stream ends at once with a last message holding a
``retry:`` (between half and one and a half times the usual, so that the followers of a
stopping instance do not all come back in the same instant) and its ``id:``: followers
reconnect through the load balancer to another instance and resume exactly there.

Catch-up, then ``ready``: a stream first sends, from SQL, every live event
(``events.is_live``) after ``Last-Event-ID``, or without one every live event at all (a
resource server that starts knows nothing: it must hear of what was revoked before it
connected, and the live events are exactly those that can still revoke a token; the
opening ``id:`` is then just before the first of them, so a cut resumes the replay).
Once it has passed the last event id SQL held when the stream opened, it sends::

    id: 57
    event: ready
    data: {"id":57}

and a subscriber may trust its revocation list from then on, not before. Only the events
that concern the authenticated resource server are sent (``events.concerned``); the
cursor moves past the others silently.

Resumption without gaps or duplicates: event ids are assigned in commit order
(``events.record``), so "everything after id N, in id order" read from SQL at any moment
is a gap-free prefix of what is to come. Each stream keeps its own cursor (the last id
it read) and only ever sends events above it, in order: first the catch-up from SQL,
then what the instance's hub reads as it arrives (or SQL again, if the hub's memory no
longer reaches back to the cursor). There is no separate "replay then live" switch-over
in which an event could fall between the two or be sent twice.

The hub (one per instance) follows ``revocation_events`` in SQL (through its port,
``storage.event_reader``), woken by the hot-state pub/sub channel the writers publish on,
and re-reads at least every ``revocation_feed_poll_interval`` seconds in case a notice
was lost; it keeps the most
recent ``revocation_feed_buffer`` events in memory for its streams, so a busy feed costs
one SQL read per event per instance, not per subscriber.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator

import orjson

from authority.context import Services
from authority.protocol import FEED_EVENT_READY, FEED_EVENT_REVOCATION
from authority.settings import Settings
from authority.storage.events import RevocationEvent

from . import events

log = logging.getLogger("authority.revocations.feed")

EVENT_NAME = FEED_EVENT_REVOCATION
READY_NAME = FEED_EVENT_READY
RETRY_MS = 1000
PAGE = 500
HEARTBEAT = b": heartbeat\n\n"


def format_event(event: RevocationEvent) -> bytes:
    data = orjson.dumps(event.as_json())
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.id, EVENT_NAME.encode(), data)


def format_ready(cursor: int) -> bytes:
    data = orjson.dumps({"id": cursor})
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (cursor, READY_NAME.encode(), data)


def preamble(cursor: int) -> bytes:
    return b"retry: %d\nid: %d\n\n" % (RETRY_MS, cursor)


def farewell(cursor: int) -> bytes:
    """The last message of a stream whose instance is stopping: reconnect soon (spread
    over RETRY_MS/2 .. 3*RETRY_MS/2), from ``cursor``."""
    retry = RETRY_MS // 2 + secrets.randbelow(RETRY_MS + 1)
    return b"retry: %d\nid: %d\n\n" % (retry, cursor)


class FeedHub:
    """Follows ``revocation_events`` for every stream of one instance."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._events: list[RevocationEvent] = []
        self._floor = 0  # every event with floor < id <= tail is in _events
        self._tail = 0
        self._changed = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._start_lock = asyncio.Lock()

    @property
    def tail(self) -> int:
        """The highest event id this instance has read."""
        return self._tail

    @property
    def changed(self) -> asyncio.Event:
        """Set once, the next time new events arrive (then replaced by a fresh one)."""
        return self._changed

    async def start(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            self._tail = self._floor = await self._services.event_reader.last_id()
            self._tasks = [
                asyncio.create_task(self._listen(), name="revocation-feed-listen"),
                asyncio.create_task(self._follow(), name="revocation-feed-follow"),
            ]
            self._started = True

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._started = False

    def since(self, cursor: int) -> list[RevocationEvent] | None:
        """Events after ``cursor`` from memory, or None if memory no longer reaches back."""
        if cursor < self._floor:
            return None
        start = bisect.bisect_right(self._events, cursor, key=lambda e: e.id)
        return self._events[start:]

    def poke(self) -> None:
        """Read SQL now (tests, and writers in this very process)."""
        self._wake.set()

    def wake_streams(self) -> None:
        """Wake every stream now, without new events (they look at the drain then)."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            try:
                async for _ in self._services.hot.subscribe(events.CHANNEL):
                    delay = 0.1
                    self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("revocation feed subscription lost: %s", type(exc).__name__)
            # Whatever was published while not subscribed is read from SQL now.
            self._wake.set()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _follow(self) -> None:
        interval = self._services.settings.revocation_feed_poll_interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()
            try:
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("revocation feed read failed: %s", type(exc).__name__)

    async def _read(self) -> None:
        limit = self._services.settings.revocation_feed_buffer
        while True:
            batch = await events.read_after(
                self._services.event_reader, self._tail, PAGE, settings=self._services.settings
            )
            if not batch:
                return
            self._events.extend(batch)
            self._tail = batch[-1].id
            if len(self._events) > limit:
                dropped = len(self._events) - limit
                self._floor = self._events[dropped - 1].id
                del self._events[:dropped]
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()
            if len(batch) < PAGE:
                return


async def hub(services: Services) -> FeedHub:
    """This instance's hub (made by ``authority.app``), started on first use."""
    current = services.revocation_feed
    if not isinstance(current, FeedHub):  # wired by authority.app; nothing else is
        raise TypeError("the revocation feed hub is not wired")
    await current.start()
    return current


def _wanted(event: RevocationEvent, server_id: str, now: int, settings: Settings) -> bool:
    return event.concerns(server_id) and events.is_live(event, now, settings)


async def stream(
    services: Services,
    feed: FeedHub,
    *,
    server_id: str,
    cursor: int,
    ready_at: int,
    backlog: list[RevocationEvent],
) -> AsyncIterator[bytes]:
    """One subscriber's stream from ``cursor`` on, for the resource server ``server_id``.

    ``backlog``: the first page of live events after ``cursor`` as SQL held it, and
    ``ready_at`` the last event id SQL held then. The stream first catches up from SQL,
    page by page, to at least ``ready_at``, then says so (``ready``), then follows the
    hub. Ends after ``revocation_feed_max_duration`` seconds (once caught up), or when SQL
    fails (the client resumes with Last-Event-ID either way), or with ``farewell`` as
    soon as the instance drains.
    """
    settings = services.settings
    drain = services.drain
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.revocation_feed_max_duration
    yield preamble(cursor)
    # Catching up: only SQL knows every event up to ready_at (the hub may lag behind it,
    # or no longer hold them). A short page means SQL holds no later live event.
    page: list[RevocationEvent] = backlog
    while True:
        if drain.draining:
            yield farewell(cursor)
            return
        now = services.now()
        for event in page:
            if _wanted(event, server_id, now, settings):
                yield format_event(event)
            cursor = event.id
        if len(page) < PAGE:
            break
        try:
            page = await events.read_after(
                services.event_reader, cursor, PAGE, settings=settings, live_at=services.now()
            )
        except Exception as exc:
            log.warning("revocation feed catch-up failed: %s", type(exc).__name__)
            return
    # Every event up to ready_at that is not in the pages was not live: nothing to send.
    cursor = max(cursor, ready_at)
    yield format_ready(cursor)
    pending: list[RevocationEvent] | None = None
    while True:
        if drain.draining:
            yield farewell(cursor)
            return
        changed = feed.changed
        pending = feed.since(cursor)
        if pending is None:
            try:
                pending = await events.read_after(
                    services.event_reader, cursor, PAGE, settings=settings
                )
            except Exception as exc:
                log.warning("revocation feed catch-up failed: %s", type(exc).__name__)
                return
        if pending:
            now = services.now()
            for event in pending:
                if event.id > cursor:
                    if _wanted(event, server_id, now, settings):
                        yield format_event(event)
                    cursor = event.id
            continue
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        try:
            await asyncio.wait_for(
                changed.wait(), min(settings.revocation_feed_heartbeat, remaining)
            )
        except TimeoutError:
            if deadline - loop.time() <= 0:
                return
            yield HEARTBEAT
