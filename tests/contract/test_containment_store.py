"""Automatic containment's port's contract (``authority.storage.containment``), on every
backend."""

from __future__ import annotations

import asyncio

import pytest

from authority.ledger.entries import Entry, MalformedEntry
from authority.storage.containment import Account, ContainmentStore, Decide, History
from authority.storage.memory.containment import MemoryContainmentStore

from .rows import port, row
from .support import NOW, Seeded, Store, seed

RECORDERS = 20


@pytest.fixture
def containment(store: Store) -> ContainmentStore:
    return port(store, MemoryContainmentStore, "containment_store")


def contained(s: Seeded, at: int, containments: int, level: int) -> Entry:
    return (
        "agent_contained",
        1,
        at,
        {
            "agent_id": s.agent_id,
            "owner_id": s.owner_id,
            "actor": "authority:containment",
            "violations": 5,
            "window": 60,
            "threshold": 5,
            "trigger": "tool_not_delegated",
            "containments": containments,
            "autonomy_level": level,
        },
    )


def lowered(s: Seeded, at: int, previous: int) -> Entry:
    return (
        "autonomy_changed",
        2,
        at,
        {
            "agent_id": s.agent_id,
            "owner_id": s.owner_id,
            "previous_level": previous,
            "level": previous - 1,
            "actor": "authority:containment",
            "reason": "contained twice",
        },
    )


def demote_repeats(s: Seeded, at: int) -> Decide:
    def decide(history: History) -> Account:
        if history.earlier and history.autonomy_level > 0:
            level = history.autonomy_level - 1
            return Account(
                level,
                [
                    lowered(s, at, history.autonomy_level),
                    contained(s, at, history.earlier + 1, level),
                ],
            )
        return Account(None, [contained(s, at, history.earlier + 1, history.autonomy_level)])

    return decide


async def test_the_agents_status(store: Store, containment: ContainmentStore) -> None:
    s = await seed(store)
    assert await containment.agent_status(s.agent_id) == "active"
    assert await containment.agent_status("agt_unknown") is None


async def test_the_first_containment_reads_no_history_and_writes_its_entry(
    store: Store, containment: ContainmentStore
) -> None:
    s = await seed(store)  # autonomy level 1
    recorded = await containment.record(
        s.agent_id, since=NOW - 3600, now=NOW, decide=demote_repeats(s, NOW)
    )
    assert recorded is not None
    history, account = recorded
    assert history == History(autonomy_level=1, earlier=0)
    assert account.autonomy_level is None
    assert (await row(store, "agents", s.agent_id))["autonomy_level"] == 1
    assert [(e["kind"], e["containments"]) for e in await store.ledger()] == [
        ("agent_contained", 1)
    ]


async def test_a_repeat_within_the_memory_is_seen_and_its_demotion_written(
    store: Store, containment: ContainmentStore
) -> None:
    s = await seed(store)
    await containment.record(
        s.agent_id, since=NOW - 4000, now=NOW - 3601, decide=demote_repeats(s, NOW - 3601)
    )
    # Outside the memory: not counted.
    recorded = await containment.record(
        s.agent_id, since=NOW - 3600, now=NOW, decide=demote_repeats(s, NOW)
    )
    assert recorded is not None
    assert recorded[0] == History(1, 0)
    recorded = await containment.record(
        s.agent_id, since=NOW - 3600, now=NOW + 1, decide=demote_repeats(s, NOW + 1)
    )
    assert recorded is not None
    history, account = recorded
    assert (history, account.autonomy_level) == (History(1, 1), 0)
    agent = await row(store, "agents", s.agent_id)
    assert (agent["autonomy_level"], agent["updated_at"]) == (0, NOW + 1)
    kinds = [e["kind"] for e in await store.ledger()]
    assert kinds == ["agent_contained", "agent_contained", "autonomy_changed", "agent_contained"]


async def test_no_agent_is_none_and_nothing_is_written(
    store: Store, containment: ContainmentStore
) -> None:
    s = await seed(store)

    def decide(history: History) -> Account:
        raise AssertionError("not asked")

    assert await containment.record("agt_unknown", since=NOW, now=NOW, decide=decide) is None
    assert await store.ledger() == []
    assert (await row(store, "agents", s.agent_id))["autonomy_level"] == 1


async def test_the_demotion_and_its_entries_commit_together(
    store: Store, containment: ContainmentStore
) -> None:
    s = await seed(store)

    def decide(history: History) -> Account:
        kind, version, at, record = contained(s, NOW, 1, 0)
        return Account(0, [lowered(s, NOW, 1), (kind, version, at, {**record, "containments": 0})])

    with pytest.raises(MalformedEntry):
        await containment.record(s.agent_id, since=NOW - 3600, now=NOW, decide=decide)
    assert (await row(store, "agents", s.agent_id))["autonomy_level"] == 1
    assert await store.ledger() == []


async def test_concurrent_accounts_of_one_agent_see_each_other(
    store: Store, containment: ContainmentStore
) -> None:
    """The agent's row is held while its history is read and written: each account sees
    the ones before it, so their counts run 1..N and the level drops once."""
    s = await seed(store)
    await asyncio.gather(
        *(
            containment.record(s.agent_id, since=NOW - 3600, now=NOW, decide=demote_repeats(s, NOW))
            for _ in range(RECORDERS)
        )
    )
    ledger = await store.ledger()
    counts = sorted(e["containments"] for e in ledger if e["kind"] == "agent_contained")
    assert counts == list(range(1, RECORDERS + 1))
    assert [e["kind"] for e in ledger].count("autonomy_changed") == 1
    assert (await row(store, "agents", s.agent_id))["autonomy_level"] == 0
