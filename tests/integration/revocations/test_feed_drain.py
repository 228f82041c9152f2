"""A feed stream ends as soon as its instance drains: a last ``retry:`` and ``id:``, so its
follower reconnects elsewhere and resumes where it was (over real sockets and SIGTERM:
``tests/integration/postgres/test_served.py``)."""

from __future__ import annotations

import asyncio
import re

from authority.context import Services
from authority.revocations import feed


def wired_hub(services: Services) -> feed.FeedHub:
    """The instance's hub, not started: nothing arrives, so a stream waits on it."""
    hub = services.revocation_feed
    assert isinstance(hub, feed.FeedHub)
    return hub


async def test_a_waiting_stream_ends_with_a_retry_hint_when_the_instance_drains(
    services: Services,
) -> None:
    hub = wired_hub(services)
    cursor = await services.event_reader.last_id()
    stream = feed.stream(
        services, hub, server_id="rs_none", cursor=cursor, ready_at=cursor, backlog=[]
    )
    assert (await anext(stream)).startswith(b"retry: 1000\n")
    assert b"event: ready" in await anext(stream)
    waiting = asyncio.ensure_future(anext(stream))  # waits for events or a heartbeat
    await asyncio.sleep(0)
    assert not waiting.done()
    services.drain.begin()
    last = await asyncio.wait_for(waiting, 5)
    match = re.fullmatch(rb"retry: (\d+)\nid: (\d+)\n\n", last)
    assert match is not None
    assert 500 <= int(match.group(1)) <= 1500
    assert int(match.group(2)) == cursor
    assert [chunk async for chunk in stream] == []  # and nothing after it


async def test_a_stream_opened_while_draining_ends_at_once(services: Services) -> None:
    hub = wired_hub(services)
    services.drain.begin()
    stream = feed.stream(services, hub, server_id="rs_none", cursor=7, ready_at=7, backlog=[])
    chunks = [chunk async for chunk in stream]
    assert len(chunks) == 2 and chunks[1].startswith(b"retry: ")
    assert chunks[1].endswith(b"id: 7\n\n")
