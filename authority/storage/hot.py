"""Hot, expiring state shared by every instance: replay caches, counters and pub/sub.

One ``HotState`` protocol; ``RedisHotState`` serves any number of instances,
``MemoryHotState`` the embedded single-instance default. Both pass the same contract
tests (tests/contract/test_hot_store.py). Every operation that decides anything
is atomic: a key is claimed once, a counter counts every increment.

A Redis failure or a reply slower than the configured timeout raises
``HotStateUnavailable``; callers turn that into 503 ``temporarily_unavailable``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast


class HotStateUnavailable(Exception):
    """Hot state could not be read or written in time: the caller must fail closed."""


@dataclass(frozen=True, slots=True)
class Claim:
    """Set ``key`` only if absent, expiring after ``ttl`` seconds (a replay cache entry)."""

    key: str
    ttl: float


@dataclass(frozen=True, slots=True)
class Count:
    """Add ``by`` to ``key``; the window of ``ttl`` seconds starts at the first increment.

    ``by`` above 1 reconciles increments counted in process (``authority.rate_window``)."""

    key: str
    ttl: float
    by: int = 1


@dataclass(frozen=True, slots=True)
class Outcome:
    claimed: tuple[bool, ...]
    counts: tuple[int, ...]


class HotState(Protocol):
    async def apply(self, claims: Sequence[Claim], counts: Sequence[Count]) -> Outcome:
        """Claim keys and increment counters in one round trip, atomically as a whole."""
        ...

    async def claim(self, key: str, ttl: float) -> bool:
        """Set ``key`` if absent; True when this call set it."""
        ...

    async def incr(self, key: str, ttl: float) -> int: ...

    async def get(self, key: str) -> bytes | None: ...

    async def delete(self, key: str) -> None: ...

    async def publish(self, channel: str, message: bytes) -> None: ...

    def subscribe(self, channel: str) -> AsyncIterator[bytes]:
        """Messages published on ``channel`` after the iterator has started."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class MemoryHotState:
    """In-process hot state for the single-instance embedded default.

    Operations run without an ``await`` between read and write, so on one event loop they
    are atomic. Expired keys are dropped lazily and by a periodic sweep.
    """

    def __init__(self) -> None:
        self._values: dict[str, tuple[bytes, float]] = {}
        self._channels: dict[str, set[asyncio.Queue[bytes]]] = {}
        self._now = time.monotonic
        self._ops = 0

    def _live(self, key: str, now: float) -> bytes | None:
        item = self._values.get(key)
        if item is None:
            return None
        if item[1] <= now:
            del self._values[key]
            return None
        return item[0]

    def _sweep(self, now: float) -> None:
        self._ops += 1
        if self._ops % 4096 == 0:
            for key in [k for k, (_, exp) in self._values.items() if exp <= now]:
                del self._values[key]

    def _claim(self, key: str, ttl: float, now: float) -> bool:
        if self._live(key, now) is not None:
            return False
        self._values[key] = (b"1", now + ttl)
        return True

    def _incr(self, key: str, ttl: float, now: float, by: int = 1) -> int:
        current = self._live(key, now)
        if current is None:
            self._values[key] = (str(by).encode(), now + ttl)
            return by
        value = int(current) + by
        self._values[key] = (str(value).encode(), self._values[key][1])
        return value

    async def apply(self, claims: Sequence[Claim], counts: Sequence[Count]) -> Outcome:
        now = self._now()
        self._sweep(now)
        # No await from here to the return: as atomic as Redis's MULTI/EXEC.
        claimed = tuple(self._claim(c.key, c.ttl, now) for c in claims)
        counted = tuple(self._incr(c.key, c.ttl, now, c.by) for c in counts)
        return Outcome(claimed, counted)

    async def claim(self, key: str, ttl: float) -> bool:
        now = self._now()
        self._sweep(now)
        return self._claim(key, ttl, now)

    async def incr(self, key: str, ttl: float) -> int:
        now = self._now()
        self._sweep(now)
        return self._incr(key, ttl, now)

    async def get(self, key: str) -> bytes | None:
        return self._live(key, self._now())

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)

    async def publish(self, channel: str, message: bytes) -> None:
        for queue in list(self._channels.get(channel, ())):
            queue.put_nowait(message)

    async def subscribe(self, channel: str) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._channels.setdefault(channel, set()).add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._channels[channel].discard(queue)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._values.clear()


#: ``HotState.apply`` in Redis. KEYS: the claims' keys, then the counters'. ARGV[1]: the
#: number of claims; then one TTL in milliseconds per key, then one increment per counter.
#: A claim is SET NX (1 if this call set it); a counter is INCRBY, and its window starts
#: at the first increment (PEXPIRE NX, so later increments do not extend it). Returns one
#: integer per key.
_APPLY = """
local claims = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS do
  if i <= claims then
    out[i] = redis.call('SET', KEYS[i], '1', 'NX', 'PX', ARGV[i + 1]) and 1 or 0
  else
    out[i] = redis.call('INCRBY', KEYS[i], ARGV[#KEYS + i - claims + 1])
    redis.call('PEXPIRE', KEYS[i], ARGV[i + 1], 'NX')
  end
end
return out
"""


