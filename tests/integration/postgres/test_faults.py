"""Fail closed: when Redis or PostgreSQL cannot answer in time, exchange, introspection and
revocation answer 503 ``temporarily_unavailable`` and nothing else: never a token, never
``active: true``, never another 5xx. Service is normal again once the store is back.

The faulty instance reaches Redis or PostgreSQL through a small TCP proxy that the test
cuts (connections refused and dropped) or slows (every chunk delayed beyond the
timeout). A proxy, rather than ``CLIENT PAUSE``, so that other test runs sharing the
Redis server are not paused with this one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from authority.app import build_services, create_app, start, stop
from authority.clock import FrozenClock
from authority.rate_window import RateWindows
from authority.settings import Settings
from tests.conftest import REDIS_URL
from tests.integration.postgres.conftest import Instance
from tests.revocation_support import (
    FEED,
    Proxy,
    basic,
    free_port,
    introspect,
    issue,
    revoke_as_server,
    serving,
)
from tests.support import ISSUER, World


@pytest.fixture
async def redis_proxy() -> AsyncIterator[Proxy]:
    host, port = REDIS_URL.split("://", 1)[1].split("/", 1)[0].split(":")
    proxy = Proxy(host, int(port))
    await proxy.up()
    yield proxy
    await proxy.down()


@pytest.fixture
async def postgres_proxy(settings: Settings) -> AsyncIterator[Proxy]:
    assert settings.database_url is not None
    netloc = settings.database_url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]
    host, _, port = netloc.partition(":")
    proxy = Proxy(host, int(port or 5432))
    await proxy.up()
    yield proxy
    await proxy.down()


async def _instance(settings: Settings, clock: FrozenClock, **overrides: Any) -> Instance:
    faulty = settings.model_copy(update=overrides)
    services = build_services(faulty, clock=clock)
    await start(services)
    app = create_app(faulty, services=services)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER)
    return Instance(services, app, client)


class Ticks:
    """The monotonic clock of the faulty instance's introspection rate windows."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


def past_the_allowance(instance: Instance, ticks: Ticks) -> None:
    """Long enough without Redis that introspection's local count may not go on."""
    ticks.t += instance.services.settings.introspection_rate_outage_allowance + 0.1


@pytest.fixture
async def via_redis_proxy(
    settings: Settings, clock: FrozenClock, redis_proxy: Proxy, ticks: Ticks
) -> AsyncIterator[Instance]:
    instance = await _instance(
        settings, clock, redis_url=redis_proxy.url_for(REDIS_URL), redis_timeout=0.05
    )
    instance.services.introspection_rate = RateWindows.from_settings(
        instance.services.hot, instance.services.settings, monotonic=ticks
    )
    yield instance
    await instance.client.aclose()
    await stop(instance.services)


@pytest.fixture
async def via_postgres_proxy(
    settings: Settings, clock: FrozenClock, postgres_proxy: Proxy
) -> AsyncIterator[Instance]:
    assert settings.database_url is not None
    instance = await _instance(
        settings, clock, database_url=postgres_proxy.url_for(settings.database_url)
    )
    yield instance
    await instance.client.aclose()
    await stop(instance.services)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "temporarily_unavailable"
    assert "access_token" not in body
    assert "active" not in body
    assert response.headers["retry-after"] == "1"
    assert response.headers["cache-control"] == "no-store"


async def every_endpoint(world: World, instance: Instance, token: str) -> list[httpx.Response]:
    return [
        await instance.client.post("/oauth2/token", data=world.exchange_form()),
        await introspect(world, token, client=instance.client),
        await revoke_as_server(world, token, client=instance.client),
    ]


async def needs_hot_state(world: World, instance: Instance, token: str) -> list[httpx.Response]:
    """The endpoints that count rate windows in Redis: introspection and revocation."""
    return (await every_endpoint(world, instance, token))[1:]


async def assert_single_use_without_hot_state(world: World, instance: Instance) -> None:
    """An exchange needs nothing from Redis (no rate limit on this delegation): single
    use of its attestation is held in SQL, so a replay is refused all the same."""
    attestation = world.agent_key.attestation(world.agent_id, world.clock.now())
    form = world.exchange_form(attestation=attestation)
    first = await instance.client.post("/oauth2/token", data=form)
    assert first.status_code == 200, first.text
    replayed = await instance.client.post("/oauth2/token", data=form)
    assert replayed.status_code == 400, replayed.text
    assert replayed.json()["error_description"] == "The agent attestation has already been used."


async def assert_normal(world: World, instance: Instance, token: str) -> None:
    exchanged = await instance.client.post("/oauth2/token", data=world.exchange_form())
    assert exchanged.status_code == 200, exchanged.text
    answer = await introspect(world, token, client=instance.client)
    assert answer.json()["active"] is True


