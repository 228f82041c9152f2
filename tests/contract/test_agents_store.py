"""The agents port's contract (``authority.storage.agents``), on every backend."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from authority.ledger.entries import MalformedEntry
from authority.storage.agents import AgentRow
from authority.storage.registry import STALE, TAKEN, NewEvent, Taken, Written

from .registry_support import (
    MALFORMED,
    WRITERS,
    Registries,
    agent,
    changed,
    concurrently,
    ids,
    registries,
    seed_owner,
)
from .support import NOW

__all__ = ["registries"]  # the fixture


@pytest.fixture
async def owners(registries: Registries) -> Registries:
    await seed_owner(registries, "own_1", "alice")
    await seed_owner(registries, "own_2", "bob")
    return registries


def _quarantine(now: int = NOW + 5) -> tuple[dict[str, Any], NewEvent]:
    record = {"agent_id": "agt_1", "owner_id": "own_1", "actor": "key_1", "reason": "odd"}
    event = NewEvent(
        kind="agent", time=now, expires_at=now + 400, agent_id="agt_1", owner_id="own_1"
    )
    return record, event


async def test_an_agent_is_created_with_its_entry_and_read_back(owners: Registries) -> None:
    entry = changed("agent", "agt_1", owner_id="own_1", agent_id="agt_1")
    created = await owners.agents.create(agent(), [entry])
    assert created == agent()  # the keys come back as the document they were
    assert await owners.agents.get("agt_1") == created
    assert await owners.agents.get("agt_1", owner_id="own_1") == created
    assert [e["object_id"] for e in await owners.store.ledger()] == ["agt_1"]


async def test_another_owners_agent_reads_as_missing(owners: Registries) -> None:
    await owners.agents.create(agent(), ())
    await owners.agents.create(agent("agt_2", "own_2", "helper"), ())
    assert await owners.agents.get("agt_1", owner_id="own_2") is None
    assert await owners.agents.get("agt_unknown", owner_id="own_2") is None
    assert await owners.agents.get("agt 1", owner_id="own_1") is None
    seen = await owners.agents.page(limit=10, after=None, owner_id="own_2")
    assert ids(seen.rows) == ["agt_2"] and seen.last is None
    every = await owners.agents.page(limit=10, after=None)
    assert ids(every.rows) == ["agt_1", "agt_2"]
    # Another owner's agent cannot be replaced through a view that does not show it: the
    # flow never gets the row; and a replacement names its row by the row it read.
    assert await owners.agents.replace(agent("agt_1", "own_2"), agent("agt_1", "own_2")) is STALE


async def test_pages_continue_after_the_last_row(owners: Registries) -> None:
    for i in range(3):
        await owners.agents.create(agent(f"agt_{i}", "own_1", f"a{i}", created_at=NOW + i), ())
    first = await owners.agents.page(limit=2, after=None, owner_id="own_1")
    assert ids(first.rows) == ["agt_0", "agt_1"] and first.last == (NOW + 1, "agt_1")
    rest = await owners.agents.page(limit=2, after=first.last, owner_id="own_1")
    assert ids(rest.rows) == ["agt_2"] and rest.last is None


async def test_a_name_is_unique_among_one_owners_agents(owners: Registries) -> None:
    await owners.agents.create(agent(), ())
    entry = changed("agent", "agt_2", owner_id="own_1", agent_id="agt_2")
    assert await owners.agents.create(agent("agt_2", "own_1", "worker"), [entry]) is TAKEN
    assert await owners.agents.get("agt_2") is None
    assert await owners.store.ledger() == []
    # Another owner may use the name.
    assert await owners.agents.create(agent("agt_3", "own_2", "worker"), ()) == agent(
        "agt_3", "own_2", "worker"
    )
    await owners.agents.create(agent("agt_4", "own_1", "other"), ())
    renamed = agent("agt_4", "own_1", "worker")
    assert await owners.agents.replace(agent("agt_4", "own_1", "other"), renamed) is TAKEN


async def test_one_of_many_concurrent_creators_of_a_name_wins(owners: Registries) -> None:
    async def create(i: int) -> AgentRow | Taken:
        entry = changed("agent", f"agt_{i}", owner_id="own_1", agent_id=f"agt_{i}")
        return await owners.agents.create(agent(f"agt_{i}", "own_1", "worker"), [entry])

    results = await concurrently(create)
    winners = [r for r in results if r is not TAKEN]
    assert len(winners) == 1
    assert results.count(TAKEN) == WRITERS - 1
    assert ids((await owners.agents.page(limit=100, after=None)).rows) == ids(winners)
    assert len(await owners.store.ledger()) == 1


async def test_a_change_commits_with_its_entries_and_events(owners: Registries) -> None:
    await owners.agents.create(agent(), ())
    record, event = _quarantine()
    new = dataclasses.replace(
        agent(),
        status="quarantined",
        status_reason="odd",
        quarantined_by="key_1",
        updated_at=NOW + 5,
    )
    written = await owners.agents.replace(
        agent(), new, entries=[("agent_quarantined", 1, NOW + 5, record)], events=[event]
    )
    assert isinstance(written, Written)
    assert written.row == new
    assert [(e.kind, e.agent_id, e.owner_id, e.time) for e in written.events] == [
        ("agent", "agt_1", "own_1", NOW + 5)
    ]
    assert await owners.agents.get("agt_1") == new
    assert [e["kind"] for e in await owners.store.ledger()] == ["agent_quarantined"]
    assert [(e["kind"], e["agent_id"]) for e in await owners.store.events()] == [("agent", "agt_1")]


async def test_a_failing_entry_writes_nothing(owners: Registries) -> None:
    with pytest.raises(MalformedEntry):
        await owners.agents.create(agent(), [MALFORMED])
    assert await owners.agents.get("agt_1") is None
    await owners.agents.create(agent(), ())
    record, event = _quarantine()
    good = ("agent_quarantined", 1, NOW + 5, record)
    with pytest.raises(MalformedEntry):
        await owners.agents.replace(
            agent(), agent(status="quarantined"), entries=[good, MALFORMED], events=[event]
        )
    assert await owners.agents.get("agt_1") == agent()
    assert await owners.store.ledger() == []
    assert await owners.store.events() == []


async def test_one_of_many_concurrent_changes_of_a_read_wins(owners: Registries) -> None:
    await owners.agents.create(agent(), ())
    record, event = _quarantine()
    results = await concurrently(
        lambda i: owners.agents.replace(
            agent(),
            agent(status="quarantined", quarantined_by=f"key_{i}"),
            entries=[("agent_quarantined", 1, NOW + 5, record)],
            events=[event],
        )
    )
    winners = [r for r in results if isinstance(r, Written)]
    assert len(winners) == 1
    assert results.count(STALE) == WRITERS - 1
    assert await owners.agents.get("agt_1") == winners[0].row
    assert len(await owners.store.ledger()) == 1
    assert len(await owners.store.events()) == 1


async def test_a_stale_change_writes_nothing(owners: Registries) -> None:
    await owners.agents.create(agent(), ())
    assert isinstance(await owners.agents.replace(agent(), agent(autonomy_level=2)), Written)
    record, event = _quarantine()
    stale = await owners.agents.replace(
        agent(),
        agent(status="quarantined"),
        entries=[("agent_quarantined", 1, NOW + 5, record)],
        events=[event],
    )
    assert stale is STALE
    assert await owners.agents.get("agt_1") == agent(autonomy_level=2)
    assert await owners.store.ledger() == []
    assert await owners.store.events() == []
