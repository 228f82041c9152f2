"""A client for the authority's revocation feed (Server-Sent Events, HTML Living Standard
§9.2), for resource servers that verify tokens locally and must hear about revocations
within a second. It is the only one: ``authority.sdk.revocations.FeedFollower`` (what the
middleware and the gateway run) follows the feed with it.

    feed = RevocationFeed(
        "https://authority.example/v1/revocations/feed",
        client_id="rs_...", client_secret="rss_...",
    )
    async for event in feed.events():
        cache.apply(event)
    # feed.caught_up: every event this server could need up to now has been yielded

A first connection (no ``last_event_id``) replays every revocation whose tokens may still
be alive, then the authority sends its ``ready`` message: ``caught_up`` becomes True, and
until then local verification alone must not be trusted (ask introspection instead).
``caught_up`` is False again from a lost connection until the next ``ready``. To resume
after a restart, persist ``last_event_id`` only together with the revocations applied up
to it; otherwise start without it (the replay is what a restarted server needs).

``events()`` reconnects by itself after a dropped connection, a server restart or the
end of a stream (an authority shutting down ends its streams with a short ``retry:``),
with ``Last-Event-ID``, so no event is missed and none is repeated; it waits the
stream's ``retry:`` time, backs off on failures and honours ``Retry-After``. It raises
``FeedError`` only when reconnecting cannot help (refused credentials). An event that
does not parse (``MalformedEvent``) is neither yielded nor skipped: the position stays
before it and the feed reconnects (not caught up), so a consumer never moves past it.

The stream is decoded by httpx-sse (``authority.sdk.sse``). The event
members and what each kind revokes are described in ``authority.revocations.events``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import httpx

from authority import protocol
from authority.sdk.retry import exponential, parse_retry_after
from authority.sdk.sse import Message as Message
from authority.sdk.sse import messages_of
from authority.sdk.sse import parse_sse as parse_sse

log = logging.getLogger("authority.sdk.feed")

JWT_BEARER = protocol.JWT_BEARER_ASSERTION
EVENT_NAME = protocol.FEED_EVENT_REVOCATION
#: The message that ends the catch-up: everything before it has been sent.
READY_NAME = protocol.FEED_EVENT_READY


class FeedError(Exception):
    """The feed refused the client (``status``, ``error``): reconnecting will not help."""

    def __init__(self, status: int, error: str | None) -> None:
        super().__init__(f"revocation feed refused: {status} {error or ''}".rstrip())
        self.status = status
        self.error = error


class MalformedEvent(ValueError):
    """A feed event that is not one the authority sends (the only error ``from_json`` raises).

    A follower that meets one must not trust what it knows past it, nor skip it: it stays
    at the position before that event and counts as not caught up.
    """


#: Each kind and the member that names what it revokes (``authority.revocations.events``).
EVENT_SUBJECTS = {
    "token": "jti",
    "delegation": "delegation_id",
    "agent": "agent_id",
    "owner": "owner_id",
    "tool": "tool",
}
#: NumericDate values beyond this are not times.
_MAX_TIME = 2**53
_MAX_ID_LENGTH = 256
#: A tool name (the registry allows 200 characters).
_MAX_TOOL_LENGTH = 200


def _reject_constant(_: str) -> Any:
    raise MalformedEvent("non-finite number")


def _time(value: object, name: str) -> int:
    # bool is an int subclass; floats (1e999 is infinity) are not what the feed sends.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_TIME:
        raise MalformedEvent(f"bad {name}")
    return value


def _optional_id(value: dict[str, Any], name: str, max_length: int = _MAX_ID_LENGTH) -> str | None:
    member = value.get(name)
    if member is None:
        return None
    if not isinstance(member, str) or not member or len(member) > max_length:
        raise MalformedEvent(f"bad {name}")
    return member


@dataclass(frozen=True, slots=True)
class RevocationEvent:
    id: int
    kind: str  # token | delegation | agent | owner | tool
    time: int
    expires_at: int | None = None
    jti: str | None = None
    delegation_id: str | None = None
    agent_id: str | None = None
    owner_id: str | None = None
    tool: str | None = None  # a retired tool's name

    @classmethod
    def from_json(cls, data: str) -> RevocationEvent:
        """Parse and check one event's ``data``; raise ``MalformedEvent`` and nothing else."""
        try:
            value = json.loads(data, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            raise MalformedEvent("not JSON") from None
        return cls.from_value(value)

    @classmethod
    def from_value(cls, value: object, *, require_id: bool = True) -> RevocationEvent:
        """Check a decoded event: every member has the type and range the feed sends."""
        if not isinstance(value, dict):
            raise MalformedEvent("not an object")
        event_id = _time(value.get("id"), "id") if require_id or "id" in value else 0
        kind = value.get("kind")
        if not isinstance(kind, str) or kind not in EVENT_SUBJECTS:
            # An unknown kind revokes something we cannot tell: never ignore it.
            raise MalformedEvent("unknown kind")
        expires = value.get("expires_at")
        event = cls(
            id=event_id,
            kind=kind,
            time=_time(value.get("time"), "time"),
            expires_at=None if expires is None else _time(expires, "expires_at"),
            jti=_optional_id(value, "jti"),
            delegation_id=_optional_id(value, "delegation_id"),
            agent_id=_optional_id(value, "agent_id"),
            owner_id=_optional_id(value, "owner_id"),
            tool=_optional_id(value, "tool", _MAX_TOOL_LENGTH),
        )
        if getattr(event, EVENT_SUBJECTS[kind]) is None:
            raise MalformedEvent(f"a {kind} event without its {EVENT_SUBJECTS[kind]}")
        return event


def basic_auth(client_id: str, secret: str) -> httpx.BasicAuth:
    # RFC 6749 §2.3.1: form-urlencode both before HTTP Basic.
    return httpx.BasicAuth(quote_plus(client_id), quote_plus(secret))


#: Answers that mean "not now" (a restart, a rate limit, a proxy between instances).
_RECONNECT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: The reconnection time until the stream sets one (the standard leaves it to the client).
DEFAULT_RETRY = 1.0


class RevocationFeed:
    """Follow the feed forever, resuming with ``Last-Event-ID`` after every reconnect.

    Authenticate with ``client_secret`` (HTTP Basic, GET), with ``assertion``, a callable
    returning a fresh RFC 7523 client assertion for each connection (POST: an assertion's
    ``jti`` is single use, so none is ever sent twice), or with any ``auth``.

    Reconnection: after a stream that ended, the stream's own reconnection time (its
    ``retry:`` field; 1 s until it sends one); after a failure (no connection, a 429 or a
    5xx, a stream that is not ``text/event-stream``, a malformed event) exponential
    backoff from that time up to ``max_delay``, with jitter; a ``Retry-After`` is waited
    for instead (capped at ``max_delay``). A refusal (401, 403, any other 4xx) is a
    ``FeedError``: reconnecting cannot help.

    ``on_ready`` is called at each ``ready`` message (``caught_up`` turns True),
    ``on_heard`` at every piece of the stream that arrives (heartbeats included).
    ``sleep``, ``clock`` and ``jitter`` are injectable so tests never wait.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        assertion: Callable[[], str] | None = None,
        auth: httpx.Auth | None = None,
        last_event_id: str | None = None,
        on_ready: Callable[[], None] | None = None,
        on_heard: Callable[[], None] | None = None,
        http: httpx.AsyncClient | None = None,
        read_timeout: float = 60.0,
        max_delay: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if sum(x is not None for x in (client_secret, assertion, auth)) > 1:
            raise ValueError("pass one of client_secret, assertion and auth")
        if (client_secret is not None or assertion is not None) and client_id is None:
            raise ValueError("client_secret and assertion need the client_id")
        if last_event_id and any(c in last_event_id for c in "\r\n\x00"):
            raise ValueError("an event id is one line without NUL")
        self.url = url
        self.client_id = client_id
        self._assertion = assertion
        self._auth: httpx.Auth | None = auth
        if client_secret is not None and client_id is not None:
            self._auth = basic_auth(client_id, client_secret)
        self.last_event_id = last_event_id or ""
        self.caught_up = False
        self._on_ready = on_ready
        self._on_heard = on_heard
        self._http = http
        self._timeout = httpx.Timeout(10.0, read=read_timeout)
        #: The stream's reconnection time, in seconds (``retry:``).
        self.retry = DEFAULT_RETRY
        self.max_delay = max_delay
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter

    def _set_retry(self, milliseconds: int) -> None:
        self.retry = min(self.max_delay, max(0.05, milliseconds / 1000))

    async def events(self) -> AsyncGenerator[RevocationEvent, None]:
        http = self._http or httpx.AsyncClient()
        failures = 0
        try:
            while True:
                asked: float | None = None
                try:
                    async for event in self._stream(http):
                        failures = 0
                        yield event
                    failures = 0
                except httpx.TransportError as exc:
                    failures += 1
                    log.info("revocation feed interrupted: %s", type(exc).__name__)
                except _Reconnect as exc:
                    failures += 1
                    asked = exc.retry_after
                    log.info("revocation feed interrupted: %s", exc.reason)
                await self._wait(self._delay(failures, asked))
        finally:
            if self._http is None:
                await http.aclose()

    def _delay(self, failures: int, asked: float | None) -> float:
        if asked is not None:
            return min(max(asked, self.retry), self.max_delay)
        if failures == 0:
            return self.retry
        return exponential(self.retry, self.max_delay, failures, self._jitter)

    async def _wait(self, seconds: float) -> None:
        if self._sleep is not None:
            await self._sleep(seconds)
        else:
            await asyncio.sleep(seconds)

    def _request(self, http: httpx.AsyncClient) -> httpx.Request:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        if self._assertion is None:
            return http.build_request("GET", self.url, headers=headers, timeout=self._timeout)
        form = {
            "client_id": self.client_id or "",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": self._assertion(),
        }
        return http.build_request(
            "POST", self.url, headers=headers, data=form, timeout=self._timeout
        )

    async def _chunks(self, response: httpx.Response) -> AsyncIterator[bytes]:
        """The stream's bytes; each is a sign of life (heartbeat comments included)."""
        async for chunk in response.aiter_bytes():
            if self._on_heard is not None:
                self._on_heard()
            yield chunk

    async def _stream(self, http: httpx.AsyncClient) -> AsyncIterator[RevocationEvent]:
        auth = self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT
        response = await http.send(self._request(http), auth=auth, stream=True)
        try:
            if response.status_code != 200:
                await response.aread()
                if response.status_code in _RECONNECT_STATUSES:
                    retry_after = response.headers.get("retry-after")
                    asked = parse_retry_after(retry_after, self._clock())
                    raise _Reconnect(f"HTTP {response.status_code}", asked)
                raise FeedError(response.status_code, _error_code(response))
            content_type = response.headers.get("content-type", "").partition(";")[0]
            if content_type.strip().lower() != "text/event-stream":
                raise _Reconnect("not an event stream")
            messages = messages_of(self._chunks(response), self.last_event_id, self._set_retry)
            async with contextlib.aclosing(messages):
                async for message in messages:
                    if message.event == EVENT_NAME and message.data:
                        try:
                            event = RevocationEvent.from_json(message.data)
                        except MalformedEvent:
                            # Fail closed: not trusted, not skipped (last_event_id unchanged).
                            log.warning("revocation feed sent a malformed event")
                            raise _Reconnect("a malformed event") from None
                        yield event
                        # Only once the consumer took it: an event whose handling raised
                        # (or was never resumed) is asked for again, never skipped.
                        self.last_event_id = message.last_event_id
                        continue
                    self.last_event_id = message.last_event_id
                    if message.event == READY_NAME:
                        self.caught_up = True
                        if self._on_ready is not None:
                            self._on_ready()
        finally:
            self.caught_up = False
            await response.aclose()


class _Reconnect(Exception):
    """The feed is briefly unavailable: reconnect after a delay (``retry_after``, if asked)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else None
