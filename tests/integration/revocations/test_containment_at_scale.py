"""The kill switch at scale: contained by one commit, objects stopped by a resumable cascade."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from authority.ledger.checkpoints import ledger_keyset
from authority.ledger.entries import MalformedEntry
from authority.ledger.verify import verify_export
from authority.management import cascade
from authority.settings import Settings
from authority.storage.schema import (
    agents,
    containment_cascades,
    delegations,
    ledger_entries,
    owners,
)
from authority.storage.sql.ledger import append_many
from tests.integration.ledger.ledgerdata import auditor_headers, fetch_checkpoints, fetch_export
from tests.revocation_support import is_active, issue
from tests.support import AgentKey, World

from .test_controls import entries, kill


class Crash(Exception):
    """Stands for the process dying in the middle of the cascade."""


async def second_agent(world: World, name: str = "second") -> World:
    """Another agent of the same owner, with a delegation of its own."""
    other = World(world.client, world.services, world.clock, admin=world.admin)
    other.owner_id, other.owner_key = world.owner_id, world.owner_key
    other.server_id, other.server_secret = world.server_id, world.server_secret
    other.agent_key = AgentKey()
    agent = await other.post(
        "/v1/agents",
        other.owner_key,
        {"name": name, "autonomy_level": 2, "jwks": other.agent_key.jwks()},
    )
    other.agent_id = agent["id"]
    await other.delegate()
    return other


def crash_at(monkeypatch: pytest.MonkeyPatch, at: int) -> list[int]:
    """Make the cascade's batch number ``at`` (1-based) fail, as a crash would."""
    calls = [0]
    real = cascade.step

    async def step(*args: Any) -> bool:
        calls[0] += 1
        if calls[0] == at:
            raise Crash
        return await real(*args)

    monkeypatch.setattr(cascade, "step", step)
    return calls


async def owner_status(world: World) -> str:
    async with world.services.engine.connect() as conn:
        query = select(owners.c.status).where(owners.c.id == world.owner_id)
        return str((await conn.execute(query)).scalar())


async def statuses(world: World) -> tuple[set[str], set[str]]:
    async with world.services.engine.connect() as conn:
        a = select(agents.c.status).where(agents.c.owner_id == world.owner_id)
        d = select(delegations.c.status).where(delegations.c.owner_id == world.owner_id)
        return (
            set((await conn.execute(a)).scalars()),
            set((await conn.execute(d)).scalars()),
        )


async def unfinished(world: World) -> int:
    async with world.services.engine.connect() as conn:
        query = (
            select(func.count())
            .select_from(containment_cascades)
            .where(containment_cascades.c.finished_at.is_(None))
        )
        return int((await conn.execute(query)).scalar_one())


async def resume(world: World) -> None:
    """What start-up does after a crash, waited for."""
    cascade.resume_unfinished(world.services)
    tasks = set(world.services.cascades)
    while tasks:
        await asyncio.gather(*tasks)
        tasks = set(world.services.cascades)


async def verify_ledger(world: World, client: httpx.AsyncClient) -> int:
    sequencer = world.services.sequencer
    assert sequencer is not None
    await sequencer.run_once()
    headers = await auditor_headers(world.services)
    lines = await fetch_export(client, headers)
    checkpoints = await fetch_checkpoints(client, headers)
    jwks = (await client.get("/v1/ledger/keys")).json()

    async def source() -> Any:
        for line in lines:
            yield line

    await verify_export(source(), checkpoints, ledger_keyset(jwks))
    return len(lines)


@pytest.fixture
def settings(settings_factory: Any) -> Settings:
    """One object per batch, so that a crash can fall between any two."""
    result: Settings = settings_factory(kill_cascade_batch_size=1)
    return result


