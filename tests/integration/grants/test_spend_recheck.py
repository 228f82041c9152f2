"""A registration that changes while an exchange is being decided refuses it at the spend.

The exchange loads the agent, tool and resource server once, verifies and decides, and
only then spends the call. Each test commits a change in between (by wrapping the load,
so the change lands after the decision read its rows and before the spend): the spend
finds the rows no longer as decided and issues nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text, update

from authority.grants import loading
from authority.storage.schema import tools
from tests.integration.grants.test_token_exchange import grant_rows, last_grant
from tests.support import AgentKey, World

Change = Callable[[World], Awaitable[None]]


async def _tool_id(world: World, name: str = "github.issues.create") -> str:
    listed = await world.client.get("/v1/tools", headers=world.auth(world.admin))
    [tool] = [t for t in listed.json()["items"] if t["name"] == name]
    return str(tool["id"])


async def _patch(world: World, path: str, key: str, body: dict[str, Any]) -> None:
    response = await world.client.patch(path, json=body, headers=world.auth(key))
    assert response.status_code == 200, response.text


async def _patch_tool(world: World, body: dict[str, Any]) -> None:
    await _patch(world, f"/v1/tools/{await _tool_id(world)}", world.admin, body)


async def retire_tool(world: World) -> None:
    tool_id = await _tool_id(world)
    response = await world.client.delete(f"/v1/tools/{tool_id}", headers=world.auth(world.admin))
    assert response.status_code in (200, 204), response.text


async def require_approval(world: World) -> None:
    await _patch_tool(world, {"approval_required": True})


async def raise_risk(world: World) -> None:
    await _patch_tool(world, {"risk_tier": 3})


async def require_dpop(world: World) -> None:
    await _patch_tool(world, {"dpop_required": True})


async def make_single_use(world: World) -> None:
    await _patch_tool(world, {"single_use": True})


async def cap_lifetime(world: World) -> None:
    await _patch_tool(world, {"max_token_lifetime": 1})


async def withdraw_action(world: World) -> None:
    await _patch_tool(world, {"actions": ["read"], "read_actions": ["read"]})


async def lower_autonomy(world: World) -> None:
    await _patch(world, f"/v1/agents/{world.agent_id}", world.owner_key, {"autonomy_level": 0})


async def replace_agent_key(world: World) -> None:
    jwks = AgentKey().jwks()
    await _patch(world, f"/v1/agents/{world.agent_id}", world.owner_key, {"jwks": jwks})


def _during_decision(monkeypatch: pytest.MonkeyPatch, world: World, change: Change) -> None:
    original = loading.load

    async def load_then_change(*args: Any) -> loading.Loaded:
        loaded = await original(*args)
        monkeypatch.setattr(loading, "load", original)
        await change(world)
        return loaded

    monkeypatch.setattr(loading, "load", load_then_change)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (retire_tool, "tool_inactive"),
        (require_approval, "registration_changed"),
        (raise_risk, "registration_changed"),
        (require_dpop, "registration_changed"),
        (make_single_use, "registration_changed"),
        (cap_lifetime, "registration_changed"),
        (withdraw_action, "registration_changed"),
        (lower_autonomy, "registration_changed"),
        (replace_agent_key, "registration_changed"),
    ],
)
async def test_a_change_during_the_decision_refuses_the_spend(
    world: World, monkeypatch: pytest.MonkeyPatch, change: Change, reason: str
) -> None:
    _during_decision(monkeypatch, world, change)
    response = await world.exchange()
    assert response.status_code == 400, response.text
    assert "access_token" not in response.json()
    refused = await last_grant(world)
    assert (refused.decision, refused.reason) == ("denied", reason)
    assert [g for g in await grant_rows(world) if g.decision == "issued"] == []


async def test_a_change_that_decides_nothing_does_not_refuse(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only what the decision read is compared: a new description changes nothing."""
    _during_decision(monkeypatch, world, lambda w: _patch_tool(w, {"description": "new text"}))
    response = await world.exchange()
    assert response.status_code == 200, response.text


async def test_the_next_request_is_decided_under_the_new_rules(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _during_decision(monkeypatch, world, require_approval)
    assert (await world.exchange()).status_code == 400
    pending = await world.exchange()
    assert pending.status_code == 200, pending.text
    assert "auth_req_id" in pending.json()


async def test_a_change_committing_during_the_spend_is_waited_for(world: World) -> None:
    """PostgreSQL: the spend holds the tool row FOR SHARE, so an uncommitted change to it
    makes the spend wait, and once the change commits the spend sees it and refuses."""
    if world.services.sql.dialect != "postgresql":
        pytest.skip("SQLite serialises writers: a change cannot commit during a spend")
    async with world.services.engine.connect() as conn:
        await conn.execute(
            update(tools).where(tools.c.name == "github.issues.create").values(risk_tier=3)
        )
        exchange = asyncio.ensure_future(world.exchange())
        for _ in range(500):  # until the spend waits on the row lock, or the call is answered
            if exchange.done() or await _waiting_on_a_lock(world):
                break
            await asyncio.sleep(0.01)
        await conn.commit()
    response = await exchange
    assert response.status_code == 400, response.text
    assert (await last_grant(world)).reason == "registration_changed"


async def _waiting_on_a_lock(world: World) -> bool:
    async with world.services.engine.connect() as conn:
        waiting = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)
