"""The policy versions port's contract (``authority.storage.policies``), on every backend."""

from __future__ import annotations

import asyncio

import pytest

from authority.ledger.entries import MalformedEntry
from authority.policy.versions import change_entry, digest
from authority.storage.memory.policies import MemoryPolicyStore
from authority.storage.policies import NewPolicy, PolicyStore, PolicyVersion

from .rows import port
from .support import NOW, Store

WRITERS = 8


@pytest.fixture
def policies(store: Store) -> PolicyStore:
    return port(store, MemoryPolicyStore, "policy_store")


def new(text: str, author: str = "key_admin") -> NewPolicy:
    return NewPolicy(text, digest(text), author, None, NOW)


async def create(policies: PolicyStore, text: str, **kw: bool) -> PolicyVersion | None:
    entry = change_entry(now=NOW, actor="key_admin", change="created")
    return await policies.create(new(text), actor="key_admin", entry=entry, **kw)


async def test_versions_count_from_1_and_the_latest_created_is_active(
    store: Store, policies: PolicyStore
) -> None:
    assert await policies.active_version() is None
    assert await policies.versions() == []
    first = await create(policies, "")
    second = await create(policies, "forbid(principal, action, resource);")
    assert (first and first.version, second and second.version) == (1, 2)
    assert await policies.active_version() == 2
    assert [v.version for v in await policies.versions()] == [2, 1]
    stored = await policies.get(2)
    assert stored is not None and stored.text == "forbid(principal, action, resource);"
    assert await policies.get(3) is None
    ledger = await store.ledger()
    assert [(e["policy_version"], e.get("previous_version")) for e in ledger] == [(1, None), (2, 1)]


async def test_activating_an_older_version_is_a_rollback_with_its_entry(
    store: Store, policies: PolicyStore
) -> None:
    await create(policies, "")
    await create(policies, "forbid(principal, action, resource);")
    entry = change_entry(now=NOW + 1, actor="key_other", change="activated")
    info = await policies.activate(1, actor="key_other", now=NOW + 1, entry=entry)
    assert info is not None and info.version == 1
    assert await policies.active_version() == 1
    last = (await store.ledger())[-1]
    assert (last["change"], last["previous_version"], last["actor"]) == (
        "activated",
        2,
        "key_other",
    )
    assert await policies.activate(9, actor="k", now=NOW, entry=entry) is None
    assert len(await store.ledger()) == 3


async def test_only_first_stores_nothing_once_a_version_exists(
    store: Store, policies: PolicyStore
) -> None:
    assert await create(policies, "", only_first=True) is not None
    assert await create(policies, "// again", only_first=True) is None
    assert len(await policies.versions()) == 1 and len(await store.ledger()) == 1


async def test_a_change_and_its_entry_commit_together(store: Store, policies: PolicyStore) -> None:
    def bad(info: PolicyVersion, previous: int | None) -> tuple[str, int, int, dict[str, object]]:
        return ("policy_changed", 1, NOW, {"policy_version": info.version})

    with pytest.raises(MalformedEntry):
        await policies.create(new(""), actor="key_admin", entry=bad)
    assert await policies.versions() == [] and await policies.active_version() is None
    assert await store.ledger() == []


async def test_creations_at_once_get_distinct_numbers(store: Store, policies: PolicyStore) -> None:
    made = await asyncio.gather(*(create(policies, f"// {n}") for n in range(WRITERS)))
    numbers = sorted(m.version for m in made if m is not None)
    assert numbers == list(range(1, WRITERS + 1))
    assert len(await store.ledger()) == WRITERS
