"""The approval decisions port's contract (``authority.storage.approval_decisions``), on
every backend."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from authority.ledger.entries import Entry, MalformedEntry
from authority.storage.approval_decisions import ApprovalDecisionStore, StoredApproval
from authority.storage.memory.approval_decisions import MemoryApprovalDecisionStore

from .rows import insert, port, row
from .support import NOW, Seeded, Store, seed

DECIDERS = 50
REQUEST = (
    '{"action":"read","audience":"https://tools.example","intent":"tidy files","jkt":null,'
    '"lifetime":60,"resource":"https://tools.example/a","tool":"files"}'
)


@pytest.fixture
def approvals(store: Store) -> ApprovalDecisionStore:
    return port(store, MemoryApprovalDecisionStore, "approval_decision_store")


async def add(store: Store, s: Seeded, approval_id: str, **values: Any) -> None:
    await insert(
        store,
        "approvals",
        {
            "id": approval_id,
            "created_at": NOW - 10,
            "expires_at": NOW + 300,
            "status": "pending",
            "owner_id": s.owner_id,
            "agent_id": s.agent_id,
            "delegation_id": s.delegation_id,
            "request": REQUEST,
            "reason": "approval_required",
            "poll_interval": 5,
            **values,
        },
    )


def decided(s: Seeded, approval_id: str = "apr_1", **record: Any) -> Entry:
    return (
        "approval_decided",
        2,
        NOW,
        {
            "approval_id": approval_id,
            "decision": "approved",
            "owner_id": s.owner_id,
            "agent_id": s.agent_id,
            "delegation_id": s.delegation_id,
            "tool": s.tool,
            "resource": "https://tools.example/a",
            "action": "read",
            "actor": "key_owner",
            "reason": "fine",
            **record,
        },
    )


async def test_get_reads_the_approval_the_owner_may_see(
    store: Store, approvals: ApprovalDecisionStore
) -> None:
    s = await seed(store)
    await add(store, s, "apr_1")
    expected = StoredApproval(
        id="apr_1",
        status="pending",
        owner_id=s.owner_id,
        agent_id=s.agent_id,
        delegation_id=s.delegation_id,
        request=REQUEST,
        reason="approval_required",
        created_at=NOW - 10,
        expires_at=NOW + 300,
        decided_at=None,
        decided_by=None,
        decision_reason=None,
    )
    assert await approvals.get("apr_1", s.owner_id) == expected
    assert await approvals.get("apr_1", None) == expected
    assert await approvals.get("apr_1", "own_2") is None
    assert await approvals.get("apr_unknown", None) is None


async def test_pages_filter_by_status_at_a_time_owner_and_agent(
    store: Store, approvals: ApprovalDecisionStore
) -> None:
    s = await seed(store)
    await add(store, s, "apr_1", created_at=NOW - 30)
    await add(store, s, "apr_2", created_at=NOW - 20, expires_at=NOW)  # pending, expired
    await add(store, s, "apr_3", created_at=NOW - 20, status="approved")
    await add(store, s, "apr_4", created_at=NOW - 10, status="denied")
    await add(store, s, "apr_5", created_at=NOW - 5, status="used")

    async def ids(status: Any, **given: Any) -> list[str]:
        arguments: dict[str, Any] = {"owner_id": None, "agent_id": None, "after": None}
        found, last = await approvals.page(status=status, now=NOW, limit=10, **(arguments | given))
        assert last is None
        return [a.id for a in found]

    assert await ids("pending") == ["apr_1"]
    assert await ids("approved") == ["apr_3"]
    assert await ids("expired") == ["apr_2"]
    assert await ids("denied") == ["apr_4"]
    assert await ids("used") == ["apr_5"]
    assert await ids("all") == ["apr_1", "apr_2", "apr_3", "apr_4", "apr_5"]
    assert await ids("all", owner_id=s.owner_id, agent_id=s.agent_id) == await ids("all")
    assert await ids("all", owner_id="own_2") == []
    assert await ids("all", agent_id="agt_2") == []

    first, after = await approvals.page(
        owner_id=None, status="all", agent_id=None, now=NOW, limit=2, after=None
    )
    assert [a.id for a in first] == ["apr_1", "apr_2"]
    assert after == (NOW - 20, "apr_2")
    rest, end = await approvals.page(
        owner_id=None, status="all", agent_id=None, now=NOW, limit=2, after=after
    )
    assert [a.id for a in rest] == ["apr_3", "apr_4"]
    assert end == (NOW - 10, "apr_4")


async def test_deciding_writes_the_decision_and_its_entry(
    store: Store, approvals: ApprovalDecisionStore
) -> None:
    s = await seed(store)
    await add(store, s, "apr_1")
    result = await approvals.decide(
        "apr_1", decision="approved", now=NOW, actor="key_owner", reason="fine", entry=decided(s)
    )
    assert result is not None
    assert (result.status, result.decided_at, result.decided_by, result.decision_reason) == (
        "approved",
        NOW,
        "key_owner",
        "fine",
    )
    assert await approvals.get("apr_1", None) == result
    (entry,) = await store.ledger()
    assert (entry["kind"], entry["approval_id"], entry["decision"]) == (
        "approval_decided",
        "apr_1",
        "approved",
    )


async def test_only_a_pending_unexpired_approval_is_decided(
    store: Store, approvals: ApprovalDecisionStore
) -> None:
    s = await seed(store)
    await add(store, s, "apr_1", expires_at=NOW)
    await add(store, s, "apr_2", status="denied")
    await add(store, s, "apr_3", status="used")
    for approval_id in ("apr_1", "apr_2", "apr_3", "apr_unknown"):
        result = await approvals.decide(
            approval_id,
            decision="denied",
            now=NOW,
            actor="key_owner",
            reason=None,
            entry=decided(s, approval_id, decision="denied"),
        )
        assert result is None
    assert (await row(store, "approvals", "apr_1"))["status"] == "pending"
    assert await store.ledger() == []


async def test_an_approval_is_decided_once_among_concurrent_deciders(
    store: Store, approvals: ApprovalDecisionStore
) -> None:
    s = await seed(store)
    await add(store, s, "apr_1")
    results = await asyncio.gather(
        *(
            approvals.decide(
                "apr_1",
                decision="approved" if i % 2 else "denied",
                now=NOW + i,
                actor=f"key_{i}",
                reason=None,
                entry=decided(s, decision="approved" if i % 2 else "denied", actor=f"key_{i}"),
            )
            for i in range(DECIDERS)
        )
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    (entry,) = await store.ledger()
    stored = await row(store, "approvals", "apr_1")
    assert (stored["status"], stored["decided_by"]) == (winners[0].status, winners[0].decided_by)
    assert (entry["decision"], entry["actor"]) == (stored["status"], stored["decided_by"])


async def test_a_decision_and_its_entry_commit_together(
    store: Store, approvals: ApprovalDecisionStore
) -> None:
    s = await seed(store)
    await add(store, s, "apr_1")
    with pytest.raises(MalformedEntry):
        await approvals.decide(
            "apr_1",
            decision="approved",
            now=NOW,
            actor="key_owner",
            reason=None,
            entry=decided(s, decision=None),
        )
    assert (await row(store, "approvals", "apr_1"))["status"] == "pending"
    assert await store.ledger() == []
