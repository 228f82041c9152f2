"""The kill switch's port's contract (``authority.storage.controls``), on every backend."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from authority.ledger.entries import Entry, MalformedEntry
from authority.storage.controls import Batch, Cascade, ControlsStore, RevokedDelegation
from authority.storage.memory.controls import MemoryControlsStore

from .rows import insert, port, row, rows
from .support import NOW, Seeded, Store, seed

RUNNERS = 50
REASON = "it is all going wrong"


@pytest.fixture
def controls(store: Store) -> ControlsStore:
    return port(store, MemoryControlsStore, "controls_store")


async def fleet(store: Store) -> Seeded:
    """The owner's agents agt_1..agt_3 and delegations dlg_1, dlg_2, all covered by a
    kill at NOW; agt_4 and dlg_4 created after it, agt_5 and dlg_3 stopped before it."""
    s = await seed(store)
    for n, created_at, status in (
        (2, NOW - 50, "active"),
        (3, NOW - 50, "active"),
        (4, NOW + 100, "active"),
        (5, NOW - 50, "quarantined"),
    ):
        await insert(
            store,
            "agents",
            {
                "id": f"agt_{n}",
                "owner_id": s.owner_id,
                "name": f"agent {n}",
                "status": status,
                "autonomy_level": 1,
                "jwks": '{"keys": []}',
                "quarantined_by": "key_earlier" if status == "quarantined" else None,
                "created_at": created_at,
                "updated_at": created_at,
            },
        )
    for n, agent, created_at, status in (
        (2, "agt_2", NOW - 50, "active"),
        (3, "agt_2", NOW - 50, "revoked"),
        (4, "agt_1", NOW + 100, "active"),
    ):
        await insert(
            store,
            "delegations",
            {
                "id": f"dlg_{n}",
                "owner_id": s.owner_id,
                "agent_id": agent,
                "intent": "more",
                "scope": "[]",
                "cnf_jkt": "k" * 43,
                "expires_at": NOW + 3600,
                "calls_used": 0,
                "status": status,
                "created_at": created_at,
            },
        )
    return s


def kill_entry(owner_id: str, **record: Any) -> Any:
    def entry(agent_count: int) -> Entry:
        return (
            "kill_switch",
            1,
            NOW,
            {
                "owner_id": owner_id,
                "actor": "key_owner",
                "reason": REASON,
                "agent_count": agent_count,
                **record,
            },
        )

    return entry


def entries(cascade: Cascade, batch: Batch) -> Sequence[Entry]:
    quarantined: list[Entry] = [
        (
            "agent_quarantined",
            1,
            NOW + 1,
            {
                "agent_id": a,
                "owner_id": cascade.owner_id,
                "actor": cascade.actor,
                "reason": cascade.reason,
            },
        )
        for a in batch.quarantined
    ]
    revoked: list[Entry] = [
        (
            "delegation_revoked",
            1,
            NOW + 1,
            {
                "delegation_id": d.id,
                "owner_id": cascade.owner_id,
                "agent_id": d.agent_id,
                "actor": cascade.actor,
                "reason": cascade.reason,
            },
        )
        for d in batch.revoked
    ]
    return quarantined + revoked


async def kill(controls: ControlsStore, s: Seeded) -> int:
    contained = await controls.kill(
        s.owner_id,
        actor="key_owner",
        reason=REASON,
        now=NOW,
        entry=kill_entry(s.owner_id),
        event_expires_at=NOW + 400,
    )
    assert contained is not None
    return contained.cascade_id


async def statuses(store: Store, table: str) -> dict[str, str]:
    return {r["id"]: r["status"] for r in await rows(store, table)}


async def test_the_kill_contains_the_owner_in_one_commit(
    store: Store, controls: ControlsStore
) -> None:
    s = await fleet(store)
    contained = await controls.kill(
        s.owner_id,
        actor="key_owner",
        reason=REASON,
        now=NOW,
        entry=kill_entry(s.owner_id),
        event_expires_at=NOW + 400,
    )
    assert contained is not None
    assert (contained.event.kind, contained.event.owner_id, contained.event.time) == (
        "owner",
        s.owner_id,
        NOW,
    )
    assert (await row(store, "owners", s.owner_id))["status"] == "suspended"
    (marker,) = await rows(store, "containment_cascades")
    assert marker == {
        "id": contained.cascade_id,
        "owner_id": s.owner_id,
        "actor": "key_owner",
        "reason": REASON,
        "contained_at": NOW,
        "phase": "agents",
        "cursor": None,
        "quarantined": 0,
        "revoked": 0,
        "finished_at": None,
    }
    assert await store.ledger() == [
        {
            "kind": "kill_switch",
            "version": 1,
            "time": NOW,
            "owner_id": s.owner_id,
            "actor": "key_owner",
            "reason": REASON,
            "agent_count": 3,  # the active agents created by then
        }
    ]
    assert [(e["kind"], e["owner_id"], e["expires_at"]) for e in await store.events()] == [
        ("owner", s.owner_id, NOW + 400)
    ]
    # Nothing is stopped one by one yet: the owner's status refuses everything.
    assert set((await statuses(store, "agents")).values()) == {"active", "quarantined"}
    assert await controls.unfinished() == [contained.cascade_id]
    assert await controls.unfinished(s.owner_id) == [contained.cascade_id]
    assert await controls.unfinished("own_2") == []


async def test_the_kill_of_no_owner_writes_nothing(store: Store, controls: ControlsStore) -> None:
    await fleet(store)

    def entry(agent_count: int) -> Entry:
        raise AssertionError("not asked")

    killed = await controls.kill(
        "own_x", actor="key", reason=REASON, now=NOW, entry=entry, event_expires_at=NOW
    )
    assert killed is None
    assert await rows(store, "containment_cascades") == []
    assert await store.ledger() == []
    assert await store.events() == []


async def test_the_containment_and_its_entry_commit_together(
    store: Store, controls: ControlsStore
) -> None:
    s = await fleet(store)
    with pytest.raises(MalformedEntry):
        await controls.kill(
            s.owner_id,
            actor="key_owner",
            reason=REASON,
            now=NOW,
            entry=kill_entry(s.owner_id, agent_count=-1),
            event_expires_at=NOW + 400,
        )
    assert (await row(store, "owners", s.owner_id))["status"] == "active"
    assert await rows(store, "containment_cascades") == []
    assert await store.ledger() == []
    assert await store.events() == []


async def test_the_cascade_stops_each_covered_object_in_bounded_batches(
    store: Store, controls: ControlsStore
) -> None:
    s = await fleet(store)
    cascade_id = await kill(controls, s)
    batches = []
    for _ in range(7):
        batches.append(await controls.step(cascade_id, now=NOW + 1, limit=2, entries=entries))
    assert batches == [
        Batch(False, quarantined=("agt_1", "agt_2")),
        Batch(False, quarantined=("agt_3",)),
        Batch(False),  # on to the delegations
        Batch(
            False,
            revoked=(RevokedDelegation("dlg_1", s.agent_id), RevokedDelegation("dlg_2", "agt_2")),
        ),
        Batch(True),
        Batch(True),
        Batch(True),
    ]
    assert await statuses(store, "agents") == {
        "agt_1": "quarantined",
        "agt_2": "quarantined",
        "agt_3": "quarantined",
        "agt_4": "active",  # created after the kill
        "agt_5": "quarantined",
    }
    agent = await row(store, "agents", "agt_1")
    assert (agent["status_reason"], agent["quarantined_by"], agent["updated_at"]) == (
        REASON,
        "key_owner",
        NOW + 1,
    )
    assert (await row(store, "agents", "agt_5"))["quarantined_by"] == "key_earlier"
    assert await statuses(store, "delegations") == {
        "dlg_1": "revoked",
        "dlg_2": "revoked",
        "dlg_3": "revoked",
        "dlg_4": "active",
    }
    delegation = await row(store, "delegations", "dlg_2")
    assert (delegation["revoked_at"], delegation["revoked_by"], delegation["revoked_reason"]) == (
        NOW,
        "key_owner",
        REASON,
    )
    ledger = await store.ledger()
    assert [(e["kind"], e.get("agent_id"), e.get("delegation_id")) for e in ledger[1:]] == [
        ("agent_quarantined", "agt_1", None),
        ("agent_quarantined", "agt_2", None),
        ("agent_quarantined", "agt_3", None),
        ("delegation_revoked", s.agent_id, "dlg_1"),
        ("delegation_revoked", "agt_2", "dlg_2"),
    ]
    (marker,) = await rows(store, "containment_cascades")
    assert {k: marker[k] for k in ("phase", "cursor", "quarantined", "revoked", "finished_at")} == {
        "phase": "done",
        "cursor": None,
        "quarantined": 3,
        "revoked": 2,
        "finished_at": NOW + 1,
    }
    assert (await row(store, "owners", s.owner_id))["status"] == "active"
    assert await controls.unfinished() == []
    assert len(await store.events()) == 1  # the owner's: the cascade records none


async def test_each_batch_is_done_once_among_concurrent_runners(
    store: Store, controls: ControlsStore
) -> None:
    s = await fleet(store)
    cascade_id = await kill(controls, s)
    results = await asyncio.gather(
        *(controls.step(cascade_id, now=NOW + 1, limit=1, entries=entries) for _ in range(RUNNERS))
    )
    stopped = sorted(a for b in results for a in b.quarantined)
    revoked = sorted(d.id for b in results for d in b.revoked)
    assert stopped == ["agt_1", "agt_2", "agt_3"]
    assert revoked == ["dlg_1", "dlg_2"]
    ledger = await store.ledger()
    assert sorted(e["agent_id"] for e in ledger if e["kind"] == "agent_quarantined") == stopped
    assert (
        sorted(e["delegation_id"] for e in ledger if e["kind"] == "delegation_revoked") == revoked
    )
    (marker,) = await rows(store, "containment_cascades")
    assert (marker["quarantined"], marker["revoked"], marker["phase"]) == (3, 2, "done")
    assert (await row(store, "owners", s.owner_id))["status"] == "active"


async def test_a_batch_and_its_entries_commit_together(
    store: Store, controls: ControlsStore
) -> None:
    s = await fleet(store)
    cascade_id = await kill(controls, s)

    def malformed(cascade: Cascade, batch: Batch) -> Sequence[Entry]:
        return [("agent_quarantined", 1, NOW, {"agent_id": a}) for a in batch.quarantined]

    with pytest.raises(MalformedEntry):
        await controls.step(cascade_id, now=NOW + 1, limit=2, entries=malformed)
    assert (await statuses(store, "agents"))["agt_1"] == "active"
    (marker,) = await rows(store, "containment_cascades")
    assert (marker["cursor"], marker["quarantined"]) == (None, 0)
    assert len(await store.ledger()) == 1
    # The batch is still to do, and is done whole by the next runner.
    batch = await controls.step(cascade_id, now=NOW + 1, limit=2, entries=entries)
    assert batch.quarantined == ("agt_1", "agt_2")


async def test_the_last_cascade_of_the_owner_lifts_the_suspension(
    store: Store, controls: ControlsStore
) -> None:
    s = await fleet(store)
    first, second = await kill(controls, s), await kill(controls, s)
    while not (await controls.step(first, now=NOW + 1, limit=10, entries=entries)).finished:
        pass
    assert (await row(store, "owners", s.owner_id))["status"] == "suspended"
    assert await controls.unfinished(s.owner_id) == [second]
    while not (await controls.step(second, now=NOW + 2, limit=10, entries=entries)).finished:
        pass
    assert (await row(store, "owners", s.owner_id))["status"] == "active"
    # The second found everything stopped already: no entry twice.
    kinds = [e["kind"] for e in await store.ledger()]
    assert kinds.count("agent_quarantined") == 3
    assert kinds.count("delegation_revoked") == 2


async def test_an_unknown_cascade_is_finished(store: Store, controls: ControlsStore) -> None:
    await fleet(store)
    assert await controls.step(99, now=NOW, limit=5, entries=entries) == Batch(True)


async def test_agent_owner(store: Store, controls: ControlsStore) -> None:
    s = await fleet(store)
    assert await controls.agent_owner(s.agent_id) == s.owner_id
    assert await controls.agent_owner("agt_unknown") is None


async def test_refusals_since_count_the_owners_agents_denials_for_the_reasons(
    store: Store, controls: ControlsStore
) -> None:
    s = await fleet(store)
    for n, (agent, at, decision, reason) in enumerate(
        [
            (s.agent_id, NOW, "denied", "owner_inactive"),
            ("agt_2", NOW + 5, "denied", "agent_inactive"),
            (s.agent_id, NOW - 1, "denied", "owner_inactive"),  # before
            (s.agent_id, NOW, "denied", "rate_limited"),  # another reason
            (s.agent_id, NOW, "issued", None),
            ("agt_other", NOW, "denied", "owner_inactive"),  # not the owner's agent
        ]
    ):
        await insert(
            store,
            "grants",
            {
                "id": f"grt_r{n}",
                "created_at": at,
                "decision": decision,
                "reason": reason,
                "agent_id": agent,
                "owner_id": s.owner_id,
                "single_use": False,
            },
        )
    reasons = ["owner_inactive", "agent_inactive", "delegation_revoked"]
    assert await controls.refused_since(s.owner_id, NOW, reasons) == 2
    assert await controls.refused_since(s.owner_id, NOW - 1, reasons) == 3
    assert await controls.refused_since("own_2", NOW, reasons) == 0
