"""Token revocation (RFC 7009) by the agent a token was issued to or by its resource server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jwt
import pytest
from sqlalchemy import select

from authority.storage.schema import grants, ledger_entries, revocation_events
from tests.revocation_support import (
    REVOKE,
    add_server,
    basic,
    client_assertion,
    introspect,
    is_active,
    issue,
    revoke_as_agent,
    revoke_as_server,
)
from tests.support import ISSUER, AgentKey, World


def jti_of(token: str) -> str:
    value: str = jwt.decode(token, options={"verify_signature": False})["jti"]
    return value


async def ledger_kinds(world: World, kind: str) -> list[dict[str, Any]]:
    async with world.services.engine.connect() as conn:
        rows = (
            await conn.execute(select(ledger_entries.c.body).where(ledger_entries.c.kind == kind))
        ).all()
    return [json.loads(r.body) for r in rows]


async def events(world: World) -> list[Any]:
    async with world.services.engine.connect() as conn:
        return list(
            (await conn.execute(select(revocation_events).order_by(revocation_events.c.id))).all()
        )


async def second_agent(world: World) -> tuple[str, AgentKey]:
    key = AgentKey()
    agent = await world.post(
        "/v1/agents", world.owner_key, {"name": "second", "autonomy_level": 2, "jwks": key.jwks()}
    )
    return agent["id"], key


# --- by the resource server ----------------------------------------------------------------------
async def test_resource_server_revokes_its_token(world: World) -> None:
    token = await issue(world)
    response = await revoke_as_server(world, token)
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["cache-control"] == "no-store"
    assert await is_active(world, token) is False
    async with world.services.engine.connect() as conn:
        row = (await conn.execute(select(grants).where(grants.c.jti == jti_of(token)))).one()
    assert row.revoked_at == world.services.now()
    [entry] = await ledger_kinds(world, "token_revoked")
    assert entry["jti"] == jti_of(token)
    assert entry["actor"] == world.server_id
    assert entry["reason"] == "revoked_by_resource_server"
    assert entry["delegation_id"] == world.delegation_id
    [event] = await events(world)
    assert (event.kind, event.jti, event.delegation_id) == (
        "token",
        jti_of(token),
        world.delegation_id,
    )
    assert (event.agent_id, event.owner_id) == (world.agent_id, world.owner_id)


async def test_revoking_one_token_leaves_its_siblings_active(world: World) -> None:
    first, second = await issue(world), await issue(world)
    await revoke_as_server(world, first)
    assert await is_active(world, second) is True


async def test_revoking_twice_records_once(world: World) -> None:
    token = await issue(world)
    assert (await revoke_as_server(world, token)).status_code == 200
    assert (await revoke_as_server(world, token)).status_code == 200
    assert len(await ledger_kinds(world, "token_revoked")) == 1
    assert len(await events(world)) == 1


async def test_concurrent_revocations_of_one_token_record_once(world: World) -> None:
    token = await issue(world)
    answers = await asyncio.gather(*(revoke_as_server(world, token) for _ in range(8)))
    assert {a.status_code for a in answers} == {200}
    assert len(await ledger_kinds(world, "token_revoked")) == 1
    assert len(await events(world)) == 1


# --- by the agent -------------------------------------------------------------------------------
@pytest.mark.parametrize("aud", [ISSUER, ISSUER + REVOKE])
async def test_agent_revokes_its_own_token(world: World, aud: str) -> None:
    token = await issue(world)
    response = await revoke_as_agent(world, token, aud=aud)
    assert response.status_code == 200, response.text
    assert await is_active(world, token) is False
    [entry] = await ledger_kinds(world, "token_revoked")
    assert (entry["actor"], entry["reason"]) == (world.agent_id, "revoked_by_agent")


async def test_agent_assertion_is_single_use_across_endpoints(world: World) -> None:
    token = await issue(world)
    attestation = world.agent_key.attestation(world.agent_id, world.clock.now())
    assert (await world.exchange(attestation=attestation)).status_code == 200
    form = {
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": attestation,
    }
    response = await world.client.post(REVOKE, data={"token": token, **form})
    # RFC 6749 §5.2: an assertion in the body is a 400, without a challenge.
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"
    assert "www-authenticate" not in response.headers
    assert await is_active(world, token) is True


async def test_agent_assertion_with_a_wrong_audience_is_refused(world: World) -> None:
    token = await issue(world)
    response = await revoke_as_agent(world, token, aud=ISSUER + "/oauth2/introspect")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"
    assert await is_active(world, token) is True


async def test_agent_with_a_foreign_key_is_refused(world: World) -> None:
    token = await issue(world)
    response = await revoke_as_agent(world, token, key=AgentKey(kid=world.agent_key.kid))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"
    assert await is_active(world, token) is True


async def test_quarantined_agent_may_still_give_up_its_tokens(world: World) -> None:
    token = await issue(world)
    await world.post(f"/v1/agents/{world.agent_id}/quarantine", world.owner_key, {"reason": "r"})
    assert (await revoke_as_agent(world, token)).status_code == 200
    assert len(await ledger_kinds(world, "token_revoked")) == 1


# --- another client's token ---------------------------------------------------------------------
async def test_another_resource_servers_token_is_refused_and_stays_active(world: World) -> None:
    token = await issue(world)
    other = await add_server(world, "https://other.example.test")
    response = await revoke_as_server(world, token, other)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert await is_active(world, token) is True
    assert await events(world) == []


async def test_another_agents_token_is_refused_and_stays_active(world: World) -> None:
    token = await issue(world)
    agent_id, key = await second_agent(world)
    response = await revoke_as_agent(world, token, agent_id=agent_id, key=key)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert await is_active(world, token) is True


# --- what is not an error -------------------------------------------------------------------------
@pytest.mark.parametrize("token", ["garbage", "a.b.c", "x" * 9000])
async def test_unknown_tokens_get_200_and_change_nothing(world: World, token: str) -> None:
    response = await revoke_as_server(world, token)
    assert response.status_code == 200
    assert await events(world) == []


async def test_expired_token_gets_200_and_changes_nothing(world: World) -> None:
    token = await issue(world)
    world.clock.advance(60)
    assert (await revoke_as_server(world, token)).status_code == 200
    assert await events(world) == []


async def test_expired_token_of_another_client_is_just_invalid(world: World) -> None:
    token = await issue(world)
    other = await add_server(world, "https://other.example.test")
    world.clock.advance(60)
    assert (await revoke_as_server(world, token, other)).status_code == 200


@pytest.mark.parametrize("hint", ["access_token", "refresh_token", "no_such_type"])
async def test_token_type_hint_does_not_stop_the_search(world: World, hint: str) -> None:
    """RFC 7009 §2.1: an unhelpful hint extends the search; the server may ignore it."""
    token = await issue(world)
    response = await revoke_as_server(world, token, extra={"token_type_hint": hint})
    assert response.status_code == 200
    assert await is_active(world, token) is False


async def test_a_delegation_is_not_revocable_here(world: World) -> None:
    response = await revoke_as_agent(world, world.credential)
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_token_type"
    assert (await world.exchange()).status_code == 200


# --- authentication and input --------------------------------------------------------------------
async def test_no_client_authentication_is_invalid_client(world: World) -> None:
    token = await issue(world)
    response = await world.client.post(REVOKE, data={"token": token})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"
    assert "www-authenticate" not in response.headers
    assert await is_active(world, token) is True


async def test_wrong_secret_is_invalid_client(world: World) -> None:
    token = await issue(world)
    headers = basic(world.server_id, "wrong")
    response = await world.client.post(REVOKE, data={"token": token}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic realm=")
    assert await is_active(world, token) is True


async def test_missing_token_parameter_is_invalid_request(world: World) -> None:
    headers = basic(world.server_id, world.server_secret)
    response = await world.client.post(
        REVOKE, data={"token_type_hint": "access_token"}, headers=headers
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_token_in_query_string_is_refused(world: World) -> None:
    token = await issue(world)
    headers = basic(world.server_id, world.server_secret)
    response = await world.client.post(REVOKE + "?token=x", data={"token": token}, headers=headers)
    assert response.status_code == 400
    assert await is_active(world, token) is True


async def test_resource_server_with_private_key_jwt_revokes(world: World) -> None:
    server = await add_server(world, "https://jwt.example.test", method="private_key_jwt")
    assert server.key is not None
    await world.add_tool("jwt.tool", actions=["do"], resource_server_id=server.id)
    await world.delegate(scope=[{"tool": "jwt.tool", "resources": ["*"], "actions": ["do"]}])
    token = await issue(world, tool="jwt.tool", resource="x", action="do", audience=server.audience)
    form = client_assertion(server.key, server.id, world.clock.now(), aud=ISSUER + REVOKE)
    response = await world.client.post(REVOKE, data={"token": token, **form})
    assert response.status_code == 200, response.text
    answer = await introspect(world, token, server)
    assert answer.json() == {"active": False}


async def test_a_retired_agent_no_longer_authenticates(world: World) -> None:
    token = await issue(world)
    response = await world.client.delete(
        f"/v1/agents/{world.agent_id}", headers=world.auth(world.owner_key)
    )
    assert response.status_code == 200
    refused = await revoke_as_agent(world, token)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_client"
