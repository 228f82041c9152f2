"""Two authority instances over one PostgreSQL and one Redis: what A accepts, B honours at once.

Instance A is the test's ``app``/``services`` (the ``world`` lives there); instance B has
services of its own over the same database and Redis key prefix. No sleep separates a
change on A from the check on B: "at once" means the very next request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text, update

from authority.storage.schema import delegations, grants
from tests.integration.postgres.conftest import Instance
from tests.revocation_support import (
    FEED,
    introspect,
    is_active,
    issue,
    revoke_as_server,
    serving,
)
from tests.revocation_support import basic as basic_auth
from tests.support import World


async def exchange_on(world: World, client: httpx.AsyncClient) -> httpx.Response:
    return await client.post("/oauth2/token", data=world.exchange_form())


async def active_on(world: World, client: httpx.AsyncClient, token: str) -> bool:
    response = await introspect(world, token, client=client)
    assert response.status_code == 200, response.text
    return bool(response.json()["active"])


# --- revoke, quarantine, kill on A; B honours it on its very next request -------------------------
async def test_token_revoked_on_a_is_inactive_on_b(world: World, instance_b: Instance) -> None:
    token = await issue(world)
    assert await active_on(world, instance_b.client, token) is True
    assert (await revoke_as_server(world, token)).status_code == 200
    assert await active_on(world, instance_b.client, token) is False


async def test_token_revoked_on_b_is_inactive_on_a(world: World, instance_b: Instance) -> None:
    token = await issue(world)
    assert (await revoke_as_server(world, token, client=instance_b.client)).status_code == 200
    assert await is_active(world, token) is False


async def test_delegation_revoked_on_a_stops_b(world: World, instance_b: Instance) -> None:
    token = await issue(world)
    await world.post(f"/v1/delegations/{world.delegation_id}/revoke", world.owner_key, {})
    assert await active_on(world, instance_b.client, token) is False
    assert (await exchange_on(world, instance_b.client)).status_code == 400


async def test_quarantine_on_a_refuses_exchange_on_b(world: World, instance_b: Instance) -> None:
    assert (await exchange_on(world, instance_b.client)).status_code == 200
    token = await issue(world)
    body = {"reason": "odd behaviour"}
    await world.post(f"/v1/agents/{world.agent_id}/quarantine", world.owner_key, body)
    assert (await exchange_on(world, instance_b.client)).status_code == 400
    assert await active_on(world, instance_b.client, token) is False
    await world.post(f"/v1/agents/{world.agent_id}/release", world.owner_key, {})
    assert (await exchange_on(world, instance_b.client)).status_code == 200


async def test_kill_switch_on_a_makes_every_live_token_inactive_on_b(
    world: World, instance_b: Instance
) -> None:
    tokens = [await issue(world) for _ in range(3)]
    await world.delegate(intent="another errand")
    tokens += [await issue(world) for _ in range(3)]
    tokens += [
        (await exchange_on(world, instance_b.client)).json()["access_token"] for _ in range(2)
    ]
    assert all([await active_on(world, instance_b.client, t) for t in tokens])
    await world.post(f"/v1/owners/{world.owner_id}/kill", world.owner_key, {"reason": "stop"})
    assert [await active_on(world, instance_b.client, t) for t in tokens] == [False] * 8
    assert (await exchange_on(world, instance_b.client)).status_code == 400


async def test_single_use_token_is_consumed_once_across_instances(
    world: World, instance_b: Instance
) -> None:
    await world.add_tool("vault.secrets.read", actions=["read"], read=["read"], single_use=True)
    await world.delegate(
        scope=[{"tool": "vault.secrets.read", "resources": ["prod/*"], "actions": ["read"]}]
    )
    token = await issue(world, tool="vault.secrets.read", resource="prod/db", action="read")
    answers = await asyncio.gather(
        *(
            introspect(world, token, client=client)
            for _ in range(10)
            for client in (world.client, instance_b.client)
        )
    )
    assert sum(a.json()["active"] for a in answers) == 1


# --- the race: a revocation that has returned is never followed by a successful exchange ---------
async def test_exchanges_racing_a_revocation(world: World, instance_b: Instance) -> None:
    """Workers exchange as fast as they can on A and B while the owner revokes on A."""
    results: list[tuple[float, float, int, str | None]] = []
    stop_at: list[float] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while not stop_at or time.monotonic() < stop_at[0]:
            started = time.monotonic()
            response = await exchange_on(world, client)
            token = response.json().get("access_token") if response.status_code == 200 else None
            results.append((started, time.monotonic(), response.status_code, token))

    workers = [
        asyncio.create_task(worker(client)) for client in (world.client, instance_b.client) * 4
    ]
    await asyncio.sleep(0.5)
    revoke = await world.client.post(
        f"/v1/delegations/{world.delegation_id}/revoke",
        json={"reason": "race"},
        headers=world.auth(world.owner_key),
    )
    returned = time.monotonic()
    assert revoke.status_code == 200
    stop_at.append(returned + 0.5)
    await asyncio.gather(*workers)

    before = [r for r in results if r[1] < returned]
    after = [r for r in results if r[0] > returned]
    assert any(status == 200 for _, _, status, _ in before), "no exchange succeeded before"
    assert after, "no exchange started after the revocation returned"
    assert {status for _, _, status, _ in after} == {400}
    issued = [token for _, _, _, token in results if token is not None]
    for token in issued:
        assert await active_on(world, instance_b.client, token) is False
    async with world.services.engine.connect() as conn:
        spent = (
            await conn.execute(
                select(delegations.c.calls_used).where(delegations.c.id == world.delegation_id)
            )
        ).scalar()
        granted = (
            await conn.execute(
                select(grants.c.id).where(
                    grants.c.delegation_id == world.delegation_id, grants.c.decision == "issued"
                )
            )
        ).all()
    assert spent == len(granted) == len(issued)


async def test_an_exchange_waiting_on_the_revocations_lock_finds_nothing_to_spend(
    world: World,
) -> None:
    """The exchange reaches its spend while a revocation holds the delegation row; once
    the revocation commits, the exchange must not issue (the UPDATE re-checks the row)."""
    async with world.services.engine.connect() as conn:
        transaction = await conn.begin()
        await conn.execute(
            update(delegations)
            .where(delegations.c.id == world.delegation_id)
            .values(status="revoked", revoked_at=world.services.now(), revoked_by="test")
        )
        exchange = asyncio.create_task(world.exchange())
        deadline = time.monotonic() + 5
        while not await _someone_waits_for_a_lock(world):
            assert not exchange.done(), exchange.result().text
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await transaction.commit()
    response = await exchange
    assert response.status_code == 400, response.text
    async with world.services.engine.connect() as conn:
        reason = (
            await conn.execute(select(grants.c.reason).where(grants.c.decision == "denied"))
        ).scalar()
    assert reason == "delegation_revoked"


async def _someone_waits_for_a_lock(world: World) -> bool:
    async with world.services.engine.connect() as conn:
        waiting = await conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
        return bool(waiting.scalar())


# --- the feed reaches subscribers of another instance through pub/sub -----------------------------
@pytest.fixture
def instance_b_overrides() -> dict[str, Any]:
    # B reads SQL only every 30 s: an event that arrives within a second came by pub/sub.
    return {"revocation_feed_poll_interval": 30.0, "revocation_feed_heartbeat": 5.0}


async def test_feed_subscriber_on_b_hears_a_revocation_on_a_within_a_second(
    world: World, instance_b: Instance
) -> None:
    from authority.sdk.feed import parse_sse

    token = await issue(world)
    async with serving(instance_b.app) as url, httpx.AsyncClient(timeout=10) as http:
        request = http.build_request(
            "GET", url + FEED, headers=basic_auth(world.server_id, world.server_secret)
        )
        response = await http.send(request, stream=True)
        messages = parse_sse(response.aiter_lines())
        start = await anext(messages)
        assert start.data == ""
        assert (await anext(messages)).event == "ready"  # nothing to replay
        await asyncio.sleep(0.2)  # B's hub subscribes
        revoked_at = time.monotonic()
        assert (await revoke_as_server(world, token)).status_code == 200
        message = await asyncio.wait_for(anext(messages), 1.0)
        elapsed = time.monotonic() - revoked_at
        await response.aclose()
    assert message.event == "revocation"
    assert '"kind":"token"' in message.data
    assert elapsed < 1.0