async def test_a_crash_before_any_batch_leaves_the_owner_contained(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing of the cascade ran: the owner's status alone refuses every call."""
    other = await second_agent(world)
    token = await issue(other)
    crash_at(monkeypatch, 1)
    assert (await kill(world)).status_code == 500

    assert await owner_status(world) == "suspended"
    assert await statuses(world) == ({"active"}, {"active"})  # nothing stopped one by one
    assert (await world.exchange()).status_code == 400
    assert (await other.exchange()).status_code == 400
    assert await is_active(other, token) is False
    assert len(await entries(world, "kill_switch")) == 1


async def test_a_crash_in_the_middle_of_the_cascade_finishes_on_restart(
    world: World, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = await second_agent(world)
    await world.delegate(intent="second errand")
    token = await issue(other)
    # Batch 1 quarantines one agent; batch 2 dies before the second one is stopped.
    crash_at(monkeypatch, 2)
    assert (await kill(world)).status_code == 500
    assert await owner_status(world) == "suspended"
    assert len(await entries(world, "agent_quarantined")) == 1
    assert (await other.exchange()).status_code == 400
    assert (await world.exchange()).status_code == 400
    assert await is_active(other, token) is False
    assert await unfinished(world) == 1

    monkeypatch.undo()
    await resume(world)

    assert await unfinished(world) == 0
    assert await statuses(world) == ({"quarantined"}, {"revoked"})
    assert await owner_status(world) == "active"
    # Every object once in the ledger, whatever the crash: no batch was written twice.
    quarantined = await entries(world, "agent_quarantined")
    revoked = await entries(world, "delegation_revoked")
    assert sorted(e["agent_id"] for e in quarantined) == sorted([world.agent_id, other.agent_id])
    assert len(revoked) == len({e["delegation_id"] for e in revoked}) == 3
    assert await verify_ledger(world, client) > 0
    # Still contained the way the kill switch leaves agents: released one by one.
    assert (await world.exchange()).status_code == 400


async def test_pressing_the_kill_switch_again_finishes_a_crashed_cascade(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await second_agent(world)
    crash_at(monkeypatch, 2)
    assert (await kill(world)).status_code == 500
    monkeypatch.undo()

    response = await kill(world)
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["quarantined_agents"]) == 1  # the one the crashed batch did not reach
    assert len(body["revoked_delegations"]) == 2
    assert await unfinished(world) == 0
    assert await owner_status(world) == "active"
    assert await statuses(world) == ({"quarantined"}, {"revoked"})


async def test_the_kill_reports_when_it_contained_and_the_calls_refused_since(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused: list[int] = []
    real = cascade.run

    async def run(services: Any, cascade_id: int) -> cascade.Stopped:
        # The owner's agent calls while the cascade has not started: refused.
        refused.append((await world.exchange()).status_code)
        return await real(services, cascade_id)

    monkeypatch.setattr(cascade, "run", run)
    response = await kill(world)
    assert response.status_code == 200, response.text
    body = response.json()
    assert refused == [400]
    assert body["contained_at"] == int(world.clock.now())
    assert body["refused_since"] == 1


async def test_the_owner_is_active_again_once_the_cascade_is_done(world: World) -> None:
    assert (await kill(world)).status_code == 200
    assert await owner_status(world) == "active"
    assert await unfinished(world) == 0


async def test_bulk_append_keeps_the_order_and_writes_nothing_if_one_entry_is_malformed(
    world: World,
) -> None:
    good = [
        ("agent_quarantined", 1, 1, {"agent_id": f"a{i}", "owner_id": "o", "actor": "k"})
        for i in range(1200)
    ]
    async with world.services.engine.connect() as conn:
        before = (await conn.execute(select(func.count()).select_from(ledger_entries))).scalar()
    with pytest.raises(MalformedEntry):
        async with world.services.engine.begin() as conn:
            await append_many(conn, [*good, ("agent_quarantined", 1, 1, {"nope": 1})])
    async with world.services.engine.begin() as conn:
        await append_many(conn, good)
    async with world.services.engine.connect() as conn:
        query = (
            select(ledger_entries.c.agent_id)
            .where(ledger_entries.c.kind == "agent_quarantined")
            .order_by(ledger_entries.c.id)
        )
        written = list((await conn.execute(query)).scalars())
        after = (await conn.execute(select(func.count()).select_from(ledger_entries))).scalar()
    assert written == [f"a{i}" for i in range(1200)]
    assert after == (before or 0) + 1200
