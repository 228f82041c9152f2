"""A few persistent HTTP/1.1 connections to the authority, for the one request an enforcement
point makes on the hot path: the RFC 7662 introspection POST.

A general client's pool does bookkeeping per request that grows with the requests in
flight (and httpx's probes the async library on each one); this does none: an idle
connection is popped from a stack, a request with no free connection waits in a FIFO
queue and is handed the next one released, each O(1). One request at a time per
connection (no pipelining). A connection the authority closed, or idle longer than
``keepalive``, is dropped before use rather than written to.

Anything unexpected (refused, reset, timed out, malformed, too large) raises
``AuthorityUnreachable`` and closes that connection: the caller fails closed. Nothing is
retried: a request that may have reached the authority may have spent a single-use token.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["AuthorityConnections", "AuthorityUnreachable", "HttpAnswer"]

#: Larger answers are refused: an introspection answer is a few hundred bytes.
MAX_BODY = 1 << 20
MAX_HEAD = 1 << 16


class AuthorityUnreachable(Exception):
    """The request got no complete, well-formed answer."""


@dataclass(slots=True)
class HttpAnswer:
    status: int
    body: bytes


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def usable(self, now: float, keepalive: float) -> bool:
        return (
            not self.reader.at_eof()
            and not self.writer.is_closing()
            and now - self.idle_since < keepalive
        )

    def close(self) -> None:
        self.writer.transport.abort()


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

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("an http or https URL is needed")
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.authority = parts.netloc.rpartition("@")[2]  # the Host header: no userinfo
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
        headers: bytes,
        body: bytes,
        *,
        on_send: Callable[[], None] | None = None,
    ) -> HttpAnswer:
        """POST ``body`` to ``target`` (a path with its query) with ``headers`` (each
        ``Name: value\\r\\n``, already encoded); the status and body of the answer.
        ``on_send`` is called once a connection is had, just before the request is written
        (with nothing awaited in between)."""
        head = (
            f"POST {target} HTTP/1.1\r\nHost: {self.authority}\r\nContent-Length: {len(body)}\r\n"
        ).encode("ascii")
        try:
            async with asyncio.timeout(self.timeout):
                connection = await self._acquire()
                if on_send is not None:
                    on_send()
                try:
                    connection.writer.write(head + headers + b"\r\n" + body)
                    answer, keep = await _read_answer(connection.reader)
                except BaseException:
                    self._discard(connection)
                    raise
                if keep:
                    self._release(connection)
                else:
                    self._discard(connection)
                return answer
        except (OSError, TimeoutError, EOFError, ValueError, asyncio.IncompleteReadError) as exc:
            raise AuthorityUnreachable(type(exc).__name__) from None
        except asyncio.LimitOverrunError:
            raise AuthorityUnreachable("answer head too large") from None

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
            reader, writer = await asyncio.open_connection(
                self.host,
                self.port,
                ssl=self.ssl_context if self.tls else None,
                server_hostname=self.host if self.tls else None,
                limit=MAX_HEAD,
            )
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise
        return _Connection(reader, writer)

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


async def _read_answer(reader: asyncio.StreamReader) -> tuple[HttpAnswer, bool]:
    """One HTTP/1.1 answer: its status and body, and whether the connection stays open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise ValueError("not HTTP/1.x")
    status = int(rest[:3])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError("malformed header")
            headers[name.strip().lower()] = value.strip()
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if not 0 <= length <= MAX_BODY:
            raise ValueError("answer too large")
        body = await reader.readexactly(length)
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    else:
        body = await reader.read(MAX_BODY + 1)
        if len(body) > MAX_BODY or not reader.at_eof():
            raise ValueError("answer too large")
        keep = False
    return HttpAnswer(status, body), keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers
            return bytes(body)
        if size < 0 or len(body) + size > MAX_BODY:
            raise ValueError("answer too large")
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("malformed chunk")
