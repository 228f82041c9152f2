"""Redis behind Sentinel and as a Cluster, under the authority's real requests.

Each deployment is started by the tests from ``redis-server`` (``tests.redis_servers``).
On each: an exchange, introspection and revocation (rate windows in Redis) and a revoked
token staying revoked. Then the events the docs promise are survived
(docs/high-availability.md): a Sentinel failover, after which the authority writes to
the new master; a Cluster slot moved, for keys (MOVED) and for the sharded revocation
channel; and a cluster node lost, which fails closed (503, never another status) until
it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.crc import key_slot

from authority.app import stop
from authority.clock import FrozenClock
from authority.settings import Settings
from authority.storage.hot import HotState, RedisHotState
from tests.integration.postgres.conftest import Instance
from tests.integration.postgres.test_faults import (
    _instance,
    assert_normal,
    assert_unavailable,
    needs_hot_state,
)
from tests.redis_servers import (
    ClusterDeployment,
    SentinelDeployment,
    ask,
    cluster_deployment,
    cluster_ok,
    redis_cluster,
    redis_sentinel,
    sentinel_deployment,
    wait_for,
)
from tests.revocation_support import INACTIVE, introspect, issue, revoke_as_server
from tests.support import World

__all__ = ["redis_cluster", "redis_sentinel"]  # fixtures, started when asked for


@contextlib.asynccontextmanager
async def on(settings: Settings, clock: FrozenClock, url: str) -> AsyncIterator[Instance]:
    instance = await _instance(settings, clock, redis_url=url, redis_timeout=1.0)
    try:
        yield instance
    finally:
        await instance.client.aclose()
        await stop(instance.services)


async def exchange_and_revoke(world: World, instance: Instance) -> None:
    token = await issue(world)
    await assert_normal(world, instance, token)
    revoked = await revoke_as_server(world, token, client=instance.client)
    assert revoked.status_code == 200, revoked.text
    answer = await introspect(world, token, client=instance.client)
    assert answer.content == INACTIVE


async def settle(world: World, instance: Instance, token: str) -> list[httpx.Response]:
    """Requests after a failover: the answers, until three rounds in a row are all 200."""
    answers: list[httpx.Response] = []
    good = 0
    async with asyncio.timeout(30):
        while good < 3:
            round_ = await needs_hot_state(world, instance, token)
            answers += round_
            good = good + 1 if all(r.status_code == 200 for r in round_) else 0
    return answers


class Follower:
    """Subscribes again whenever a subscription ends, as the revocation feed does."""

    def __init__(self, hot: HotState, channel: str) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self._task = asyncio.create_task(self._follow(hot, channel))

    async def _follow(self, hot: HotState, channel: str) -> None:
        while True:
            with contextlib.suppress(Exception):
                async for message in hot.subscribe(channel):
                    self.received.put_nowait(message)
            await asyncio.sleep(0.05)

    async def hears(self, hot: HotState, channel: str, message: bytes) -> None:
        """Publish until it arrives (one published while not subscribed is lost)."""
        async with asyncio.timeout(30):
            while True:
                with contextlib.suppress(Exception):
                    await hot.publish(channel, message)
                with contextlib.suppress(TimeoutError):
                    if await asyncio.wait_for(self.received.get(), 0.2) == message:
                        return

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


# --- Sentinel -------------------------------------------------------------------------------------
async def test_exchange_and_revocation_through_sentinel(
    world: World, settings: Settings, clock: FrozenClock, redis_sentinel: SentinelDeployment
) -> None:
    async with on(settings, clock, redis_sentinel.url()) as instance:
        await exchange_and_revoke(world, instance)
        hot = instance.services.hot
        await hot.incr("probe", 10)
        master = redis_sentinel.master_port()
        assert ask(master, "GET", settings.redis_prefix + "probe") == "1"


@pytest.mark.slow
async def test_after_a_sentinel_failover_the_authority_follows_the_new_master(
    world: World, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    with sentinel_deployment(tmp_path) as deployment:
        async with on(settings, clock, deployment.url()) as instance:
            hot = instance.services.hot
            follower = Follower(hot, "events")
            token = await issue(world)
            await assert_normal(world, instance, token)
            await follower.hears(hot, "events", b"before")
            old = deployment.master_port()

            new = await asyncio.to_thread(deployment.fail_over)

            assert new != old
            answers = await settle(world, instance, token)
            # Requests in flight meet the demoted master (READONLY) or a cut connection:
            # 503, retried by the client; never another status.
            assert {r.status_code for r in answers} <= {200, 503}
            await hot.incr("after", 10)
            assert ask(new, "GET", settings.redis_prefix + "after") == "1"
            await follower.hears(hot, "events", b"after")
            await follower.stop()


# --- Cluster --------------------------------------------------------------------------------------
async def test_exchange_and_revocation_on_a_cluster(
    world: World, settings: Settings, clock: FrozenClock, redis_cluster: ClusterDeployment
) -> None:
    async with on(settings, clock, redis_cluster.url()) as instance:
        await exchange_and_revoke(world, instance)


async def test_a_moved_slot_is_followed_for_keys_and_for_the_sharded_channel(
    redis_cluster: ClusterDeployment,
) -> None:
    prefix = f"authority-test:{uuid.uuid4().hex}:"
    hot = RedisHotState(redis_cluster.url(), prefix=prefix, timeout=2.0)
    follower = Follower(hot, "events")
    try:
        await follower.hears(hot, "events", b"before")
        targets = {}
        for name in ("moved", "events"):  # a key (not written yet) and the channel
            slot = key_slot((prefix + name).encode())
            owner = redis_cluster.owner(slot)
            targets[name] = next(p for p in redis_cluster.ports if p != owner)
            await asyncio.to_thread(redis_cluster.move, slot, targets[name])
        # The client's slot map is stale: the node it asks answers MOVED, and it follows.
        assert await hot.incr("moved", 10) == 1
        assert ask(targets["moved"], "GET", prefix + "moved") == "1"
        # The old owner ended the channel's subscription; the follower subscribed again.
        await follower.hears(hot, "events", b"after")
    finally:
        await follower.stop()
        await hot.close()


@pytest.mark.slow
async def test_a_lost_cluster_node_fails_closed_until_it_is_back(
    world: World, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    with cluster_deployment(tmp_path) as deployment:
        async with on(settings, clock, deployment.url()) as instance:
            token = await issue(world)
            await assert_normal(world, instance, token)
            lost = deployment.ports[2]
            deployment.servers.stop(lost)
            # Its slots answer nothing at once (a 503 for a key there, while others
            # answer); once the node timeout has passed the others report the cluster
            # down, and every request that counts a rate answers 503.
            for response in await needs_hot_state(world, instance, token):
                assert response.status_code in (200, 503), response.text
            await asyncio.to_thread(
                wait_for, lambda: not cluster_ok(deployment.ports[0]), "the cluster to fail"
            )
            for _ in range(2):
                for response in await needs_hot_state(world, instance, token):
                    assert_unavailable(response)
            deployment.servers.restart(lost)
            await asyncio.to_thread(
                wait_for, lambda: all(cluster_ok(p) for p in deployment.ports), "the cluster"
            )
            answers = await settle(world, instance, token)
            assert {r.status_code for r in answers} <= {200, 503}


@pytest.fixture
def backend() -> str:
    return "postgres"
