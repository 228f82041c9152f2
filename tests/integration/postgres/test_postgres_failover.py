"""A PostgreSQL URL listing several hosts (libpq's ``h1:p1,h2:p2``) with
``target_session_attrs=read-write``: when the first host is lost, requests reach the
database through the next with at most one 503, on the hot path's driver and on the
engine alike, and the connections to the lost host are not used again.

The two hosts are two TCP proxies in front of the one local PostgreSQL: taking the first
down is what a client sees of a failover (the old primary's connections cut, its address
refusing), and the second answers as the promoted primary would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from authority.app import stop
from authority.clock import FrozenClock
from authority.settings import Settings
from authority.settings_storage import StorageSettings
from authority.storage.database import make_engine
from tests.integration.postgres.conftest import Instance
from tests.integration.postgres.test_faults import _instance, every_endpoint
from tests.revocation_support import Proxy, issue
from tests.support import World


def _target(settings: Settings) -> tuple[str, int]:
    assert settings.database_url is not None
    netloc = settings.database_url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]
    host, _, port = netloc.partition(":")
    return host, int(port or 5432)


def several_hosts(settings: Settings, *proxies: Proxy) -> str:
    """The test database's URL in libpq's form, listing ``proxies`` in order."""
    assert settings.database_url is not None
    rest = settings.database_url.split("://", 1)[1]
    netloc, _, path = rest.partition("/")
    userinfo = netloc.rpartition("@")[0]
    hosts = ",".join(f"127.0.0.1:{p.port}" for p in proxies)
    separator = "&" if "?" in path else "?"
    url = f"postgresql://{userinfo}@{hosts}/{path}{separator}target_session_attrs=read-write"
    # Through the settings' own validation, as AUTHORITY_DATABASE_URL would be read.
    translated = StorageSettings(database_url=url).database_url
    assert translated is not None and "host=" in translated
    return translated


@pytest.fixture
async def proxies(settings: Settings) -> AsyncIterator[tuple[Proxy, Proxy]]:
    first, second = Proxy(*_target(settings)), Proxy(*_target(settings))
    await first.up()
    await second.up()
    yield first, second
    await first.down()
    await second.down()


@pytest.fixture
async def via_two_hosts(
    settings: Settings, clock: FrozenClock, proxies: tuple[Proxy, Proxy]
) -> AsyncIterator[Instance]:
    instance = await _instance(settings, clock, database_url=several_hosts(settings, *proxies))
    yield instance
    await instance.client.aclose()
    await stop(instance.services)


def test_the_libpq_host_list_becomes_the_engines_and_the_drivers_host_list() -> None:
    url = StorageSettings(
        database_url="postgresql://u:p%40ss@db1:5433,db2/authority?target_session_attrs=read-write"
    ).database_url
    assert url == (
        "postgresql+asyncpg://u:p%40ss@/authority"
        "?host=db1:5433&host=db2:5432&target_session_attrs=read-write"
    )


async def test_the_first_host_lost_the_next_request_reaches_the_second(
    world: World, via_two_hosts: Instance, proxies: tuple[Proxy, Proxy]
) -> None:
    first, second = proxies
    token = await issue(world)
    for response in await every_endpoint(world, via_two_hosts, token):
        assert response.status_code == 200, response.text
    assert first._links and not second._links  # every connection went to the first host

    await first.down()  # the primary is gone: its connections cut, its address refusing

    answers: list[httpx.Response] = []
    for _ in range(3):
        answers += await every_endpoint(world, via_two_hosts, await issue(world))
    failed = [r for r in answers if r.status_code != 200]
    assert len(failed) <= 1, [r.text for r in failed]
    assert all(r.status_code == 503 for r in failed)
    assert answers[-3].status_code == 200 and second._links


async def test_the_engine_replaces_a_pooled_connection_the_server_closed(
    settings: Settings, proxies: tuple[Proxy, Proxy]
) -> None:
    """No pre-ping round trip: a connection whose socket the server closed while pooled
    is seen as closed at checkout and replaced, so not even one request fails on it."""
    from sqlalchemy import text

    first, second = proxies
    engine = make_engine(several_hosts(settings, first, second))
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT 1")) == 1
            pooled: Any = (await conn.get_raw_connection()).driver_connection
        await first.down()
        async with asyncio.timeout(10):
            while not pooled.is_closed():  # noqa: ASYNC110 (the event loop reads the close)
                await asyncio.sleep(0.01)
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT 1")) == 1
        assert second._links
    finally:
        await engine.dispose()


async def test_a_standby_answer_drops_every_connection_of_the_drivers_pool(
    via_two_hosts: Instance,
) -> None:
    """A server that has become a standby refuses writes (SQLSTATE 25006): that request
    answers 503, and every connection opened before it is dropped (idle ones at once,
    those in use when they come back), so the next ones are opened on the hosts' primary
    instead of failing one request each."""
    import asyncpg

    driver = via_two_hosts.services.sql
    pool = driver._pool  # type: ignore[attr-defined]
    in_use, idle = await pool.acquire(), await pool.acquire()
    pool.release(idle, healthy=True)
    refused = asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only tx")

    async def write_on_a_standby() -> None:
        async with driver._connection() as connection:  # type: ignore[attr-defined]
            assert connection is idle
            raise refused

    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        await write_on_a_standby()
    assert idle.is_closed() and not in_use.is_closed()
    pool.release(in_use, healthy=True)
    assert in_use.is_closed() and pool.size == 0
    fresh = await pool.acquire()
    pool.release(fresh, healthy=True)
    assert not fresh.is_closed() and pool.size == 1  # opened after: kept


async def test_a_first_host_that_answers_nothing_is_passed_over(
    world: World, settings: Settings, clock: FrozenClock, proxies: tuple[Proxy, Proxy]
) -> None:
    """A primary powered off or cut off answers nothing (no refusal): the requests on its
    connections time out (503), the pools drop them, and new connections give the first
    host a share of the timeout before the second is tried."""
    first, second = proxies
    instance = await _instance(
        settings, clock, database_url=several_hosts(settings, first, second), database_timeout=1.0
    )
    try:
        token = await issue(world)
        for response in await every_endpoint(world, instance, token):
            assert response.status_code == 200, response.text
        first.stall()  # connections open, nothing forwarded: a host that went silent

        answers: list[httpx.Response] = []
        async with asyncio.timeout(60):
            for _ in range(4):
                answers += await every_endpoint(world, instance, await issue(world))
        assert {r.status_code for r in answers} <= {200, 503}
        assert all(r.status_code == 200 for r in answers[-6:]), [r.text for r in answers]
        assert second._links
    finally:
        first.flow()
        await instance.client.aclose()
        await stop(instance.services)
