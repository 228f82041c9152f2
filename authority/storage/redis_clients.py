"""The redis-py clients for a Redis target (``storage.redis_url``): one server, Sentinel, Cluster.

Two clients per target, as ``storage.hot.RedisHotState`` needs them: one for commands,
whose every call is bounded by the hot-state timeout, and one for subscriptions, which
block on reads by design and so have no read timeout.

* Sentinel: both clients resolve the master through the Sentinels on every new
  connection; a connection to a master that has been demoted answers READONLY, which
  redis-py turns into a connection error and a fresh lookup (the caller's request fails
  closed with 503; the next one reaches the new master).
* Cluster: redis-py follows MOVED and ASK replies and refreshes its slot map by itself.
  Multi-key commands must keep their keys in one slot (``storage.hot``: hash tags).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .redis_url import RedisTarget

#: Connections per server (per cluster node) for commands: far above what one worker uses.
MAX_CONNECTIONS = 256


@dataclass(frozen=True, slots=True)
class RedisClients:
    commands: Any  # redis.asyncio.Redis or redis.asyncio.cluster.RedisCluster
    subscriber: Any
    cluster: bool
    #: Clients of their own behind these (the Sentinels'), closed with them.
    behind: tuple[Any, ...] = ()

    async def close(self) -> None:
        for client in (self.commands, self.subscriber, *self.behind):
            await client.aclose()


def connect_timeout(timeout: float) -> float:
    """Opening a connection may take a little longer than a call (a TLS handshake)."""
    return max(timeout, 0.5)


def make_clients(target: RedisTarget, *, timeout: float) -> RedisClients:
    """Clients for ``target``; nothing is connected until first used."""
    if target.kind == "sentinel":
        return _sentinel(target, timeout)
    if target.kind == "cluster":
        return _cluster(target, timeout)
    from redis.asyncio import Redis

    commands = Redis.from_url(
        target.url,
        socket_timeout=timeout,
        socket_connect_timeout=connect_timeout(timeout),
        health_check_interval=0,
        max_connections=MAX_CONNECTIONS,
    )
    subscriber = Redis.from_url(target.url, socket_connect_timeout=connect_timeout(timeout))
    return RedisClients(commands, subscriber, cluster=False)


def _sentinel(target: RedisTarget, timeout: float) -> RedisClients:
    from redis.asyncio.retry import Retry
    from redis.asyncio.sentinel import Sentinel
    from redis.backoff import NoBackoff

    if target.service is None:  # parse() never leaves it out
        raise ValueError("a Sentinel target names its service")
    sentinels = Sentinel(  # type: ignore[no-untyped-call]
        list(target.nodes),
        sentinel_kwargs={
            "socket_timeout": timeout,
            "socket_connect_timeout": connect_timeout(timeout),
            "username": target.sentinel_username,
            "password": target.sentinel_password,
            "ssl": target.tls,
            # A Sentinel that does not answer is skipped for the next one at once: retried
            # with redis-py's backoff, it would cost seconds.
            "retry": Retry(NoBackoff(), 0),
        },
    )
    common: dict[str, Any] = {
        "db": target.db,
        "username": target.username,
        "password": target.password,
        "ssl": target.tls,
        "socket_connect_timeout": connect_timeout(timeout),
    }
    commands = sentinels.master_for(
        target.service,
        socket_timeout=timeout,
        health_check_interval=0,
        max_connections=MAX_CONNECTIONS,
        **common,
    )
    subscriber = sentinels.master_for(target.service, **common)
    return RedisClients(commands, subscriber, cluster=False, behind=tuple(sentinels.sentinels))


def _cluster(target: RedisTarget, timeout: float) -> RedisClients:
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    def client(**options: Any) -> RedisCluster:
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
            username=target.username,
            password=target.password,
            ssl=target.tls,
            socket_connect_timeout=connect_timeout(timeout),
            **options,
        )

    commands = client(socket_timeout=timeout, max_connections=MAX_CONNECTIONS)
    return RedisClients(commands, client(), cluster=True)
