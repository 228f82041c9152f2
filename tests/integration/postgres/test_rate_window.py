"""Introspection's rate window across instances (authority.rate_window) on one Redis: each
counts locally, the fleet's over-admission stays within ``N x min(budget, limit)``, and a
client over its limit is refused by every instance once they have reconciled."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from authority.settings import Settings
from tests.integration.postgres.conftest import Instance
from tests.revocation_support import introspect, issue
from tests.support import World

LIMIT = 10
BUDGET = 2


@pytest.fixture
def settings(settings_factory: Any) -> Settings:
    result: Settings = settings_factory(
        introspection_rate_per_minute=LIMIT,
        introspection_rate_local_budget=BUDGET,
        # Long: only the budget calls for a reconciliation, the worst case for the bound.
        introspection_rate_sync_interval=10,
    )
    return result


@pytest.fixture
def instance_b_overrides(settings: Settings) -> dict[str, Any]:
    return {
        "introspection_rate_per_minute": LIMIT,
        "introspection_rate_local_budget": BUDGET,
        "introspection_rate_sync_interval": 10,
    }


async def test_two_instances_admit_at_most_the_limit_plus_their_budgets(
    world: World, instance_b: Instance
) -> None:
    token = await issue(world)
    statuses = []
    for _ in range(3 * LIMIT):
        statuses.append((await introspect(world, token)).status_code)
        statuses.append((await introspect(world, token, client=instance_b.client)).status_code)
    admitted = statuses.count(200)
    assert LIMIT <= admitted <= LIMIT + 2 * min(BUDGET, LIMIT)
    assert set(statuses) == {200, 429}
    # Both have learnt the shared count: the client stays refused everywhere.
    await asyncio.sleep(0)
    assert (await introspect(world, token)).status_code == 429
    assert (await introspect(world, token, client=instance_b.client)).status_code == 429
