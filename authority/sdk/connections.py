"""A few persistent HTTP/1.1 connections to the authority, for the one request an enforcement
point makes on the hot path: the RFC 7662 introspection POST.

A general client's pool does bookkeeping per request that grows with the requests in
flight (and httpx's probes the async library on each one); this does none: an idle
connection is popped from a stack, a request with no free connection waits in a FIFO
queue and is handed the next one released, each O(1). One request at a time per
connection (no pipelining). A connection the authority closed, or idle longer than
``keepalive``, is dropped before use rather than written to.

The requests are written and the answers read by ``h11``'s HTTP/1.1 state machine, not by
hand: interim (1xx) answers are skipped, framing is strict (two framings, a malformed
length or chunk size, an unknown transfer coding: refused), and a connection is used again
only when both sides finished the exchange cleanly and nothing more arrived on it. Bytes
that arrive while no request waits for them close the connection: no stray answer is ever
read as another request's.

Anything unexpected (refused, reset, timed out, malformed, too large) raises
``AuthorityUnreachable`` and closes that connection: the caller fails closed. Nothing is
retried: a request that may have reached the authority may have spent a single-use token.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import h11

__all__ = ["AuthorityConnections", "AuthorityUnreachable", "HttpAnswer"]

#: Larger answers are refused: an introspection answer is a few hundred bytes.
MAX_BODY = 1 << 20
MAX_HEAD = 1 << 16
MAX_INTERIM = 8


class AuthorityUnreachable(Exception):
    """The request got no complete, well-formed answer."""


@dataclass(slots=True)
class HttpAnswer:
    status: int
    body: bytes


class _Link(asyncio.Protocol):
    """The bytes received on one connection, kept until read. Bytes that arrive while no
    request is waiting for its answer belong to none: the connection is closed then, so
    that no stray answer is ever read as the next request's."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.closed = False
        self.busy = False
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, if not always a subclass of asyncio's (uvloop's is not).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy or len(self.buffer) > MAX_HEAD + MAX_BODY:
            self.abort()  # unasked for, or more than any answer may be
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def receive(self) -> bytes:
        """What arrived since the last call; ``b""`` once the connection is closed."""
        while not self.buffer:
            if self.closed:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


@dataclass(slots=True)
class _Connection:
    link: _Link
    http: h11.Connection
    idle_since: float = 0.0

    def usable(self, now: float, keepalive: float) -> bool:
        transport = self.link.transport
        return (
            not self.link.closed
            and not self.link.buffer
            and transport is not None
            and not transport.is_closing()
            and now - self.idle_since < keepalive
        )

    def close(self) -> None:
        self.link.abort()

    async def exchange(self, request: h11.Request, body: bytes) -> tuple[HttpAnswer, bool]:
        """One request and its answer: the status and body, and whether the connection may
        carry another request. Anything not a well-formed HTTP/1.1 answer raises."""
        http, link = self.http, self.link
        assert link.transport is not None
        link.busy = True
        link.transport.write(
            http.send(request) + http.send(h11.Data(data=body)) + http.send(h11.EndOfMessage())
        )
        status, received, interim = 0, bytearray(), 0
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                http.receive_data(await link.receive())
            elif isinstance(event, h11.Data):
                received += event.data
                if len(received) > MAX_BODY:
                    raise ValueError("answer too large")
            elif isinstance(event, h11.Response):
                names = {name for name, _ in event.headers}
                if b"content-length" in names and b"transfer-encoding" in names:
                    raise ValueError("two framings")  # RFC 9112 section 6.3: an error
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                break
            elif not isinstance(event, h11.InformationalResponse):
                raise EOFError("no complete answer")  # ConnectionClosed, or PAUSED
            else:
                interim += 1  # skipped: the answer follows (RFC 9110 section 15.2)
                if interim > MAX_INTERIM:
                    raise ValueError("too many interim answers")
        link.busy = False
        keep = (
            http.our_state is h11.DONE
            and http.their_state is h11.DONE
            and not link.buffer
            and not http.trailing_data[0]
        )
        if keep:
            http.start_next_cycle()
        return HttpAnswer(status, bytes(received)), keep