# --- Redis ----------------------------------------------------------------------------------------
async def test_redis_unreachable_from_the_start(
    world: World, settings: Settings, clock: FrozenClock
) -> None:
    token = await issue(world)
    closed = f"redis://127.0.0.1:{free_port()}/0"
    instance = await _instance(settings, clock, redis_url=closed, redis_timeout=0.05)
    try:
        for response in await needs_hot_state(world, instance, token):
            assert_unavailable(response)
        await assert_single_use_without_hot_state(world, instance)
    finally:
        await instance.client.aclose()
        await stop(instance.services)
    assert (await introspect(world, token)).json()["active"] is True  # revocation failed too


async def test_redis_stopped_then_back(
    world: World, via_redis_proxy: Instance, redis_proxy: Proxy, ticks: Ticks
) -> None:
    token = await issue(world)
    await assert_normal(world, via_redis_proxy, token)
    await redis_proxy.down()
    past_the_allowance(via_redis_proxy, ticks)
    for _ in range(3):
        for response in await needs_hot_state(world, via_redis_proxy, token):
            assert_unavailable(response)
    await assert_single_use_without_hot_state(world, via_redis_proxy)
    await redis_proxy.up()
    await assert_normal(world, via_redis_proxy, token)


async def test_redis_slower_than_the_timeout_then_fast_again(
    world: World, via_redis_proxy: Instance, redis_proxy: Proxy, ticks: Ticks
) -> None:
    token = await issue(world)
    await assert_normal(world, via_redis_proxy, token)
    redis_proxy.delay = 0.2  # > redis_timeout (50 ms), each way
    past_the_allowance(via_redis_proxy, ticks)
    for response in await needs_hot_state(world, via_redis_proxy, token):
        assert_unavailable(response)
    redis_proxy.delay = 0.0
    await assert_normal(world, via_redis_proxy, token)


async def test_a_revoked_token_stays_inactive_through_a_redis_outage(
    world: World, via_redis_proxy: Instance, redis_proxy: Proxy, ticks: Ticks
) -> None:
    token = await issue(world)
    assert (await revoke_as_server(world, token)).status_code == 200
    await redis_proxy.down()
    past_the_allowance(via_redis_proxy, ticks)
    assert_unavailable(await introspect(world, token, client=via_redis_proxy.client))
    await redis_proxy.up()
    answer = await introspect(world, token, client=via_redis_proxy.client)
    assert answer.content == b'{"active":false}'


async def test_introspection_rides_out_a_short_redis_outage_then_fails_closed(
    world: World, via_redis_proxy: Instance, redis_proxy: Proxy, ticks: Ticks
) -> None:
    """authority.rate_window: within the allowance the local count answers, and every
    answer still comes from SQL (a revocation committed meanwhile is seen); past it, 503."""
    token = await issue(world)
    await assert_normal(world, via_redis_proxy, token)
    await redis_proxy.down()
    ticks.t += via_redis_proxy.services.settings.introspection_rate_outage_allowance / 2
    answer = await introspect(world, token, client=via_redis_proxy.client)
    assert answer.json()["active"] is True
    assert (await revoke_as_server(world, token)).status_code == 200  # on the healthy instance
    answer = await introspect(world, token, client=via_redis_proxy.client)
    assert answer.content == b'{"active":false}'
    past_the_allowance(via_redis_proxy, ticks)
    for _ in range(3):
        assert_unavailable(await introspect(world, token, client=via_redis_proxy.client))
    await redis_proxy.up()
    answer = await introspect(world, token, client=via_redis_proxy.client)
    assert answer.content == b'{"active":false}'


async def test_introspection_without_redis_stops_at_the_local_budget(
    world: World, settings: Settings, clock: FrozenClock, redis_proxy: Proxy
) -> None:
    """The over-admission bound holds during an outage: a worker admits at most its
    budget of introspections that Redis has not counted, then answers 503."""
    instance = await _instance(
        settings,
        clock,
        redis_url=redis_proxy.url_for(REDIS_URL),
        redis_timeout=0.05,
        introspection_rate_local_budget=3,
        introspection_rate_outage_allowance=60,
        introspection_rate_sync_interval=10,  # only the budget calls for a reconciliation
    )
    try:
        token = await issue(world)
        # Reconciled before it is counted (the worker had never reached Redis), then
        # counted locally: one of the budget's three.
        await assert_normal(world, instance, token)
        await redis_proxy.down()
        answers = [await introspect(world, token, client=instance.client) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 503, 503]
        assert_unavailable(answers[-1])
    finally:
        await instance.client.aclose()
        await stop(instance.services)


