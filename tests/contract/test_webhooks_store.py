"""The owners' webhooks port's contract (``authority.storage.webhooks``), on every backend."""

from __future__ import annotations

import asyncio

import pytest

from authority.errors import Conflict
from authority.ledger.entries import Entry, MalformedEntry
from authority.storage.memory.webhooks import MemoryWebhookStore
from authority.storage.webhooks import OwnerWebhook, Target, WebhookStore

from .rows import port, row
from .support import NOW, Store, seed

WRITERS = 20
URL = "https://hooks.example/owner"


@pytest.fixture
def webhooks(store: Store) -> WebhookStore:
    return port(store, MemoryWebhookStore, "webhook_store")


def changed(owner_id: str, change: str = "created") -> Entry:
    return (
        "registry_changed",
        1,
        NOW,
        {
            "object_type": "webhook",
            "object_id": owner_id,
            "change": change,
            "changes": {},
            "keys": None,
            "owner_id": owner_id,
            "agent_id": None,
            "tool": None,
            "actor": "key_owner",
        },
    )


async def test_an_owner_without_a_webhook_reads_as_none(
    store: Store, webhooks: WebhookStore
) -> None:
    s = await seed(store)
    assert await webhooks.get(s.owner_id) == OwnerWebhook(s.owner_id, "active", None, None)
    assert await webhooks.target(s.owner_id) == Target(None, None)
    assert await webhooks.get("own_unknown") is None
    assert await webhooks.target("own_unknown") is None


async def test_registering_writes_the_url_the_secret_and_the_entry(
    store: Store, webhooks: WebhookStore
) -> None:
    s = await seed(store)
    seen: list[OwnerWebhook] = []

    def change(owner: OwnerWebhook) -> Entry | None:
        seen.append(owner)
        return changed(s.owner_id, "created" if owner.url is None else "updated")

    before = await webhooks.register(
        s.owner_id, url=URL, sealed_secret=b"sealed-1", now=NOW, change=change
    )
    assert before == OwnerWebhook(s.owner_id, "active", None, None)
    assert await webhooks.get(s.owner_id) == OwnerWebhook(s.owner_id, "active", URL, NOW)
    assert await webhooks.target(s.owner_id) == Target(URL, b"sealed-1")
    assert (await row(store, "owners", s.owner_id))["updated_at"] == NOW

    later = await webhooks.register(
        s.owner_id, url=URL + "/2", sealed_secret=b"sealed-2", now=NOW + 1, change=change
    )
    assert later == OwnerWebhook(s.owner_id, "active", URL, NOW)
    assert seen == [before, later]
    assert await webhooks.target(s.owner_id) == Target(URL + "/2", b"sealed-2")
    assert [e["change"] for e in await store.ledger()] == ["created", "updated"]


async def test_removing_clears_both_and_writes_the_entry_it_is_given(
    store: Store, webhooks: WebhookStore
) -> None:
    s = await seed(store)
    await webhooks.register(
        s.owner_id, url=URL, sealed_secret=b"s", now=NOW, change=lambda o: changed(s.owner_id)
    )
    before = await webhooks.remove(
        s.owner_id, now=NOW + 5, change=lambda o: changed(s.owner_id, "deleted")
    )
    assert before == OwnerWebhook(s.owner_id, "active", URL, NOW)
    assert await webhooks.get(s.owner_id) == OwnerWebhook(s.owner_id, "active", None, NOW + 5)
    assert await webhooks.target(s.owner_id) == Target(None, None)
    # Nothing to remove: the flow records nothing.
    assert await webhooks.remove(s.owner_id, now=NOW + 6, change=lambda o: None) is not None
    assert [e["change"] for e in await store.ledger()] == ["created", "deleted"]


async def test_an_unknown_owner_is_none_and_nothing_is_written(
    store: Store, webhooks: WebhookStore
) -> None:
    await seed(store)

    def change(owner: OwnerWebhook) -> Entry | None:
        raise AssertionError("not asked")

    assert (
        await webhooks.register("own_x", url=URL, sealed_secret=b"s", now=NOW, change=change)
        is None
    )
    assert await webhooks.remove("own_x", now=NOW, change=change) is None
    assert await store.ledger() == []


async def test_a_refusal_of_the_flow_writes_nothing(store: Store, webhooks: WebhookStore) -> None:
    s = await seed(store)

    def refuse(owner: OwnerWebhook) -> Entry | None:
        raise Conflict("The owner is retired.")

    with pytest.raises(Conflict):
        await webhooks.register(s.owner_id, url=URL, sealed_secret=b"s", now=NOW, change=refuse)
    assert await webhooks.get(s.owner_id) == OwnerWebhook(s.owner_id, "active", None, None)
    assert await store.ledger() == []


async def test_a_registration_and_its_entry_commit_together(
    store: Store, webhooks: WebhookStore
) -> None:
    s = await seed(store)
    kind, version, created_at, record = changed(s.owner_id)
    with pytest.raises(MalformedEntry):
        await webhooks.register(
            s.owner_id,
            url=URL,
            sealed_secret=b"s",
            now=NOW,
            change=lambda o: (kind, version, created_at, {**record, "change": None}),
        )
    assert await webhooks.target(s.owner_id) == Target(None, None)
    assert await store.ledger() == []


async def test_concurrent_registrations_see_each_other_in_turn(
    store: Store, webhooks: WebhookStore
) -> None:
    """Each change sees the one before it (the owner's row is locked), so exactly one
    of them finds no URL and records ``created``."""
    s = await seed(store)

    def change(owner: OwnerWebhook) -> Entry | None:
        return changed(s.owner_id, "created" if owner.url is None else "updated")

    await asyncio.gather(
        *(
            webhooks.register(
                s.owner_id, url=f"{URL}/{i}", sealed_secret=b"s", now=NOW, change=change
            )
            for i in range(WRITERS)
        )
    )
    changes = [e["change"] for e in await store.ledger()]
    assert sorted(changes) == ["created"] + ["updated"] * (WRITERS - 1)
