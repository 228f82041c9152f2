"""The delegations port's contract (``authority.storage.delegations``), on every backend."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping

import pytest

from authority.errors import InvalidRequest
from authority.ledger.entries import Entry, MalformedEntry
from authority.storage.delegations import (
    Delegation,
    DelegationStore,
    Grantee,
    NewDelegation,
    ScopedTool,
)
from authority.storage.memory.delegations import MemoryDelegationStore

from .rows import insert, port, row, rows
from .support import NOW, Seeded, Store, seed

REVOKERS = 50


@pytest.fixture
def delegations(store: Store) -> DelegationStore:
    return port(store, MemoryDelegationStore, "delegation_store")


def new_delegation(s: Seeded, delegation_id: str = "dlg_2", **values: object) -> Delegation:
    row = Delegation(
        id=delegation_id,
        owner_id=s.owner_id,
        agent_id=s.agent_id,
        intent="read files",
        scope='[{"tool":"files","resources":["*"],"actions":["read"]}]',
        cnf_jkt="j" * 43,
        expires_at=NOW + 600,
        max_calls=5,
        rate_per_minute=None,
        calls_used=0,
        status="active",
        revoked_at=None,
        revoked_by=None,
        revoked_reason=None,
        created_at=NOW,
    )
    return dataclasses.replace(row, **values)  # type: ignore[arg-type]


def created_entry(delegation: Delegation, **record: object) -> Entry:
    return (
        "delegation_created",
        1,
        NOW,
        {
            "delegation_id": delegation.id,
            "owner_id": delegation.owner_id,
            "agent_id": delegation.agent_id,
            "intent": delegation.intent,
            "scope": [{"tool": "files", "resources": ["*"], "actions": ["read"]}],
            "cnf_jkt": delegation.cnf_jkt,
            "expires_at": delegation.expires_at,
            "max_calls": delegation.max_calls,
            "rate_per_minute": None,
            "actor": "key_owner",
            **record,
        },
    )


def revoked_entry(s: Seeded, actor: str = "key_owner") -> Entry:
    return (
        "delegation_revoked",
        1,
        NOW,
        {
            "delegation_id": s.delegation_id,
            "owner_id": s.owner_id,
            "agent_id": s.agent_id,
            "actor": actor,
            "reason": "done",
        },
    )


async def test_create_shows_the_agent_and_tools_to_the_flow_and_writes_what_it_returns(
    store: Store, delegations: DelegationStore
) -> None:
    s = await seed(store)
    seen: list[tuple[Grantee, Mapping[str, ScopedTool]]] = []
    wanted = new_delegation(s)

    def grant(agent: Grantee, tools: Mapping[str, ScopedTool]) -> NewDelegation:
        seen.append((agent, dict(tools)))
        return NewDelegation(wanted, created_entry(wanted))

    created = await delegations.create(s.owner_id, s.agent_id, ["files", "unknown"], grant)
    assert created == wanted
    assert seen == [
        (Grantee("active", '{"keys": []}'), {"files": ScopedTool("files", '["read"]', "active")})
    ]
    assert await delegations.get(wanted.id, s.owner_id) == wanted
    assert [e["kind"] for e in await store.ledger()] == ["delegation_created"]
    assert (await store.ledger())[0]["delegation_id"] == wanted.id


async def test_create_for_an_agent_not_the_owners_writes_nothing(
    store: Store, delegations: DelegationStore
) -> None:
    s = await seed(store)
    await insert(
        store,
        "owners",
        {"id": "own_2", "name": "other", "status": "active", "created_at": NOW, "updated_at": NOW},
    )

    def grant(agent: Grantee, tools: Mapping[str, ScopedTool]) -> NewDelegation:
        raise AssertionError("not asked")

    assert await delegations.create("own_2", s.agent_id, ["files"], grant) is None
    assert await delegations.create(s.owner_id, "agt_unknown", ["files"], grant) is None
    assert len(await rows(store, "delegations")) == 1
    assert await store.ledger() == []


async def test_a_refusal_of_the_flow_writes_nothing(
    store: Store, delegations: DelegationStore
) -> None:
    s = await seed(store)

    def grant(agent: Grantee, tools: Mapping[str, ScopedTool]) -> NewDelegation:
        raise InvalidRequest("The agent is not active.")

    with pytest.raises(InvalidRequest):
        await delegations.create(s.owner_id, s.agent_id, ["files"], grant)
    assert len(await rows(store, "delegations")) == 1
    assert await store.ledger() == []


async def test_a_delegation_and_its_entry_commit_together(
    store: Store, delegations: DelegationStore
) -> None:
    s = await seed(store)
    wanted = new_delegation(s)

    def grant(agent: Grantee, tools: Mapping[str, ScopedTool]) -> NewDelegation:
        return NewDelegation(wanted, created_entry(wanted, intent=None))  # malformed

    with pytest.raises(MalformedEntry):
        await delegations.create(s.owner_id, s.agent_id, ["files"], grant)
    assert await delegations.get(wanted.id, None) is None
    assert await store.ledger() == []


async def test_get_sees_only_the_owners_own(store: Store, delegations: DelegationStore) -> None:
    s = await seed(store)
    found = await delegations.get(s.delegation_id, s.owner_id)
    assert found is not None
    assert (found.id, found.agent_id, found.status, found.calls_used) == (
        s.delegation_id,
        s.agent_id,
        "active",
        0,
    )
    assert await delegations.get(s.delegation_id, None) == found
    assert await delegations.get(s.delegation_id, "own_2") is None
    assert await delegations.get("dlg_unknown", None) is None


async def test_pages_follow_creation_order_and_filter(
    store: Store, delegations: DelegationStore
) -> None:
    s = await seed(store)  # dlg_1, created at NOW - 100
    for n, created_at in ((2, NOW), (3, NOW), (4, NOW - 200)):
        values = dataclasses.asdict(new_delegation(s, f"dlg_{n}", created_at=created_at))
        await insert(store, "delegations", values)
    first, after = await delegations.page(owner_id=s.owner_id, agent_id=None, limit=2, after=None)
    assert [d.id for d in first] == ["dlg_4", "dlg_1"]
    assert after == (NOW - 100, "dlg_1")
    rest, end = await delegations.page(owner_id=None, agent_id=s.agent_id, limit=2, after=after)
    assert [d.id for d in rest] == ["dlg_2", "dlg_3"]
    assert end is None
    assert await delegations.page(owner_id="own_2", agent_id=None, limit=5, after=None) == (
        [],
        None,
    )
    assert await delegations.page(owner_id=None, agent_id="agt_2", limit=5, after=None) == (
        [],
        None,
    )


async def test_revoking_writes_the_status_the_entry_and_the_event(
    store: Store, delegations: DelegationStore
) -> None:
    s = await seed(store)
    revoked = await delegations.revoke(
        s.delegation_id,
        s.owner_id,
        now=NOW,
        actor="key_owner",
        reason="done",
        entry=revoked_entry(s),
        event_expires_at=NOW + 400,
    )
    assert revoked is not None
    stored = revoked.delegation
    assert (stored.status, stored.revoked_at, stored.revoked_by, stored.revoked_reason) == (
        "revoked",
        NOW,
        "key_owner",
        "done",
    )
    assert await delegations.get(s.delegation_id, None) == stored
    assert revoked.event is not None
    assert (revoked.event.kind, revoked.event.delegation_id, revoked.event.agent_id) == (
        "delegation",
        s.delegation_id,
        s.agent_id,
    )
    assert await store.ledger() == [
        {
            "kind": "delegation_revoked",
            "version": 1,
            "time": NOW,
            "delegation_id": s.delegation_id,
            "owner_id": s.owner_id,
            "agent_id": s.agent_id,
            "actor": "key_owner",
            "reason": "done",
        }
    ]
    assert await store.events() == [
        {
            "created_at": NOW,
            "kind": "delegation",
            "jti": None,
            "delegation_id": s.delegation_id,
            "agent_id": s.agent_id,
            "owner_id": s.owner_id,
            "expires_at": NOW + 400,
            "tool": None,
        }
    ]

    again = await delegations.revoke(
        s.delegation_id,
        None,
        now=NOW + 1,
        actor="key_admin",
        reason="done",
        entry=revoked_entry(s, "key_admin"),
        event_expires_at=NOW + 400,
    )
    assert again is not None
    assert (again.delegation, again.event) == (stored, None)
    assert len(await store.ledger()) == 1
    assert len(await store.events()) == 1


async def test_another_owners_delegation_is_not_revoked(
    store: Store, delegations: DelegationStore
) -> None:
    s = await seed(store)
    for delegation_id in (s.delegation_id, "dlg_unknown"):
        revoked = await delegations.revoke(
            delegation_id,
            "own_2",
            now=NOW,
            actor="key_other",
            reason=None,
            entry=revoked_entry(s),
            event_expires_at=NOW + 400,
        )
        assert revoked is None
    assert (await row(store, "delegations", s.delegation_id))["status"] == "active"
    assert await store.ledger() == []
    assert await store.events() == []


async def test_a_delegation_is_revoked_once_among_concurrent_revokers(
    store: Store, delegations: DelegationStore
) -> None:
    s = await seed(store)
    results = await asyncio.gather(
        *(
            delegations.revoke(
                s.delegation_id,
                s.owner_id,
                now=NOW + i,
                actor="key_owner",
                reason="done",
                entry=revoked_entry(s),
                event_expires_at=NOW + 400,
            )
            for i in range(REVOKERS)
        )
    )
    assert all(r is not None and r.delegation.status == "revoked" for r in results)
    winners = [r for r in results if r is not None and r.event is not None]
    assert len(winners) == 1
    assert len(await store.ledger()) == 1
    events = await store.events()
    assert len(events) == 1
    assert winners[0].delegation.revoked_at == events[0]["created_at"]


async def test_a_revocation_and_its_entry_commit_together(
    store: Store, delegations: DelegationStore
) -> None:
    s = await seed(store)
    kind, version, created_at, record = revoked_entry(s)
    with pytest.raises(MalformedEntry):
        await delegations.revoke(
            s.delegation_id,
            None,
            now=NOW,
            actor="key_owner",
            reason="done",
            entry=(kind, version, created_at, {**record, "owner_id": None}),
            event_expires_at=NOW + 400,
        )
    assert (await row(store, "delegations", s.delegation_id))["status"] == "active"
    assert await store.ledger() == []
    assert await store.events() == []