async def test_the_feed_keeps_delivering_from_sql_while_redis_is_down(
    world: World, settings: Settings, clock: FrozenClock, redis_proxy: Proxy
) -> None:
    from authority.sdk.feed import parse_sse

    instance = await _instance(
        settings,
        clock,
        redis_url=redis_proxy.url_for(REDIS_URL),
        redis_timeout=0.05,
        revocation_feed_poll_interval=0.3,
    )
    try:
        await redis_proxy.down()
        token = await issue(world)
        async with serving(instance.app) as url, httpx.AsyncClient(timeout=10) as http:
            request = http.build_request(
                "GET", url + FEED, headers=basic(world.server_id, world.server_secret)
            )
            response = await http.send(request, stream=True)
            assert response.status_code == 200
            messages = parse_sse(response.aiter_lines())
            await anext(messages)
            assert (await anext(messages)).event == "ready"  # nothing to replay
            assert (await revoke_as_server(world, token)).status_code == 200
            message = await anext(messages)
            await response.aclose()
        assert message.event == "revocation"
    finally:
        await instance.client.aclose()
        await stop(instance.services)


async def test_owners_can_stop_agents_while_redis_is_down(
    world: World, via_redis_proxy: Instance, redis_proxy: Proxy
) -> None:
    token = await issue(world)
    await redis_proxy.down()
    killed = await via_redis_proxy.client.post(
        f"/v1/owners/{world.owner_id}/kill",
        json={"reason": "redis is down, stop anyway"},
        headers=world.auth(world.owner_key),
    )
    assert killed.status_code == 200, killed.text
    await redis_proxy.up()
    answer = await introspect(world, token, client=via_redis_proxy.client)
    assert answer.content == b'{"active":false}'


# --- PostgreSQL -----------------------------------------------------------------------------------
async def test_database_unavailable_then_back(
    world: World, via_postgres_proxy: Instance, postgres_proxy: Proxy
) -> None:
    token = await issue(world)
    await assert_normal(world, via_postgres_proxy, token)
    await postgres_proxy.down()
    for _ in range(3):
        for response in await every_endpoint(world, via_postgres_proxy, token):
            assert_unavailable(response)
    await postgres_proxy.up()
    await assert_normal(world, via_postgres_proxy, token)


async def test_sessions_ended_by_the_server_are_a_503_at_worst_then_replaced(
    world: World, settings: Settings, clock: FrozenClock
) -> None:
    """The server ends every session (a restart, a failover, an operator): requests on
    the dead connections answer 503, never 500, and the next ones reconnect."""
    instance = await _instance(settings, clock)
    try:
        await _sessions_ended(world, instance)
    finally:
        await instance.client.aclose()
        await stop(instance.services)


async def _sessions_ended(world: World, instance: Instance) -> None:
    token = await issue(world)
    await assert_normal(world, instance, token)
    async with world.services.engine.connect() as conn:
        ended = await conn.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert ended
    for _ in range(2):
        for response in await every_endpoint(world, instance, token):
            assert response.status_code in (200, 503), response.text
    await assert_normal(world, instance, await issue(world))


async def test_database_slow_is_still_only_a_delay_or_a_503(
    world: World, via_postgres_proxy: Instance, postgres_proxy: Proxy
) -> None:
    token = await issue(world)
    postgres_proxy.delay = 0.05
    for response in await every_endpoint(world, via_postgres_proxy, token):
        assert response.status_code in (200, 503), response.text
    postgres_proxy.delay = 0.0
    await assert_normal(world, via_postgres_proxy, await issue(world))


async def test_a_stalled_database_is_a_503_within_the_configured_bound(
    world: World, settings: Settings, clock: FrozenClock, postgres_proxy: Proxy
) -> None:
    """Connections open, nothing answering: every hot-path request answers 503 after
    about ``database_timeout`` (here 0.5 s), not after the minute the rest of the
    authority allows a transaction."""
    assert settings.database_url is not None
    instance = await _instance(
        settings,
        clock,
        database_url=postgres_proxy.url_for(settings.database_url),
        database_timeout=0.5,
    )
    try:
        token = await issue(world)
        await assert_normal(world, instance, token)
        postgres_proxy.stall()
        # Each request waits at most for a connection and one statement, each bounded by
        # database_timeout plus a second: far inside this, and far from the minute.
        async with asyncio.timeout(20):
            for response in await every_endpoint(world, instance, token):
                assert_unavailable(response)
        postgres_proxy.flow()
        await assert_normal(world, instance, await issue(world))
    finally:
        postgres_proxy.flow()
        await instance.client.aclose()
        await stop(instance.services)
