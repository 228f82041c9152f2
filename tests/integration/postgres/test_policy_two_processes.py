"""A policy change on one authority process decides the other's next exchange, when it
confirms the active version on every decision (``policy_refresh_interval = 0``)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from authority.clock import FrozenClock
from authority.context import Services
from authority.settings import Settings
from authority.storage.schema import ledger_entries
from tests.processes import authority_processes
from tests.support import World

pytestmark = pytest.mark.slow

FORBID = 'forbid(principal, action == Action::"create", resource);'


@pytest.fixture
def processes(settings: Settings, services: Services, tmp_path: Path) -> Iterator[tuple[str, str]]:
    with authority_processes(
        settings,
        tmp_path,
        2,
        start_within=30,
        AUTHORITY_REDIS_TIMEOUT="1.0",
        AUTHORITY_POLICY_REFRESH_INTERVAL="0",
    ) as (a, b):
        yield a, b


@pytest.fixture
async def clients(processes: tuple[str, str]) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    a, b = processes
    async with (
        httpx.AsyncClient(base_url=a, timeout=10) as ca,
        httpx.AsyncClient(base_url=b, timeout=10) as cb,
    ):
        yield ca, cb


async def exchange(world: World, client: httpx.AsyncClient) -> httpx.Response:
    world.clock.advance(time.time() - world.clock.now())
    return await client.post("/oauth2/token", data=world.exchange_form())


async def last_grant(services: Services) -> dict[str, object]:
    query = (
        select(ledger_entries.c.body)
        .where(ledger_entries.c.kind == "grant")
        .order_by(ledger_entries.c.id.desc())
        .limit(1)
    )
    async with services.engine.connect() as conn:
        body = (await conn.execute(query)).scalar_one()
    value: dict[str, object] = json.loads(body)
    return value


async def test_a_change_on_a_decides_the_next_exchange_on_b(
    services: Services, clock: FrozenClock, clients: tuple[httpx.AsyncClient, ...]
) -> None:
    a, b = clients
    clock.advance(time.time() - clock.now())
    world = await World(a, services, clock).setup()
    assert (await exchange(world, b)).status_code == 200
    assert (await last_grant(services))["policy_version"] == 0

    created = await a.post("/v1/policies", json={"text": FORBID}, headers=world.auth(world.admin))
    assert created.status_code == 201, created.text
    refused = await exchange(world, b)
    assert refused.status_code == 400, refused.text
    assert (await last_grant(services))["policy_version"] == 1

    rolled = await a.post("/v1/policies", json={"text": ""}, headers=world.auth(world.admin))
    assert rolled.status_code == 201
    assert (await exchange(world, b)).status_code == 200
    assert (await last_grant(services))["policy_version"] == 2
