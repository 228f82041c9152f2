"""Revocation events are numbered in commit order, so "everything after N" has no gaps."""

from __future__ import annotations

import asyncio

import pytest

from authority.context import Services
from authority.revocations import events
from authority.storage.events import RevocationEvent
from authority.storage.sql import events as sql_events


async def test_a_later_writer_waits_for_the_earlier_ones_commit(
    services: Services, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("SQLite has one writer at a time: ids commit in order by construction")
    first = await services.engine.connect()
    transaction = await first.begin()
    early = await sql_events.record(first, kind="agent", now=1, expires_at=2, agent_id="agt_1")

    async def later() -> RevocationEvent:
        async with services.engine.begin() as conn:
            return await sql_events.record(
                conn, kind="agent", now=1, expires_at=2, agent_id="agt_2"
            )

    task = asyncio.create_task(later())
    await asyncio.sleep(0.3)
    # Without the lock the later event would be committed now, with a higher id than an
    # event not yet visible: a reader that saw it would skip the earlier one for good.
    assert not task.done()
    assert await events.read_after(services.event_reader, 0, 10, settings=services.settings) == []
    await transaction.commit()
    await first.close()
    late = await asyncio.wait_for(task, 5)
    assert late.id > early.id
    after = await events.read_after(services.event_reader, 0, 10, settings=services.settings)
    assert [e.id for e in after] == [early.id, late.id]


async def test_event_json_omits_absent_members() -> None:
    event = RevocationEvent(id=3, kind="owner", time=10, expires_at=75, owner_id="own_1")
    assert event.as_json() == {
        "id": 3,
        "kind": "owner",
        "time": 10,
        "expires_at": 75,
        "owner_id": "own_1",
    }