@dataclass
class AuthorityConnections:
    """Persistent connections to the origin of ``url`` (http or https)."""

    url: str
    timeout: float = 5.0
    max_connections: int = 16
    #: Below uvicorn's default keep-alive of 5 s, so the server never closes one under us.
    keepalive: float = 4.0
    ssl_context: ssl.SSLContext | None = None
    clock: Callable[[], float] = time.monotonic
    _idle: list[_Connection] = field(default_factory=list, init=False)
    _queue: deque[asyncio.Future[_Connection | None]] = field(default_factory=deque, init=False)
    _open: int = field(default=0, init=False)
    _closed: bool = field(default=False, init=False)
    _requests: dict[tuple[str, int, tuple[tuple[bytes, bytes], ...]], h11.Request] = field(
        default_factory=dict, init=False
    )

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("an http or https URL is needed")
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.authority = parts.netloc.rpartition("@")[2]  # the Host header: no userinfo
        self._host = self.authority.encode("ascii")
        if self.tls and self.ssl_context is None:
            self.ssl_context = ssl.create_default_context()

    def origin_of(self, url: str) -> bool:
        """``url`` is on this origin (the same scheme, host and port)."""
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return (parts.scheme, parts.hostname, port) == (
            "https" if self.tls else "http",
            self.host,
            self.port,
        )

    async def post(
        self,
        target: str,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        *,
        on_send: Callable[[], None] | None = None,
    ) -> HttpAnswer:
        """POST ``body`` to ``target`` (a path with its query) with ``headers`` (name and
        value pairs, encoded); the status and body of the answer. ``on_send`` is called once
        a connection is had, just before the request is written (with nothing awaited in
        between)."""
        try:
            request = self._head(target, len(body), headers)  # before any connection is had
            async with asyncio.timeout(self.timeout):
                connection = await self._acquire()
                if on_send is not None:
                    on_send()
                try:
                    answer, keep = await connection.exchange(request, body)
                except BaseException:
                    self._discard(connection)  # timed out or broken: its late bytes unread
                    raise
                if keep:
                    self._release(connection)
                else:
                    self._discard(connection)
                return answer
        except (OSError, TimeoutError, EOFError, ValueError, h11.ProtocolError) as exc:
            raise AuthorityUnreachable(type(exc).__name__) from None

    def _head(
        self, target: str, length: int, headers: Sequence[tuple[bytes, bytes]]
    ) -> h11.Request:
        """The request head, validated once: the same target, headers and length recur on
        every request (h11 checks each header it is given)."""
        key = (target, length, tuple(headers))
        request = self._requests.get(key)
        if request is None:
            if len(self._requests) >= 64:
                self._requests.clear()
            request = self._requests[key] = h11.Request(
                method=b"POST",
                target=target.encode("ascii"),
                headers=[(b"Host", self._host), (b"Content-Length", b"%d" % length), *headers],
            )
        return request

    async def aclose(self) -> None:
        self._closed = True
        for connection in self._idle:
            connection.close()
        self._idle.clear()
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_result(None)

    # --- the pool -------------------------------------------------------------------
    async def _acquire(self) -> _Connection:
        while True:
            if self._closed:
                raise OSError("closed")
            now = self.clock()
            while self._idle:
                connection = self._idle.pop()
                if connection.usable(now, self.keepalive):
                    return connection
                self._open -= 1
                connection.close()
            if self._open < self.max_connections:
                return await self._connect()
            waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
            self._queue.append(waiter)
            try:
                handed = await waiter
            except _Reopen:
                continue  # a place was freed: open a connection of its own
            except BaseException:
                self._pass_on(waiter)
                raise
            if handed is None:
                raise OSError("closed")
            return handed

    def _pass_on(self, waiter: asyncio.Future[_Connection | None]) -> None:
        """Given up while a connection or a place was being handed over: pass it on."""
        if not waiter.done() or waiter.cancelled():
            return
        if waiter.exception() is not None:
            self._wake_one()
            return
        late = waiter.result()
        if late is not None:
            self._release(late)

    async def _connect(self) -> _Connection:
        self._open += 1
        try:
            _, link = await asyncio.get_running_loop().create_connection(
                _Link,
                self.host,
                self.port,
                ssl=self.ssl_context if self.tls else None,
                server_hostname=self.host if self.tls else None,
            )
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise
        return _Connection(link, h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD))

    def _release(self, connection: _Connection) -> None:
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        if self._closed:
            self._discard(connection)
            return
        connection.idle_since = self.clock()
        self._idle.append(connection)

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        """A place was freed: the first waiter opens a connection of its own."""
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_exception(_Reopen())
                return


class _Reopen(Exception):
    pass
