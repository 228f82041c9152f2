"""Bytes through the gateway: ASGI in, httpx2 out, and back, without holding whole bodies.

Headers: RFC 9110 §7.6.1 hop-by-hop fields (``Connection`` and every field it names,
``Keep-Alive``, ``Proxy-*``, ``TE``, ``Trailer``, ``Transfer-Encoding``, ``Upgrade``) are
never forwarded in either direction, nor the agent's ``Authorization`` and ``DPoP`` (no
token passthrough), nor ``Host`` and ``Content-Length`` (recomputed). Upstream answers are
asked for without content coding, so that masking and credential stripping see the bytes.

``Tap`` digests a body as it streams (SHA-256 of the whole, a bounded head for the
record); ``Scrubber`` replaces every upstream secret in a stream, a secret split across two
chunks included, holding back only as many bytes as the longest secret could still need.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, MutableMapping
from typing import Any

from authority.gateway.contracts import RecordedBody
from authority.gateway.credentials import REDACTED

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
#: Request headers the gateway never forwards: the agent's credentials, and what the
#: client library sets itself.
NOT_FORWARDED = frozenset({"authorization", "dpop", "host", "content-length", "accept-encoding"})
#: Response headers dropped: the body may change length (masking, stripping).
NOT_RETURNED = frozenset({"content-length", "content-encoding"})


#: Headers the gateway decides on: one copy of each, or the request is refused, so that
#: what is checked is what the upstream receives (an upstream may read the first copy).
SINGLE_HEADERS = frozenset(
    {"authorization", "dpop", "mcp-method", "mcp-name", "mcp-session-id", "mcp-protocol-version"}
)


def repeats_a_checked_header(scope: Scope) -> bool:
    """True when a header of ``SINGLE_HEADERS`` comes more than once."""
    seen: set[str] = set()
    for key, _ in scope["headers"]:
        name = key.decode("latin-1").lower()
        if name in SINGLE_HEADERS:
            if name in seen:
                return True
            seen.add(name)
    return False


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for name, member in pairs:
        if name in value:
            raise ValueError("an object repeats a member")
        value[name] = member
    return value


def loads_unique(data: bytes | str) -> Any:
    """JSON whose objects never repeat a member (RFC 8259 §4 leaves a repeated member to
    the parser: the gateway forwards the bytes it checked, so a parser upstream that
    keeps the other copy must never see a repeated one). Raises ``ValueError``."""
    return json.loads(data, object_pairs_hook=_unique_members)


def header_map(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (a repeated header: its last value)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _connection_named(headers: Iterable[tuple[str, str]]) -> set[str]:
    named: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            named.update(t.strip().lower() for t in value.split(",") if t.strip())
    return named


def request_headers(scope: Scope, *, drop: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The agent's headers as forwarded: hop-by-hop, credentials and ``drop`` removed."""
    pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    removed = HOP_BY_HOP | NOT_FORWARDED | _connection_named(pairs) | {d.lower() for d in drop}
    kept = [(k, v) for k, v in pairs if k.lower() not in removed]
    kept.append(("accept-encoding", "identity"))
    return kept


def response_headers(
    headers: Iterable[tuple[str, str]], scrubber: Scrubber, *, drop: Iterable[str] = ()
) -> list[tuple[bytes, bytes]]:
    """The upstream's headers as returned: hop-by-hop and length removed, secrets stripped."""
    pairs = list(headers)
    removed = HOP_BY_HOP | NOT_RETURNED | _connection_named(pairs) | {d.lower() for d in drop}
    return [
        (k.lower().encode("latin-1"), scrubber.whole(v.encode("latin-1")))
        for k, v in pairs
        if k.lower() not in removed
    ]


class Tap:
    """Digest and head of a body that passes in chunks."""

    def __init__(self, head_bytes: int) -> None:
        self._hash = hashlib.sha256()
        self._head = bytearray()
        self._limit = head_bytes
        self.size = 0

    def feed(self, chunk: bytes) -> bytes:
        self._hash.update(chunk)
        self.size += len(chunk)
        room = self._limit - len(self._head)
        if room > 0:
            self._head += chunk[:room]
        return chunk

    def recorded(self) -> RecordedBody:
        digest = base64.urlsafe_b64encode(self._hash.digest()).rstrip(b"=").decode("ascii")
        return RecordedBody(
            digest="sha-256:" + digest,
            size=self.size,
            head=bytes(self._head),
            truncated=self.size > len(self._head),
        )


class Scrubber:
    """Replaces each secret in a byte stream with ``[redacted]``."""

    def __init__(self, secrets: Iterable[bytes]) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._keep = max((len(s) for s in self._secrets), default=1) - 1
        self._pending = b""

    def whole(self, data: bytes) -> bytes:
        for secret in self._secrets:
            data = data.replace(secret, REDACTED)
        return data

    def feed(self, chunk: bytes) -> bytes:
        if not self._secrets:
            return chunk
        data = self.whole(self._pending + chunk)
        # The last ``keep`` bytes may be the start of a secret the next chunk completes.
        cut = max(0, len(data) - self._keep)
        self._pending = data[cut:]
        return data[:cut]

    def finish(self) -> bytes:
        rest, self._pending = self.whole(self._pending), b""
        return rest


async def request_body(receive: Receive, tap: Tap) -> AsyncIterator[bytes]:
    """The agent's request body, chunk by chunk as it arrives, through ``tap``."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield tap.feed(chunk)
        if not message.get("more_body", False):
            return


class TooLarge(Exception):
    """A body to be read whole is larger than ``max_message_bytes``."""


async def read_whole(receive: Receive, limit: int) -> bytes:
    """The whole request body, or ``TooLarge`` past ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def send_simple(
    send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]]
) -> None:
    all_headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def until_disconnect(receive: Receive, work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` (a relay whose request body is already read) until it ends or the agent
    goes away; then the upstream's answer is dropped (closing an answer's stream is how a
    2026-07-28 client cancels its request, and a handshake-era stream must not outlive
    its reader)."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    relay = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({relay, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (relay, watch):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    if relay.done() and not relay.cancelled():
        relay.result()
