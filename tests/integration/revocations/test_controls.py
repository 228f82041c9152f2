"""The owner's controls: revoke a delegation, quarantine and release an agent, the kill switch."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from authority.storage.schema import (
    agents,
    delegations,
    grants,
    ledger_entries,
    revocation_events,
)
from tests.revocation_support import is_active, issue
from tests.support import AgentKey, World


async def entries(world: World, kind: str) -> list[dict[str, Any]]:
    async with world.services.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(ledger_entries.c.body)
                .where(ledger_entries.c.kind == kind)
                .order_by(ledger_entries.c.id)
            )
        ).all()
    return [json.loads(r.body) for r in rows]


async def events(world: World) -> list[Any]:
    async with world.services.engine.connect() as conn:
        query = select(revocation_events).order_by(revocation_events.c.id)
        return list((await conn.execute(query)).all())


async def call(
    world: World, path: str, key: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    return await world.client.post(path, json=body, headers=world.auth(key))


async def quarantine(world: World, key: str | None = None) -> httpx.Response:
    path = f"/v1/agents/{world.agent_id}/quarantine"
    return await call(world, path, key or world.owner_key, {"reason": "sent mail to everyone"})


async def release(world: World, key: str | None = None, **body: Any) -> httpx.Response:
    return await call(world, f"/v1/agents/{world.agent_id}/release", key or world.owner_key, body)


async def kill(world: World, owner_id: str | None = None, key: str | None = None) -> httpx.Response:
    return await call(
        world,
        f"/v1/owners/{owner_id or world.owner_id}/kill",
        key or world.owner_key,
        {"reason": "it is all going wrong"},
    )


async def other_owner_world(world: World) -> World:
    """A second owner with an agent and a delegation, in the same authority."""
    other = World(world.client, world.services, world.clock, admin=world.admin)
    owner = await other.post("/v1/owners", world.admin, {"name": "someone-else"})
    other.owner_id = owner["id"]
    issued = await other.post(f"/v1/owners/{other.owner_id}/api-keys", world.admin, {})
    other.owner_key = issued["api_key"]
    other.server_id, other.server_secret = world.server_id, world.server_secret
    other.agent_key = AgentKey()
    agent = await other.post(
        "/v1/agents",
        other.owner_key,
        {"name": "helper", "autonomy_level": 2, "jwks": other.agent_key.jwks()},
    )
    other.agent_id = agent["id"]
    await other.delegate()
    return other


async def last_denial(world: World) -> str:
    """The reason of the one denied grant so far."""
    async with world.services.engine.connect() as conn:
        query = select(grants.c.reason).where(grants.c.decision == "denied")
        [reason] = (await conn.execute(query)).scalars().all()
    return str(reason)


async def agent_status(world: World) -> str:
    async with world.services.engine.connect() as conn:
        query = select(agents.c.status).where(agents.c.id == world.agent_id)
        return str((await conn.execute(query)).scalar())


# --- revoking a delegation ------------------------------------------------------------------------
async def test_revoking_a_delegation_kills_its_tokens_and_emits_an_event(world: World) -> None:
    token = await issue(world)
    path = f"/v1/delegations/{world.delegation_id}/revoke"
    revoked = await call(world, path, world.owner_key, {"reason": "done"})
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    assert await is_active(world, token) is False
    assert (await world.exchange()).status_code == 400
    assert await last_denial(world) == "delegation_revoked"
    [event] = await events(world)
    assert (event.kind, event.delegation_id, event.agent_id, event.owner_id) == (
        "delegation",
        world.delegation_id,
        world.agent_id,
        world.owner_id,
    )
    [entry] = await entries(world, "delegation_revoked")
    assert (entry["reason"], entry["delegation_id"]) == ("done", world.delegation_id)
    # Revoking again changes nothing and records nothing.
    assert (await call(world, path, world.owner_key, {})).status_code == 200
    assert len(await events(world)) == 1


# --- quarantine and release -----------------------------------------------------------------------
async def test_quarantine_stops_exchanges_and_live_tokens(world: World) -> None:
    token = await issue(world)
    response = await quarantine(world)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["status_reason"]) == ("quarantined", "sent mail to everyone")
    assert await is_active(world, token) is False
    assert (await world.exchange()).status_code == 400
    assert await last_denial(world) == "agent_inactive"
    [entry] = await entries(world, "agent_quarantined")
    assert (entry["agent_id"], entry["reason"]) == (world.agent_id, "sent mail to everyone")
    assert entry["actor"].startswith("key_")
    [event] = await events(world)
    assert (event.kind, event.agent_id, event.owner_id) == ("agent", world.agent_id, world.owner_id)
    assert event.expires_at > event.created_at


async def test_release_resumes_the_agents_delegations(world: World) -> None:
    await quarantine(world)
    response = await release(world, reason="false alarm")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["status_reason"]) == ("active", None)
    token = await issue(world)
    assert await is_active(world, token) is True
    [entry] = await entries(world, "agent_released")
    assert entry["reason"] == "false alarm"
    assert [e.kind for e in await events(world)] == ["agent"]  # a release revokes nothing


async def test_quarantine_and_release_are_idempotent(world: World) -> None:
    assert (await quarantine(world)).status_code == 200
    assert (await quarantine(world)).status_code == 200
    assert len(await entries(world, "agent_quarantined")) == 1
    assert (await release(world)).status_code == 200
    assert (await release(world)).status_code == 200
    assert len(await entries(world, "agent_released")) == 1


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": "a\x00b"}])
async def test_quarantine_needs_a_reason(world: World, body: dict[str, Any]) -> None:
    path = f"/v1/agents/{world.agent_id}/quarantine"
    response = await call(world, path, world.owner_key, body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert await agent_status(world) == "active"


async def test_an_admins_quarantine_is_lifted_only_by_an_admin(world: World) -> None:
    assert (await quarantine(world, world.admin)).status_code == 200
    refused = await release(world)
    assert refused.status_code == 403
    assert await agent_status(world) == "quarantined"
    assert (await world.exchange()).status_code == 400
    assert (await release(world, world.admin)).status_code == 200
    assert (await world.exchange()).status_code == 200


async def test_an_admin_takes_over_an_owners_quarantine(world: World) -> None:
    # A stolen owner key must not be able to pre-empt a security team's quarantine.
    assert (await quarantine(world)).status_code == 200
    assert (await quarantine(world, world.admin)).status_code == 200
    refused = await release(world)
    assert refused.status_code == 403
    assert await agent_status(world) == "quarantined"
    assert (await release(world, world.admin)).status_code == 200


async def test_owner_lifts_their_own_quarantine(world: World) -> None:
    assert (await quarantine(world)).status_code == 200
    assert (await release(world)).status_code == 200
    assert (await world.exchange()).status_code == 200


async def test_another_owners_agent_does_not_exist(world: World) -> None:
    other = await other_owner_world(world)
    path = f"/v1/agents/{other.agent_id}/quarantine"
    assert (await call(world, path, world.owner_key, {"reason": "x"})).status_code == 404
    path = f"/v1/agents/{other.agent_id}/release"
    assert (await call(world, path, world.owner_key, {})).status_code == 404
    assert (await other.exchange()).status_code == 200


async def test_auditors_cannot_use_the_controls(world: World) -> None:
    auditor = await world.post("/v1/api-keys", world.admin, {"role": "auditor", "label": "a"})
    key = auditor["api_key"]
    assert (await quarantine(world, key)).status_code == 403
    assert (await kill(world, key=key)).status_code == 403
    assert await agent_status(world) == "active"


async def test_a_retired_agent_cannot_be_quarantined_or_released(world: World) -> None:
    response = await world.client.delete(
        f"/v1/agents/{world.agent_id}", headers=world.auth(world.owner_key)
    )
    assert response.status_code == 200
    assert (await quarantine(world)).status_code == 409
    assert (await release(world)).status_code == 409


async def test_an_owner_cannot_lift_a_quarantine_by_editing_the_agent(world: World) -> None:
    await quarantine(world)
    response = await world.client.patch(
        f"/v1/agents/{world.agent_id}",
        json={"status": "active"},
        headers=world.auth(world.owner_key),
    )
    assert response.status_code == 400
    assert await agent_status(world) == "quarantined"


# --- the kill switch ------------------------------------------------------------------------------
async def test_kill_switch_stops_everything_of_the_owner_and_nothing_else(world: World) -> None:
    first = await issue(world)
    await world.delegate(intent="second errand")
    second = await issue(world)
    other = await other_owner_world(world)
    bystander = await issue(other)

    response = await kill(world)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["owner_id"] == world.owner_id
    assert body["quarantined_agents"] == [world.agent_id]
    assert len(body["revoked_delegations"]) == 2

    assert await is_active(world, first) is False
    assert await is_active(world, second) is False
    assert (await world.exchange()).status_code == 400
    async with world.services.engine.connect() as conn:
        query = select(delegations.c.status).where(delegations.c.owner_id == world.owner_id)
        statuses = (await conn.execute(query)).scalars().all()
    assert set(statuses) == {"revoked"}

    assert await is_active(other, bystander) is True
    assert (await other.exchange()).status_code == 200

    [switch] = await entries(world, "kill_switch")
    assert (switch["owner_id"], switch["reason"], switch["agent_count"]) == (
        world.owner_id,
        "it is all going wrong",
        1,
    )
    assert len(await entries(world, "delegation_revoked")) == 2
    assert len(await entries(world, "agent_quarantined")) == 1
    [event] = await events(world)
    assert (event.kind, event.owner_id, event.id) == ("owner", world.owner_id, body["event_id"])


async def test_kill_switch_is_final_for_delegations(world: World) -> None:
    await kill(world)
    assert (await release(world)).status_code == 200
    # The agent is back, but the delegations it held are not.
    assert (await world.exchange()).status_code == 400
    await world.delegate()
    assert (await world.exchange()).status_code == 200


async def test_owner_can_only_kill_themselves(world: World) -> None:
    other = await other_owner_world(world)
    assert (await kill(world, other.owner_id)).status_code == 404
    assert (await other.exchange()).status_code == 200


async def test_admin_can_kill_any_owner(world: World) -> None:
    token = await issue(world)
    assert (await kill(world, key=world.admin)).status_code == 200
    assert await is_active(world, token) is False
    # An admin's kill switch is an admin's to undo.
    assert (await release(world)).status_code == 403


async def test_kill_switch_needs_a_reason(world: World) -> None:
    response = await call(world, f"/v1/owners/{world.owner_id}/kill", world.owner_key, {})
    assert response.status_code == 400
    assert (await world.exchange()).status_code == 200


async def test_a_delegation_created_while_a_kill_switch_commits_is_refused(
    world: World, backend: str
) -> None:
    """Delegation creation holds the agent row FOR SHARE: a quarantine or kill switch
    that has updated the agent and not yet committed makes it wait, and it then sees
    the agent stopped. Without the lock it would read the old row and delegate."""
    if backend != "postgres":
        pytest.skip("SQLite serialises writers: the two cannot overlap")
    body = {
        "agent_id": world.agent_id,
        "intent": "triage bugs in acme/web",
        "scope": [{"tool": "github.issues.create", "resources": ["acme/*"], "actions": ["create"]}],
        "expires_in": 3600,
    }
    async with world.services.engine.connect() as conn:
        stopping = await conn.begin()
        await conn.execute(
            agents.update().where(agents.c.id == world.agent_id).values(status="quarantined")
        )
        creating = asyncio.create_task(call(world, "/v1/delegations", world.owner_key, body))
        await asyncio.sleep(0.3)
        assert not creating.done()  # waiting for the agent row
        await stopping.commit()
    response = await asyncio.wait_for(creating, 10)
    assert response.status_code == 400, response.text
    async with world.services.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(delegations.c.id).where(delegations.c.agent_id == world.agent_id)
            )
        ).all()
    assert [r.id for r in rows] == [world.delegation_id]  # only the one made before
