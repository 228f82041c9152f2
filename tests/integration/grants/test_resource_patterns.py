"""Resource patterns at the edges of a delegation: too many wildcards are refused when
the delegation is created, and the worst an owner can write is matched at once."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from authority.settings import Settings
from authority.storage.schema import delegations, ledger_entries
from tests.support import World

CAP = 3


@pytest.fixture
def settings(settings_factory: Any) -> Settings:
    result: Settings = settings_factory(delegation_max_pattern_wildcards=CAP)
    return result


def scope(*patterns: str) -> list[dict[str, Any]]:
    return [{"tool": "github.issues.create", "resources": list(patterns), "actions": ["create"]}]


async def counts(world: World) -> tuple[int, int]:
    async with world.services.engine.connect() as conn:
        dlg = (await conn.execute(select(func.count()).select_from(delegations))).scalar_one()
        led = (await conn.execute(select(func.count()).select_from(ledger_entries))).scalar_one()
    return dlg, led


async def delegate(world: World, *patterns: str) -> Any:
    body = {"agent_id": world.agent_id, "intent": "triage", "scope": scope(*patterns)}
    return await world.client.post(
        "/v1/delegations", json={**body, "expires_in": 3600}, headers=world.auth(world.owner_key)
    )


@pytest.mark.parametrize(
    "pattern",
    [
        "*a*a*a*a",  # one over the cap
        "**/**/**/**",
        "*a" * 200,
    ],
)
async def test_a_pattern_over_the_wildcard_cap_is_refused(world: World, pattern: str) -> None:
    before = await counts(world)
    response = await delegate(world, "acme/*", pattern)
    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "A resources pattern has more wildcards than allowed.",
    }
    assert pattern not in response.text
    assert await counts(world) == before


async def test_a_pattern_at_the_cap_is_accepted(world: World) -> None:
    # A run of stars counts once: "***" is one wildcard.
    response = await delegate(world, "*a*a***a")
    assert response.status_code == 201, response.text


async def test_a_pathological_pattern_is_matched_at_once(world: World) -> None:
    """The pattern that made a backtracking regex take exponential time, within the cap."""
    await world.delegate(scope=scope("*a*a*a!"))
    refused = await world.exchange(resource="a" * 2000)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"
    allowed = await world.exchange(resource="a" * 2000 + "!")
    assert allowed.status_code == 200, allowed.text
