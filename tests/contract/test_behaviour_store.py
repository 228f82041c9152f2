"""The behaviour port's contract (``authority.storage.behaviour``), on every backend."""

from __future__ import annotations

import json

import pytest

from authority.ledger.entries import Entry
from authority.storage.behaviour import BehaviourStore, Proposal
from authority.storage.memory.behaviour import MemoryBehaviourStore

from .rows import port, row
from .support import NOW, Seeded, Store, seed

VIOLATIONS = {"tool_not_delegated"}
STEP_UP = "behaviour_step_up"


@pytest.fixture
def behaviour(store: Store) -> BehaviourStore:
    return port(store, MemoryBehaviourStore, "behaviour_store")


async def grant(store: Store, s: Seeded, n: int, at: int, **columns: object) -> None:
    values = {
        "id": f"grt_b{n}",
        "created_at": at,
        "decision": "issued",
        "agent_id": s.agent_id,
        "owner_id": s.owner_id,
        "delegation_id": s.delegation_id,
        "tool": s.tool,
        "resource": "docs/a",
        "action": "read",
        "single_use": False,
        **columns,
    }
    await store.insert("grants", values)


def proposal(s: Seeded, proposal_id: str = "prm_1", level: int = 1) -> Proposal:
    return Proposal(
        id=proposal_id,
        agent_id=s.agent_id,
        owner_id=s.owner_id,
        created_at=NOW,
        status="proposed",
        from_level=level,
        to_level=level + 1,
        rule="calls >= 1",
        record=json.dumps({"calls": 3}),
        decided_at=None,
        decided_by=None,
    )


def proposed(s: Seeded, proposal_id: str = "prm_1") -> Entry:
    record = {
        "proposal_id": proposal_id,
        "agent_id": s.agent_id,
        "owner_id": s.owner_id,
        "from_level": 1,
        "to_level": 2,
        "rule": "calls >= 1",
        "days": 0,
        "calls": 3,
        "violations": 0,
        "step_ups": 0,
    }
    return ("promotion_proposed", 1, NOW, record)


async def test_folding_counts_each_issued_grant_once(
    store: Store, behaviour: BehaviourStore
) -> None:
    s = await seed(store, resource="docs/a", action="read")  # grt_1 at NOW - 10
    minute = (NOW // 60 - 5) * 60
    await grant(store, s, 1, minute)
    await grant(store, s, 2, minute + 1)
    await grant(store, s, 3, minute + 61, tool="mail", resource="inbox", action="send")
    await grant(store, s, 4, minute + 62, decision="denied", reason="tool_not_delegated")
    assert await behaviour.fold(until=minute + 120, start=0) == 3
    [stored] = await behaviour.baselines(since=0)
    assert (stored.calls, stored.active_minutes, stored.first_at) == (3, 2, minute)
    assert stored.tools == frozenset({s.tool, "mail"})
    # Folded already: nothing again; later grants only.
    assert await behaviour.fold(until=minute + 120, start=0) == 0
    assert await behaviour.fold(until=NOW + 60, start=0) == 1
    totals, calls = await behaviour.baseline(s.agent_id, limit=10)
    assert totals is not None and totals.calls == 4 and totals.last_at == NOW - 10
    assert [(c.tool, c.resource, c.action, c.calls) for c in calls] == [
        (s.tool, "docs/a", "read", 3),
        ("mail", "inbox", "send", 1),
    ]
    assert await behaviour.baselines(since=NOW) == []


async def test_the_record_counts_from_the_last_change_of_level(
    store: Store, behaviour: BehaviourStore
) -> None:
    s = await seed(store, resource="docs/a", action="read")
    await grant(store, s, 1, NOW - 5, decision="denied", reason="tool_not_delegated")
    await grant(store, s, 2, NOW - 4, decision="pending", reason=STEP_UP)
    record = await behaviour.record(s.agent_id, violations=VIOLATIONS, step_up=STEP_UP)
    assert record is not None
    assert (record.calls, record.violations, record.step_ups) == (1, 1, 1)
    assert (record.first_call, record.autonomy_level, record.since) == (NOW - 10, 1, 0)
    changed: Entry = (
        "autonomy_changed",
        2,
        NOW,
        {
            "agent_id": s.agent_id,
            "owner_id": s.owner_id,
            "previous_level": 0,
            "level": 1,
            "actor": "key_1",
        },
    )
    await behaviour.note([changed])
    after = await behaviour.record(s.agent_id, violations=VIOLATIONS, step_up=STEP_UP)
    assert after is not None and (after.calls, after.violations, after.since) == (0, 0, NOW)
    assert await behaviour.record("agt_none", violations=VIOLATIONS, step_up=STEP_UP) is None


async def test_one_open_proposal_and_its_acceptance(
    store: Store, behaviour: BehaviourStore
) -> None:
    s = await seed(store)
    assert await behaviour.propose(proposal(s), proposed(s))
    assert not await behaviour.propose(proposal(s, "prm_2"), proposed(s, "prm_2"))
    [only] = await behaviour.proposals(s.agent_id, limit=10)
    assert only.status == "proposed"

    def entries(p: Proposal) -> list[Entry]:
        record = {
            "proposal_id": p.id,
            "agent_id": p.agent_id,
            "owner_id": p.owner_id,
            "from_level": p.from_level,
            "to_level": p.to_level,
            "actor": "key_1",
        }
        return [("promotion_accepted", 1, NOW, record)]

    accepted = await behaviour.accept("prm_1", actor="key_1", now=NOW, entries=entries)
    assert not isinstance(accepted, str) and accepted.status == "accepted"
    assert (await row(store, "agents", s.agent_id))["autonomy_level"] == 2
    kinds = [entry["kind"] for entry in await store.ledger()]
    assert kinds == ["promotion_proposed", "promotion_accepted"]
    assert await behaviour.accept("prm_1", actor="key_1", now=NOW, entries=entries) == "stale"
    assert await behaviour.accept("prm_x", actor="key_1", now=NOW, entries=entries) == "unknown"
    # A proposal made for another level than the agent has is stale, and applies nothing.
    assert await behaviour.propose(proposal(s, "prm_3", level=1), proposed(s, "prm_3"))
    assert await behaviour.accept("prm_3", actor="key_1", now=NOW, entries=entries) == "stale"
    assert (await row(store, "agents", s.agent_id))["autonomy_level"] == 2
