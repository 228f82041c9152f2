"""Two authority processes (uvicorn) on two loopback ports over one PostgreSQL and one Redis.

What one process accepts, the other honours on its very next request: a token revoked
on A is inactive on B, a quarantine on A refuses the exchange on B, the kill switch on A
makes every live token of the owner inactive on B, and B's feed subscribers hear of a
revocation made on A within a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from authority.clock import FrozenClock
from authority.context import Services
from authority.sdk.feed import RevocationEvent, RevocationFeed
from authority.settings import Settings
from tests.processes import authority_processes
from tests.revocation_support import FEED, introspect, revoke_as_server
from tests.support import World

pytestmark = pytest.mark.slow


@pytest.fixture
def processes(settings: Settings, services: Services, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Start A and B (after ``services`` has made the signing keys); stop them after."""
    with authority_processes(
        settings,
        tmp_path,
        2,
        start_within=30,
        AUTHORITY_REDIS_TIMEOUT="1.0",  # a loaded test machine is not an outage
        AUTHORITY_REVOCATION_FEED_POLL_INTERVAL="30",  # so only pub/sub is fast
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


def now(clock: FrozenClock) -> None:
    """Keep the agents' clock on the processes' (real) time."""
    clock.advance(time.time() - clock.now())


async def exchange(world: World, client: httpx.AsyncClient) -> httpx.Response:
    now(world.clock)
    return await client.post("/oauth2/token", data=world.exchange_form())


async def active_on(world: World, client: httpx.AsyncClient, token: str) -> bool:
    response = await introspect(world, token, client=client)
    assert response.status_code == 200, response.text
    return bool(response.json()["active"])


async def test_what_a_accepts_b_honours_on_its_next_request(
    services: Services, clock: FrozenClock, clients: tuple[httpx.AsyncClient, ...]
) -> None:
    a, b = clients
    now(clock)
    world = await World(a, services, clock).setup()

    # Revoke on A: inactive on B at once.
    issued = await exchange(world, a)
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    assert await active_on(world, b, token) is True
    assert (await revoke_as_server(world, token, client=a)).status_code == 200
    assert await active_on(world, b, token) is False

    # Quarantine on A: the exchange is refused on B; release on A: B issues again.
    quarantine = await a.post(
        f"/v1/agents/{world.agent_id}/quarantine",
        json={"reason": "check"},
        headers=world.auth(world.owner_key),
    )
    assert quarantine.status_code == 200
    assert (await exchange(world, b)).status_code == 400
    release = await a.post(
        f"/v1/agents/{world.agent_id}/release", headers=world.auth(world.owner_key)
    )
    assert release.status_code == 200
    assert (await exchange(world, b)).status_code == 200

    # Kill switch on A: every live token of the owner, issued by A or B, inactive on B.
    tokens = [(await exchange(world, c)).json()["access_token"] for c in (a, b, a, b)]
    assert all([await active_on(world, b, t) for t in tokens])
    kill = await a.post(
        f"/v1/owners/{world.owner_id}/kill",
        json={"reason": "stop everything"},
        headers=world.auth(world.owner_key),
    )
    assert kill.status_code == 200
    assert [await active_on(world, b, t) for t in tokens] == [False] * 4
    assert (await exchange(world, b)).status_code == 400


async def test_a_feed_subscriber_of_b_hears_a_revocation_on_a_within_a_second(
    services: Services, clock: FrozenClock, clients: tuple[httpx.AsyncClient, ...]
) -> None:
    a, b = clients
    now(clock)
    world = await World(a, services, clock).setup()
    token = (await exchange(world, a)).json()["access_token"]
    feed = RevocationFeed(
        str(b.base_url) + FEED, client_id=world.server_id, client_secret=world.server_secret
    )
    events = feed.events()
    waiting = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0.5)  # connected, and B's hub subscribed
    started = time.monotonic()
    assert (await revoke_as_server(world, token, client=a)).status_code == 200
    event: RevocationEvent = await asyncio.wait_for(waiting, 1.0)
    elapsed = time.monotonic() - started
    await events.aclose()
    assert event.kind == "token"
    assert elapsed < 1.0
