"""Server-Sent Events decoding (HTML Living Standard §9.2.6, "Interpreting an event
stream") on httpx-sse, with what the revocation feed's resumption needs added.

httpx-sse splits lines on CR, LF and CRLF only (``httpx``'s ``aiter_lines`` also splits
on U+2028 and the like, which may appear inside an event's data) and decodes UTF-8
whatever the ``Content-Type`` says, as the standard requires.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass

import httpx
from httpx_sse import EventSource

__all__ = ["Message", "messages_of", "parse_sse"]


@dataclass(frozen=True, slots=True)
class Message:
    """One dispatched Server-Sent Events message."""

    event: str
    data: str
    last_event_id: str


async def messages_of(
    chunks: AsyncIterable[bytes],
    last_event_id: str,
    on_retry: Callable[[int], None] | None,
) -> AsyncGenerator[Message, None]:
    """Messages from the bytes of a stream, decoded by httpx-sse, with three additions.

    The last event id carries over from the previous connection (the standard's "last
    event ID buffer" outlives a reconnection; httpx-sse starts each stream empty): a
    leading ``id:`` line restores it. Blocks without data are not dispatched (the
    standard); one that moves the last event id yields an empty message, how the
    authority's stream says where it starts (httpx-sse would otherwise turn every
    heartbeat after an ``id`` into a message). And a negative ``retry`` is ignored.
    """
    if any(c in last_event_id for c in "\r\n\x00"):
        raise ValueError("an event id is one line without NUL")

    async def with_position() -> AsyncIterator[bytes]:
        if last_event_id:
            yield b"id: " + last_event_id.encode() + b"\n"
        async for chunk in chunks:
            yield chunk

    stream = httpx.Response(
        200, headers={"content-type": "text/event-stream; charset=utf-8"}, content=with_position()
    )
    current = last_event_id
    try:
        async with contextlib.aclosing(EventSource(stream).aiter_sse()) as decoded:
            async for sse in decoded:
                if sse.retry is not None and sse.retry >= 0 and on_retry is not None:
                    on_retry(sse.retry)
                if sse.data:
                    current = sse.id
                    yield Message(sse.event, sse.data, current)
                elif sse.id != current:
                    current = sse.id
                    yield Message("", "", current)
    finally:
        await stream.aclose()


async def parse_sse(
    lines: AsyncIterable[str],
    last_event_id: str = "",
    on_retry: Callable[[int], None] | None = None,
) -> AsyncGenerator[Message, None]:
    """Messages from a stream of lines (line terminators already removed).

    A message is complete at the blank line that ends it; only then does its ``id``
    become the last event id (a connection cut inside a message leaves it unchanged, so
    that message is sent again on resumption). The last event id carries over from one
    message to the next, and from ``last_event_id``. A block whose ``id`` moves the last
    event id but carries no ``data`` yields a message with empty ``data``: that is how a
    stream tells the client where it starts. ``RevocationFeed`` parses the same way.
    """

    async def chunks() -> AsyncIterator[bytes]:
        async for line in lines:
            yield line.encode() + b"\n"

    async with contextlib.aclosing(messages_of(chunks(), last_event_id, on_retry)) as messages:
        async for message in messages:
            yield message