class RedisHotState:
    """Hot state in Redis (redis.asyncio), shared by every authority instance.

    ``url``: one server, a Sentinel-managed master or a Redis Cluster
    (``storage.redis_url``). On a cluster each key lives on the node owning its slot,
    so one ``apply`` (one script) must keep its keys in one slot: a hash tag, the text
    between the first ``{`` and the next ``}``, shared by every key of the call
    (``contain:{agent}:...``). That is checked here on every deployment, so a test on
    one server refuses the call a cluster would.
    """

    def __init__(self, url: str, *, prefix: str, timeout: float) -> None:
        from .redis_clients import make_clients
        from .redis_url import parse

        self._prefix = prefix
        self._timeout = timeout
        self._clients = clients = make_clients(parse(url), timeout=timeout)
        self._redis = clients.commands
        self._cluster = clients.cluster
        # One script, run atomically by Redis like MULTI/EXEC, and one command on the
        # wire: redis-py spends about half the client CPU on it that a pipeline costs.
        self._apply = self._redis.register_script(_APPLY)
        # Subscriptions block on reads by design, so they get a client without a read timeout.
        self._subscriber = clients.subscriber
        self._ready = not self._cluster
        self._readying = asyncio.Lock()

    def _k(self, key: str) -> str:
        return self._prefix + key

    async def _prepare(self) -> None:
        """On a cluster, read the slot map and load the script on every primary, once,
        before any command. Left to the first commands, each concurrent one would read
        the slot map again, closing connections with calls in flight that redis-py then
        sends again: a claim refused to its first user, a count counted twice."""
        async with self._readying:
            if not self._ready:
                await self._redis.initialize()
                await self._redis.script_load(_APPLY)
                self._ready = True

    async def _run(self, coro: Awaitable[object]) -> object:
        from redis.exceptions import RedisClusterException, RedisError

        try:
            async with asyncio.timeout(self._timeout):
                if not self._ready:
                    await self._prepare()
                return await coro
        # AttributeError: redis-py's cluster client can meet a connection that another
        # call closed under it (8.1: no writer); for this caller that is an outage.
        except (RedisError, RedisClusterException, OSError, TimeoutError, AttributeError) as exc:
            if isinstance(coro, Coroutine):
                coro.close()  # never started when the preparation failed
            raise HotStateUnavailable(type(exc).__name__) from exc

    async def apply(self, claims: Sequence[Claim], counts: Sequence[Count]) -> Outcome:
        keys = [self._k(c.key) for c in claims] + [self._k(c.key) for c in counts]
        if not keys:
            return Outcome((), ())
        if len(keys) > 1:
            one_slot(keys)
        ttls = [max(1, int(c.ttl * 1000)) for c in claims]
        ttls += [max(1, int(c.ttl * 1000)) for c in counts]
        ttls += [c.by for c in counts]
        result = cast(list[Any], await self._run(self._apply(keys, [len(claims), *ttls])))
        claimed = tuple(bool(r) for r in result[: len(claims)])
        counted = tuple(int(r) for r in result[len(claims) :])
        return Outcome(claimed, counted)

    async def claim(self, key: str, ttl: float) -> bool:
        return (await self.apply([Claim(key, ttl)], [])).claimed[0]

    async def incr(self, key: str, ttl: float) -> int:
        return (await self.apply([], [Count(key, ttl)])).counts[0]

    async def get(self, key: str) -> bytes | None:
        value = await self._run(self._redis.get(self._k(key)))
        return value if isinstance(value, bytes) else None

    async def delete(self, key: str) -> None:
        await self._run(self._redis.delete(self._k(key)))

    async def publish(self, channel: str, message: bytes) -> None:
        if self._cluster:
            # Sharded pub/sub (Redis 7): the message goes to the shard owning the
            # channel's slot, not over the cluster bus to every node as PUBLISH does.
            await self._run(self._redis.spublish(self._k(channel), message))
        else:
            await self._run(self._redis.publish(self._k(channel), message))

    async def subscribe(self, channel: str) -> AsyncIterator[bytes]:
        if self._cluster:
            async for data in self._sharded(self._k(channel)):
                yield data
            return
        pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self._k(channel))
        try:
            async for message in pubsub.listen():
                data = message.get("data")
                if isinstance(data, bytes):
                    yield data
        finally:
            await pubsub.aclose()

    async def _sharded(self, channel: str) -> AsyncIterator[bytes]:
        """SSUBSCRIBE on the node owning ``channel``'s slot, until that node is lost.

        When the slot moves or its node fails, the server ends the subscription (a
        ``sunsubscribe``) or the connection breaks: this raises, and the caller
        subscribes again, on the slot map read afresh here.
        """
        from redis.exceptions import ConnectionError as RedisConnectionError

        await self._subscriber.initialize()
        await self._subscriber.nodes_manager.initialize()  # the slot map as it is now
        pubsub = self._subscriber.pubsub()
        await pubsub.ssubscribe(channel)
        try:
            while True:
                message = await pubsub.get_sharded_message(timeout=None)
                if message is None:  # blocking, it answers None only with no shard left
                    raise RedisConnectionError("no shard subscription left")
                kind = message.get("type")
                if kind in (b"sunsubscribe", "sunsubscribe"):
                    raise RedisConnectionError("the shard channel's slot has moved")
                data = message.get("data")
                if kind in (b"smessage", "smessage") and isinstance(data, bytes):
                    yield data
        finally:
            await pubsub.aclose()

    async def ping(self) -> None:
        if self._cluster:
            # Any node: readiness must not fail every instance for one lost node.
            await self._run(self._redis.ping(target_nodes=self._redis.RANDOM))
        else:
            await self._run(self._redis.ping())

    async def close(self) -> None:
        await self._clients.close()


def one_slot(keys: Sequence[str]) -> None:
    """Refuse keys that a Redis Cluster would keep on different nodes (a programming error).

    A ``ValueError``, not ``HotStateUnavailable``: the call is wrong everywhere, and must
    fail its test rather than pass for an outage.
    """
    from redis.crc import key_slot

    slots = {key_slot(key.encode()) for key in keys}
    if len(slots) > 1:
        raise ValueError("the keys of one apply must share a hash tag: {tag}")
