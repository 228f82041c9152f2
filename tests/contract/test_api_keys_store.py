"""The API keys port's contract (``authority.storage.api_keys``), on every backend."""

from __future__ import annotations

import dataclasses

import pytest

from authority.ledger.entries import MalformedEntry
from authority.storage.api_keys import KeyHolder
from authority.storage.registry import STALE, Written

from .registry_support import (
    MALFORMED,
    WRITERS,
    Registries,
    changed,
    concurrently,
    ids,
    key,
    registries,
    seed_owner,
)
from .support import NOW

__all__ = ["registries"]  # the fixture


@pytest.fixture
async def keyed(registries: Registries) -> Registries:
    """An admin key, an auditor key, and a key of each of two owners."""
    await seed_owner(registries, "own_1", "alice")
    await seed_owner(registries, "own_2", "bob")
    rows = [
        key("key_admin", "admin", created_at=NOW),
        key("key_audit", "auditor", created_at=NOW + 1),
        key("key_a", "owner", owner_id="own_1", created_at=NOW + 2),
        key("key_b", "owner", owner_id="own_2", created_at=NOW + 3),
    ]
    for row in rows:
        await registries.api_keys.create(row, f"hash-{row.id}", ())
    return registries


async def test_a_key_is_created_with_its_entry_and_read_back(registries: Registries) -> None:
    entry = changed("api_key", "key_1", changes={"role": "admin", "label": "ops"})
    created = await registries.api_keys.create(key(label="ops"), "hash-1", [entry])
    assert created == key(label="ops")
    assert await registries.api_keys.get("key_1") == created
    assert await registries.api_keys.all() == [created]
    assert [e["object_id"] for e in await registries.store.ledger()] == ["key_1"]


async def test_a_key_is_found_by_its_hash_while_unrevoked(keyed: Registries) -> None:
    assert await keyed.api_keys.holder("hash-key_a") == KeyHolder(
        "key_a", "owner", "own_1", "active"
    )
    assert await keyed.api_keys.holder("hash-key_admin") == KeyHolder(
        "key_admin", "admin", None, None
    )
    assert await keyed.api_keys.holder("hash-unknown") is None
    revoked = dataclasses.replace(key("key_a", "owner", owner_id="own_1", created_at=NOW + 2))
    assert isinstance(
        await keyed.api_keys.replace(revoked, dataclasses.replace(revoked, revoked_at=NOW + 9)),
        Written,
    )
    assert await keyed.api_keys.holder("hash-key_a") is None


async def test_roles_and_the_active_admin(keyed: Registries) -> None:
    assert await keyed.api_keys.role_of("key_admin") == "admin"
    assert await keyed.api_keys.role_of("key_a") == "owner"
    assert await keyed.api_keys.role_of("authority:containment") is None
    assert await keyed.api_keys.has_active_admin()
    admin = key("key_admin", "admin", created_at=NOW)
    await keyed.api_keys.replace(admin, dataclasses.replace(admin, revoked_at=NOW + 1))
    assert not await keyed.api_keys.has_active_admin()
    assert await keyed.api_keys.role_of("key_admin") == "admin"  # revoked, still who it was


async def test_an_owners_keys_are_its_own(keyed: Registries) -> None:
    assert await keyed.api_keys.get("key_a", owner_id="own_1") is not None
    assert await keyed.api_keys.get("key_a", owner_id="own_2") is None
    assert await keyed.api_keys.get("key_admin", owner_id="own_1") is None
    assert await keyed.api_keys.get("key a", owner_id="own_1") is None
    own = await keyed.api_keys.page(limit=10, after=None, owner_id="own_2")
    assert ids(own.rows) == ["key_b"] and own.last is None
    every = await keyed.api_keys.page(limit=3, after=None)
    assert ids(every.rows) == ["key_admin", "key_audit", "key_a"]
    rest = await keyed.api_keys.page(limit=3, after=every.last)
    assert ids(rest.rows) == ["key_b"] and rest.last is None
    assert ids(await keyed.api_keys.all()) == ["key_admin", "key_audit", "key_a", "key_b"]


async def test_a_revocation_commits_with_its_entry_or_not_at_all(keyed: Registries) -> None:
    row = key("key_a", "owner", owner_id="own_1", created_at=NOW + 2)
    revoked = dataclasses.replace(row, revoked_at=NOW + 9)
    with pytest.raises(MalformedEntry):
        await keyed.api_keys.replace(row, revoked, entries=[MALFORMED])
    assert await keyed.api_keys.get("key_a") == row
    assert await keyed.store.ledger() == []
    entry = changed(
        "api_key", "key_a", "revoked", changes={"revoked_at": NOW + 9}, owner_id="own_1"
    )
    assert await keyed.api_keys.replace(row, revoked, entries=[entry]) == Written(revoked)
    assert await keyed.api_keys.get("key_a") == revoked
    assert [e["change"] for e in await keyed.store.ledger()] == ["revoked"]
    # Revoking it again from the row read before is stale: nothing more is written.
    assert await keyed.api_keys.replace(row, revoked, entries=[entry]) is STALE
    assert len(await keyed.store.ledger()) == 1


async def test_a_failing_entry_creates_no_key(registries: Registries) -> None:
    with pytest.raises(MalformedEntry):
        await registries.api_keys.create(key(), "hash-1", [MALFORMED])
    assert await registries.api_keys.all() == []
    assert await registries.api_keys.holder("hash-1") is None


async def test_one_of_many_concurrent_revocations_wins(keyed: Registries) -> None:
    row = key("key_a", "owner", owner_id="own_1", created_at=NOW + 2)
    results = await concurrently(
        lambda i: keyed.api_keys.replace(
            row,
            dataclasses.replace(row, revoked_at=NOW + i),
            entries=[changed("api_key", "key_a", "revoked", changes={"revoked_at": NOW + i})],
        )
    )
    winners = [r for r in results if isinstance(r, Written)]
    assert len(winners) == 1
    assert results.count(STALE) == WRITERS - 1
    assert await keyed.api_keys.get("key_a") == winners[0].row
    assert len(await keyed.store.ledger()) == 1
