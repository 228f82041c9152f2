"""A call the gateway blocked counts towards the agent's automatic quarantine."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import select

from authority import containment
from authority.settings import Settings
from authority.storage.schema import agents, ledger_entries
from tests.support import World

from .support import call, issued_jti, submit


@pytest.fixture
def settings(settings_factory: Any) -> Settings:
    result: Settings = settings_factory(checkpoint_interval=3600.0, containment_threshold=2)
    return result


async def agent_status(world: World) -> str:
    async with world.services.engine.connect() as conn:
        status: str = (
            await conn.execute(select(agents.c.status).where(agents.c.id == world.agent_id))
        ).scalar_one()
    return status


async def blocked(world: World, jti: str) -> None:
    response = await submit(world, call(jti, outcome="blocked", status=403, blocked_by="no-rm"))
    assert response.status_code == 201, response.text


async def test_blocked_calls_quarantine_the_agent(world: World) -> None:
    first = await issued_jti(world)
    second = await issued_jti(world)
    await blocked(world, first)
    assert await containment.violations(world.services, world.agent_id) == 1
    # The same token, blocked again (a retried call): counted once.
    await blocked(world, first)
    assert await containment.violations(world.services, world.agent_id) == 1
    assert await agent_status(world) == "active"
    await blocked(world, second)
    assert await agent_status(world) == "quarantined"
    async with world.services.engine.connect() as conn:
        bodies = (
            await conn.execute(
                select(ledger_entries.c.body).where(ledger_entries.c.kind == "agent_contained")
            )
        ).all()
    [contained] = [orjson.loads(row.body) for row in bodies]
    assert contained["agent_id"] == world.agent_id
    assert contained["trigger"] == "command_blocked"


async def test_other_outcomes_do_not_count(world: World) -> None:
    for outcome, status in (("forwarded", 200), ("upstream_error", 502), ("refused", 403)):
        jti = await issued_jti(world)
        response = await submit(world, call(jti, outcome=outcome, status=status))
        assert response.status_code == 201, response.text
    assert await containment.violations(world.services, world.agent_id) == 0
    assert await agent_status(world) == "active"


async def test_a_resubmitted_block_counts_once(world: World) -> None:
    document = call(await issued_jti(world), outcome="blocked", status=403, blocked_by="no-rm")
    for _ in range(3):
        assert (await submit(world, document)).status_code in (200, 201)
    assert await containment.violations(world.services, world.agent_id) == 1
