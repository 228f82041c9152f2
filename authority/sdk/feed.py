"""A client for the authority's revocation feed (Server-Sent Events), for resource servers
that verify tokens locally and must hear about revocations within a second.

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
end of a stream, with ``Last-Event-ID``, so no event is missed and none is repeated.
It raises ``FeedError`` only when reconnecting cannot help (refused credentials). An
event that does not parse (``MalformedEvent``) is neither yielded nor skipped: the
position stays before it and the feed reconnects (not caught up), so a consumer never
moves past it.

Parsing follows the HTML Living Standard's "Server-sent events" interpretation rules
(fields, comments, the last event id kept across messages, ``retry``). Only ``httpx`` is
needed. The event members and what each kind revokes are described in
``authority.revocations.events``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import httpx

from authority import protocol

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


@dataclass(frozen=True, slots=True)
class Message:
    """One dispatched Server-Sent Events message."""

    event: str
    data: str
    last_event_id: str


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


async def parse_sse(
    lines: AsyncIterable[str],
    last_event_id: str = "",
    on_retry: Callable[[int], None] | None = None,
) -> AsyncIterator[Message]:
    """Messages from a stream of lines (line terminators already removed).

    A message is complete at the blank line that ends it; only then does its ``id``
    become the last event id (a connection cut inside a message leaves it unchanged, so
    that message is sent again on resumption). The last event id carries over from one
    message to the next. A block with an ``id`` but no ``data`` yields a message with
    empty ``data``: that is how a stream tells the client where it starts.
    """
    data: list[str] = []
    event = ""
    id_buffer = last_event_id
    saw_id = False
    async for line in lines:
        if line == "":
            last_event_id = id_buffer
            if data:
                yield Message(event or "message", "\n".join(data), last_event_id)
            elif saw_id:
                yield Message("", "", last_event_id)
            data, event, saw_id = [], "", False
            continue
        if line.startswith(":"):
            continue  # a comment: heartbeats
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id":
            if "\x00" not in value:
                id_buffer, saw_id = value, True
        elif name == "retry" and value.isascii() and value.isdigit() and on_retry is not None:
            on_retry(int(value))


def basic_auth(client_id: str, secret: str) -> httpx.BasicAuth:
    # RFC 6749 §2.3.1: form-urlencode both before HTTP Basic.
    return httpx.BasicAuth(quote_plus(client_id), quote_plus(secret))


class RevocationFeed:
    """Follow the feed forever, resuming with ``Last-Event-ID`` after every reconnect.

    Authenticate with ``client_secret`` (HTTP Basic, GET) or with ``assertion``, a
    callable returning a fresh RFC 7523 client assertion for each connection (POST).
    ``on_ready`` is called at each ``ready`` message (``caught_up`` turns True).
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        client_secret: str | None = None,
        assertion: Callable[[], str] | None = None,
        last_event_id: str | None = None,
        on_ready: Callable[[], None] | None = None,
        http: httpx.AsyncClient | None = None,
        read_timeout: float = 60.0,
        max_delay: float = 30.0,
    ) -> None:
        if (client_secret is None) == (assertion is None):
            raise ValueError("pass exactly one of client_secret and assertion")
        self.url = url
        self.client_id = client_id
        self._secret = client_secret
        self._assertion = assertion
        self.last_event_id = last_event_id or ""
        self.caught_up = False
        self._on_ready = on_ready
        self._http = http
        self._timeout = httpx.Timeout(10.0, read=read_timeout)
        self._delay = 1.0
        self._max_delay = max_delay

    def _set_retry(self, milliseconds: int) -> None:
        self._delay = max(0.05, milliseconds / 1000)

    async def events(self) -> AsyncGenerator[RevocationEvent, None]:
        http = self._http or httpx.AsyncClient()
        backoff = 0.0
        try:
            while True:
                try:
                    async for event in self._stream(http):
                        backoff = 0.0
                        yield event
                    backoff = 0.0
                except (httpx.TransportError, _Retry):
                    backoff = min(max(backoff * 2, self._delay), self._max_delay)
                await asyncio.sleep(backoff or self._delay)
        finally:
            if self._http is None:
                await http.aclose()

    async def _stream(self, http: httpx.AsyncClient) -> AsyncIterator[RevocationEvent]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        auth: httpx.Auth | None = None
        if self._assertion is not None:
            form = {
                "client_id": self.client_id,
                "client_assertion_type": JWT_BEARER,
                "client_assertion": self._assertion(),
            }
            request = http.build_request(
                "POST", self.url, headers=headers, data=form, timeout=self._timeout
            )
        else:
            request = http.build_request("GET", self.url, headers=headers, timeout=self._timeout)
            auth = basic_auth(self.client_id, self._secret or "")
        response = await http.send(request, auth=auth, stream=True)
        try:
            if response.status_code != 200:
                await response.aread()
                if response.status_code in (429, 502, 503, 504):
                    raise _Retry()
                raise FeedError(response.status_code, _error_code(response))
            messages = parse_sse(response.aiter_lines(), self.last_event_id, self._set_retry)
            async for message in messages:
                if message.event == EVENT_NAME and message.data:
                    try:
                        event = RevocationEvent.from_json(message.data)
                    except MalformedEvent:
                        # Fail closed: not trusted, not skipped (last_event_id unchanged).
                        raise _Retry() from None
                    self.last_event_id = message.last_event_id
                    yield event
                    continue
                self.last_event_id = message.last_event_id
                if message.event == READY_NAME:
                    self.caught_up = True
                    if self._on_ready is not None:
                        self._on_ready()
        finally:
            self.caught_up = False
            await response.aclose()


class _Retry(Exception):
    """The feed is briefly unavailable: reconnect after a delay."""


def _error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else None
