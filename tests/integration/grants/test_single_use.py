"""Single use of attestations, client assertions and DPoP proofs holds in SQL.

RFC 7523 §3 item 7 and RFC 9449 §11.1. Each test spends a JWT, then makes the hot
state forget everything (a Redis restart without persistence, or a failover to a
replica that had not seen the write), then presents the same JWT again: it is refused
all the same, because the used jti is a row in the database written with the decision.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from authority.context import Services
from authority.storage import replay
from authority.storage.hot import MemoryHotState, RedisHotState
from authority.storage.schema import used_jtis
from authority.storage.sql import replay as sql_replay
from tests.conftest import _drop_redis_prefix
from tests.integration.approvals.support import ask_pending, error_of, poll, with_risky_tool
from tests.integration.grants.test_token_exchange import grant_rows, last_grant
from tests.revocation_support import INTROSPECT, add_server, client_assertion
from tests.support import AgentKey, World


async def forget_hot_state(services: Services) -> None:
    """Everything Redis (or the in-process store) held is gone."""
    if isinstance(services.hot, RedisHotState):
        await _drop_redis_prefix(services.settings.redis_prefix)
    else:
        services.hot = MemoryHotState()


async def test_an_attestation_gets_one_token_though_redis_forgot_it(world: World) -> None:
    attestation = world.agent_key.attestation(world.agent_id, world.clock.now())
    assert (await world.exchange(attestation=attestation)).status_code == 200
    await forget_hot_state(world.services)
    replayed = await world.exchange(attestation=attestation)
    assert replayed.status_code == 400, replayed.text
    assert replayed.json()["error_description"] == "The agent attestation has already been used."
    decisions = [(g.decision, g.reason) for g in await grant_rows(world)]
    assert decisions == [("issued", None), ("denied", "attestation_replayed")]


async def test_a_refused_call_spends_its_attestation_for_good(world: World) -> None:
    attestation = world.agent_key.attestation(world.agent_id, world.clock.now())
    refused = await world.exchange(attestation=attestation, resource="other/repo")
    assert refused.status_code == 400
    await forget_hot_state(world.services)
    replayed = await world.exchange(attestation=attestation)
    assert replayed.status_code == 400
    assert (await last_grant(world)).reason == "attestation_replayed"


async def test_a_dpop_proof_is_single_use_though_redis_forgot_it(world: World) -> None:
    proof = AgentKey().dpop_proof(world.clock.now())
    assert (await world.exchange(headers={"DPoP": proof})).status_code == 200
    await forget_hot_state(world.services)
    replayed = await world.exchange(headers={"DPoP": proof})
    assert replayed.status_code == 400
    assert replayed.json()["error"] == "invalid_dpop_proof"
    assert (await last_grant(world)).reason == "dpop_replayed"


async def test_an_approval_request_spends_its_attestation(world: World) -> None:
    await with_risky_tool(world)
    attestation = world.agent_key.attestation(world.agent_id, world.clock.now())
    await ask_pending(world, attestation=attestation)
    await forget_hot_state(world.services)
    replayed = await world.exchange(
        tool="deploy.run", resource="prod/web", action="run", attestation=attestation
    )
    assert replayed.status_code == 400
    assert (await last_grant(world)).reason == "attestation_replayed"


async def test_a_poll_attestation_is_single_use_though_redis_forgot_it(world: World) -> None:
    await with_risky_tool(world)
    auth_req_id = await ask_pending(world)
    attestation = world.agent_key.attestation(world.agent_id, world.clock.now())
    assert error_of(await poll(world, auth_req_id, attestation=attestation)) == (
        "authorization_pending"
    )
    await forget_hot_state(world.services)
    world.clock.advance(5)
    replayed = await poll(world, auth_req_id, attestation=attestation)
    assert (replayed.status_code, error_of(replayed)) == (400, "invalid_client")


async def test_a_client_assertion_is_single_use_though_redis_forgot_it(world: World) -> None:
    server = await add_server(world, "https://jwt.example.test", method="private_key_jwt")
    assert server.key is not None
    form = client_assertion(server.key, server.id, world.clock.now())
    assert (await world.client.post(INTROSPECT, data={"token": "x.y.z", **form})).status_code == 200
    await forget_hot_state(world.services)
    replayed = await world.client.post(INTROSPECT, data={"token": "x.y.z", **form})
    assert replayed.status_code == 400
    assert replayed.json()["error"] == "invalid_client"


async def _stored(services: Services) -> list[Any]:
    async with services.engine.connect() as conn:
        return list((await conn.execute(select(used_jtis))).all())


async def test_only_a_digest_of_the_jti_is_stored(world: World) -> None:
    jti = "a-jti-an-agent-chose-" + "x" * 40
    attestation = world.agent_key.attestation(world.agent_id, world.clock.now(), jti=jti)
    assert (await world.exchange(attestation=attestation)).status_code == 200
    rows = await _stored(world.services)
    assert len(rows) == 1
    assert jti not in rows[0].key and len(rows[0].key) == 64


async def test_the_sweep_forgets_only_expired_uses(services: Services) -> None:
    now = services.now()
    old = replay.single_use("attestation", "agt_x", "old", expires_at=now - 1)
    live = replay.single_use("attestation", "agt_x", "live", expires_at=now + 60)
    assert await sql_replay.spend_now(services.sql, [old, live]) == (True, True)
    await sql_replay.sweep(services.sql, now)
    assert [row.key for row in await _stored(services)] == [live.key]
    # Still spent while it could pass its expiry check.
    assert await sql_replay.spend_now(services.sql, [live]) == (False,)
    async with services.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(used_jtis)) == 1
