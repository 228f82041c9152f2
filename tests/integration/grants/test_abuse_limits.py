"""Per-client limits on introspection and revocation: 429 with Retry-After, per window."""

from __future__ import annotations

from typing import Any

import pytest

from authority.settings import Settings
from tests.revocation_support import (
    INTROSPECT,
    add_server,
    basic,
    introspect,
    issue,
    revoke_as_agent,
    revoke_as_server,
)
from tests.support import World


@pytest.fixture
def settings(settings_factory: Any) -> Settings:
    result: Settings = settings_factory(
        introspection_rate_per_minute=4, revocation_rate_per_minute=3
    )
    return result


async def test_introspection_limit_is_per_client_with_retry_after(world: World) -> None:
    token = await issue(world)
    for _ in range(4):
        assert (await introspect(world, token)).json()["active"] is True
    limited = await introspect(world, token)
    assert limited.status_code == 429
    assert limited.json()["error"] == "too_many_requests"
    assert limited.headers["cache-control"] == "no-store"
    seconds_left = 60 - world.services.now() % 60
    assert limited.headers["retry-after"] == str(seconds_left)
    # Another resource server has a window of its own.
    other = await add_server(world, "https://other.example.test")
    assert (await introspect(world, token, other)).status_code == 200
    # The next window starts afresh.
    world.clock.advance(seconds_left)
    token = await issue(world)
    assert (await introspect(world, token)).json()["active"] is True


async def test_failed_authentication_does_not_spend_a_clients_quota(world: World) -> None:
    token = await issue(world)
    for _ in range(6):
        response = await world.client.post(
            INTROSPECT, data={"token": token}, headers=basic(world.server_id, "wrong")
        )
        assert response.status_code == 401
    assert (await introspect(world, token)).json()["active"] is True


async def test_revocation_limit_is_per_client(world: World) -> None:
    tokens = [await issue(world) for _ in range(5)]
    for token in tokens[:3]:
        assert (await revoke_as_server(world, token)).status_code == 200
    limited = await revoke_as_server(world, tokens[3])
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    # The refused revocation changed nothing; the agent has its own window.
    assert (await introspect(world, tokens[3])).json()["active"] is True
    assert (await revoke_as_agent(world, tokens[3])).status_code == 200
    assert (await introspect(world, tokens[3])).json()["active"] is False
