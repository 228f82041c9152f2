"""The owners port's contract (``authority.storage.owners``), on every backend."""

from __future__ import annotations

import dataclasses

import pytest

from authority.ledger.entries import MalformedEntry
from authority.storage.owners import OwnerRow
from authority.storage.registry import STALE, TAKEN, NewEvent, RowPage, Written

from .registry_support import (
    MALFORMED,
    WRITERS,
    Registries,
    concurrently,
    ids,
    key,
    owner,
    registries,
    seed_owner,
)
from .support import NOW

__all__ = ["registries"]  # the fixture


def _retired(row: OwnerRow, now: int = NOW + 5) -> OwnerRow:
    return dataclasses.replace(row, status="retired", updated_at=now)


def _event(owner_id: str = "own_1", now: int = NOW + 5) -> NewEvent:
    return NewEvent(kind="owner", time=now, expires_at=now + 400, owner_id=owner_id)


async def test_an_owner_is_created_read_replaced_and_paged(registries: Registries) -> None:
    created = await registries.owners.create(owner(email="a@example.test"))
    assert created == owner(email="a@example.test")
    assert await registries.owners.get("own_1") == created
    assert await registries.owners.get("own_2") is None
    assert await registries.owners.get("own 1; --") is None  # cannot be an id of ours

    renamed = dataclasses.replace(owner(email="a@example.test"), name="alicia", updated_at=NOW + 1)
    assert await registries.owners.replace(owner(email="a@example.test"), renamed) == Written(
        renamed
    )
    assert await registries.owners.get("own_1") == renamed
    assert await registries.store.ledger() == []  # owners' own changes have no entry


async def test_pages_follow_creation_order_and_continue(registries: Registries) -> None:
    for i in range(5):
        # Two share a creation time: the id decides between them.
        await registries.owners.create(owner(f"own_{i}", f"owner {i}", created_at=NOW + i // 2))
    first = await registries.owners.page(limit=2, after=None)
    assert ids(first.rows) == ["own_0", "own_1"]
    assert first.last == (NOW, "own_1")
    second = await registries.owners.page(limit=2, after=first.last)
    assert ids(second.rows) == ["own_2", "own_3"]
    third = await registries.owners.page(limit=2, after=second.last)
    assert third == RowPage((owner("own_4", "owner 4", created_at=NOW + 2),), None)


async def test_a_taken_name_is_refused_and_writes_nothing(registries: Registries) -> None:
    await seed_owner(registries)
    assert await registries.owners.create(owner("own_2", "alice")) is TAKEN
    assert await registries.owners.get("own_2") is None
    await seed_owner(registries, "own_3", "bob")
    # Renaming to a taken name is refused too; keeping one's own name is not a clash.
    assert await registries.owners.replace(owner("own_3", "bob"), owner("own_3", "alice")) is TAKEN
    assert (await registries.owners.get("own_3")) == owner("own_3", "bob")
    same = owner("own_3", "bob", email="b@example.test")
    assert await registries.owners.replace(owner("own_3", "bob"), same) == Written(same)


async def test_one_of_many_concurrent_creators_of_a_name_wins(registries: Registries) -> None:
    results = await concurrently(lambda i: registries.owners.create(owner(f"own_{i}", "alice")))
    winners = [r for r in results if r is not TAKEN]
    assert len(winners) == 1
    assert ids((await registries.owners.page(limit=100, after=None)).rows) == ids(winners)


async def test_a_replacement_of_a_row_that_changed_is_stale(registries: Registries) -> None:
    await seed_owner(registries)
    current = dataclasses.replace(owner(), email="new@example.test", updated_at=NOW + 1)
    assert isinstance(await registries.owners.replace(owner(), current), Written)
    outdated = dataclasses.replace(owner(), name="alicia")
    assert await registries.owners.replace(owner(), outdated) is STALE
    assert await registries.owners.get("own_1") == current
    assert await registries.owners.replace(owner("own_9"), owner("own_9", "x")) is STALE


async def test_one_of_many_concurrent_replacers_wins(registries: Registries) -> None:
    await seed_owner(registries)
    results = await concurrently(
        lambda i: registries.owners.replace(owner(), owner(email=f"{i}@example.test"))
    )
    winners = [r for r in results if isinstance(r, Written)]
    assert len(winners) == 1
    assert results.count(STALE) == WRITERS - 1
    assert await registries.owners.get("own_1") == winners[0].row


async def test_retiring_revokes_the_owners_keys_with_its_entry_and_event(
    registries: Registries,
) -> None:
    await seed_owner(registries)
    await seed_owner(registries, "own_2", "bob")
    for key_id, owner_id, revoked_at in (
        ("key_a", "own_1", None),
        ("key_b", "own_1", NOW - 1),
        ("key_c", "own_2", None),
    ):
        row = key(key_id, "owner", owner_id=owner_id, revoked_at=revoked_at)
        await registries.api_keys.create(row, f"hash-{key_id}", ())
    entry = ("owner_retired", 1, NOW + 5, {"owner_id": "own_1", "actor": "key_admin"})
    retired = _retired(owner())
    written = await registries.owners.retire(owner(), retired, entries=[entry], event=_event())
    assert isinstance(written, Written)
    assert written.row == _retired(owner())
    assert [(e.kind, e.time, e.owner_id, e.expires_at) for e in written.events] == [
        ("owner", NOW + 5, "own_1", NOW + 405)
    ]
    assert written.events[0].id >= 1
    assert await registries.owners.get("own_1") == _retired(owner())
    revoked = {k.id: k.revoked_at for k in await registries.api_keys.all()}
    # The active key is revoked now; one revoked before keeps its time; others' keep going.
    assert revoked == {"key_a": NOW + 5, "key_b": NOW - 1, "key_c": None}
    assert await registries.store.ledger() == [
        {
            "kind": "owner_retired",
            "version": 1,
            "time": NOW + 5,
            "owner_id": "own_1",
            "actor": "key_admin",
        }
    ]
    assert await registries.store.events() == [
        {
            "created_at": NOW + 5,
            "kind": "owner",
            "jti": None,
            "delegation_id": None,
            "agent_id": None,
            "owner_id": "own_1",
            "expires_at": NOW + 405,
            "tool": None,
        }
    ]


async def test_a_failing_entry_retires_nothing(registries: Registries) -> None:
    await seed_owner(registries)
    await registries.api_keys.create(key("key_a", "owner", owner_id="own_1"), "hash-a", ())
    with pytest.raises(MalformedEntry):
        await registries.owners.retire(
            owner(), _retired(owner()), entries=[MALFORMED], event=_event()
        )
    assert await registries.owners.get("own_1") == owner()
    assert [k.revoked_at for k in await registries.api_keys.all()] == [None]
    assert await registries.store.ledger() == []
    assert await registries.store.events() == []


async def test_a_stale_retirement_writes_nothing(registries: Registries) -> None:
    await seed_owner(registries)
    await registries.api_keys.create(key("key_a", "owner", owner_id="own_1"), "hash-a", ())
    entry = ("owner_retired", 1, NOW + 5, {"owner_id": "own_1", "actor": "key_admin"})
    outdated = owner(email="old@example.test")
    retired = _retired(outdated)
    assert (
        await registries.owners.retire(outdated, retired, entries=[entry], event=_event()) is STALE
    )
    assert await registries.owners.get("own_1") == owner()
    assert [k.revoked_at for k in await registries.api_keys.all()] == [None]
    assert await registries.store.ledger() == []
    assert await registries.store.events() == []
