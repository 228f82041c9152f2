"""A kill switch on one instance while more of the owner's agents exchange than a pool holds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from authority.management import cascade
from authority.settings import Settings
from tests.integration.postgres.conftest import Instance
from tests.integration.revocations.test_containment_at_scale import second_agent
from tests.support import World

POOL = 2


@pytest.fixture
def settings(settings_factory: Any) -> Settings:
    result: Settings = settings_factory(database_pool_size=POOL, kill_cascade_batch_size=1)
    return result


async def test_a_kill_does_not_stall_another_owners_exchange(
    world: World, instance_b: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.revocations.test_controls import other_owner_world

    fleet = [world] + [await second_agent(world, f"agent-{i}") for i in range(POOL * 2)]
    bystander = await other_owner_world(world)

    # Hold the cascade after its first batch: the owner is contained, most of its agents
    # and delegations are not stopped one by one yet.
    paused, resume = asyncio.Event(), asyncio.Event()
    real, steps = cascade.step, [0]

    async def step(*args: Any) -> bool:
        steps[0] += 1
        if steps[0] == 2:
            paused.set()
            await resume.wait()
        return await real(*args)

    monkeypatch.setattr(cascade, "step", step)
    killing = asyncio.create_task(
        instance_b.client.post(
            f"/v1/owners/{world.owner_id}/kill",
            json={"reason": "it is all going wrong"},
            headers=world.auth(world.owner_key),
        )
    )
    await paused.wait()
    # More of the owner's agents calling at once than instance A's pool has connections,
    # and another owner's agent among them: the owner's are refused, the other's served.
    answers = await asyncio.gather(*(w.exchange() for w in [*fleet, bystander, *fleet]))
    statuses = [a.status_code for a in answers]
    assert statuses == [400] * len(fleet) + [200] + [400] * len(fleet)
    resume.set()
    response = await killing
    assert response.status_code == 200, response.text
    assert len(response.json()["quarantined_agents"]) == len(fleet)
    assert (await bystander.exchange()).status_code == 200
