"""Concurrent changes of one object all take effect, one after the other, each recorded.

A registry flow reads the row, decides, and has its port replace the row only if it is
still the one read; a writer that lost the race reads and decides again
(``management.records.until_written``), as it would have after waiting for a row lock.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from authority.context import Services
from authority.errors import Conflict
from authority.management import records
from authority.storage.agents import AgentRow, AgentStore
from authority.storage.registry import STALE, Stale, Taken, Written
from authority.storage.schema import ledger_entries

from .conftest import Keys
from .test_registry_ledger import entries

WRITERS = 20


async def test_concurrent_changes_of_one_agent_all_apply_in_turn(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    owner = await keys.owner()
    agent = await keys.agent(owner)
    before = len(await entries(services))
    responses = await asyncio.gather(
        *(
            client.patch(
                f"/v1/agents/{agent['id']}",
                json={"description": f"change {i}"},
                headers=owner.headers,
            )
            for i in range(WRITERS)
        )
    )
    assert [r.status_code for r in responses] == [200] * WRITERS
    # Each change was decided on the row its predecessor left: every one is in the ledger.
    changes = [e["changes"]["description"] for e in (await entries(services))[before:]]
    assert sorted(changes) == sorted(f"change {i}" for i in range(WRITERS))
    final = await client.get(f"/v1/agents/{agent['id']}", headers=owner.headers)
    assert final.json()["description"] == changes[-1]


async def test_concurrent_levels_each_record_the_level_they_replaced(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    owner = await keys.owner()
    agent = await keys.agent(owner, autonomy_level=0)
    levels = [1, 2, 3, 0, 1, 2, 3, 0]
    responses = await asyncio.gather(
        *(
            client.post(
                f"/v1/agents/{agent['id']}/autonomy", json={"level": level}, headers=owner.headers
            )
            for level in levels
        )
    )
    assert all(r.status_code == 200 for r in responses)
    async with services.engine.connect() as conn:
        rows = await conn.execute(
            select(ledger_entries.c.body)
            .where(ledger_entries.c.kind == "autonomy_changed")
            .order_by(ledger_entries.c.id)
        )
        chain = [orjson.loads(body) for body in rows.scalars()]
    assert chain
    # A chain: each entry's previous level is the level the one before it set.
    previous = 0
    for change in chain:
        assert change["previous_level"] == previous
        previous = change["level"]
    final = await client.get(f"/v1/agents/{agent['id']}", headers=owner.headers)
    assert final.json()["autonomy_level"] == previous


class _AlwaysStale:
    """An agents port whose replacements always lose to another writer."""

    def __init__(self, store: AgentStore) -> None:
        self.store = store
        self.replacements = 0

    async def get(self, agent_id: str, *, owner_id: str | None = None) -> AgentRow | None:
        return await self.store.get(agent_id, owner_id=owner_id)

    async def replace(
        self, expected: AgentRow, new: AgentRow, **_: Any
    ) -> Written[AgentRow] | Stale | Taken:
        self.replacements += 1
        return STALE


async def test_a_write_that_keeps_losing_gives_up_with_a_conflict(
    client: httpx.AsyncClient, keys: Keys, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await keys.owner()
    agent = await keys.agent(owner)
    stale = _AlwaysStale(services.agent_store)
    monkeypatch.setattr(services, "agent_store", stale)
    response = await client.patch(
        f"/v1/agents/{agent['id']}", json={"name": "renamed"}, headers=owner.headers
    )
    assert response.status_code == 409
    assert response.json()["error_description"] == records.BUSY
    assert stale.replacements == records.ATTEMPTS


async def test_until_written_returns_the_first_current_write() -> None:
    answers: list[Written[str] | Stale] = [STALE, STALE, Written("row")]

    async def attempt() -> Written[str] | Stale:
        return answers.pop(0)

    assert await records.until_written(attempt) == Written("row")
    assert answers == []

    async def never() -> Written[str] | Stale:
        return STALE

    with pytest.raises(Conflict):
        await records.until_written(never)
