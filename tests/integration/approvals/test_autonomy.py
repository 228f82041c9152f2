"""Autonomy levels: owners set them explicitly, every change is in the ledger, and the
level decides what needs approval."""

from __future__ import annotations

import httpx

from tests.support import World

from .support import RISKY_TOOL, ledger, with_risky_tool


async def set_level(
    world: World, level: int, key: str | None = None, **body: str
) -> httpx.Response:
    return await world.client.post(
        f"/v1/agents/{world.agent_id}/autonomy",
        json={"level": level, **body},
        headers=world.auth(key or world.owner_key),
    )


async def test_promotion_is_explicit_and_recorded(world: World) -> None:
    response = await set_level(world, 3, reason="earned it")
    assert response.status_code == 200, response.text
    assert response.json()["autonomy_level"] == 3
    [entry] = await ledger(world, "autonomy_changed")
    assert (entry["previous_level"], entry["level"], entry["reason"]) == (2, 3, "earned it")
    assert entry["actor"].startswith("key_") and entry["version"] == 2
    # Setting the level it has records nothing.
    assert (await set_level(world, 3)).status_code == 200
    assert len(await ledger(world, "autonomy_changed")) == 1


async def test_a_patch_of_the_level_is_recorded_too(world: World) -> None:
    response = await world.client.patch(
        f"/v1/agents/{world.agent_id}",
        json={"autonomy_level": 1},
        headers=world.auth(world.owner_key),
    )
    assert response.status_code == 200
    [entry] = await ledger(world, "autonomy_changed")
    assert (entry["previous_level"], entry["level"]) == (2, 1)


async def test_who_may_set_the_level(world: World) -> None:
    owner = await world.post("/v1/owners", world.admin, {"name": "other"})
    other = (await world.post(f"/v1/owners/{owner['id']}/api-keys", world.admin, {}))["api_key"]
    auditor = (await world.post("/v1/api-keys", world.admin, {"role": "auditor"}))["api_key"]
    assert (await set_level(world, 3, other)).status_code == 404
    assert (await set_level(world, 3, auditor)).status_code == 403
    assert (await set_level(world, 4)).status_code == 400
    assert (await set_level(world, 1, world.admin)).status_code == 200
    assert await ledger(world, "autonomy_changed") != []


async def test_the_level_decides_what_needs_approval(world: World) -> None:
    await with_risky_tool(world)
    assert (
        "auth_req_id"
        in (await world.exchange(tool=RISKY_TOOL, resource="prod/a", action="run")).json()
    )
    await set_level(world, 3)
    issued = await world.exchange(tool=RISKY_TOOL, resource="prod/a", action="run")
    assert "access_token" in issued.json()
    # Level 0 reads a risk-0 tool without asking and asks for anything else.
    await world.add_tool("docs.search", actions=["read", "write"], read=["read"], risk=0)
    await world.delegate(
        scope=[{"tool": "docs.search", "resources": ["*"], "actions": ["read", "write"]}]
    )
    await set_level(world, 0)
    read = await world.exchange(tool="docs.search", resource="wiki", action="read")
    assert "access_token" in read.json()
    write = await world.exchange(tool="docs.search", resource="wiki", action="write")
    assert "auth_req_id" in write.json()
