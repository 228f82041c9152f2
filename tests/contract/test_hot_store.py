"""One contract for every HotState implementation: in-process, and Redis as one server, a
Sentinel-managed master and a three-node Cluster (``tests.redis_servers``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from authority.storage.hot import (
    Claim,
    Count,
    HotState,
    HotStateUnavailable,
    MemoryHotState,
    RedisHotState,
)
from tests.conftest import REDIS_URL
from tests.redis_servers import redis_cluster, redis_sentinel

__all__ = ["redis_cluster", "redis_sentinel"]  # fixtures, started only when asked for
REDIS = ["redis", "sentinel", "cluster"]


@pytest.fixture(params=["memory", *REDIS])
async def hot(request: pytest.FixtureRequest) -> AsyncIterator[HotState]:
    state: HotState
    prefix = f"authority-test:{uuid.uuid4().hex}:"
    if request.param == "memory":
        state = MemoryHotState()
    elif request.param == "redis":
        state = RedisHotState(REDIS_URL, prefix=prefix, timeout=2.0)
    else:
        deployment = request.getfixturevalue(f"redis_{request.param}")
        state = RedisHotState(deployment.url(), prefix=prefix, timeout=2.0)
    try:
        yield state
    finally:
        await state.close()


async def test_claim_is_granted_once(hot: HotState) -> None:
    assert await hot.claim("jti:a", 10) is True
    assert await hot.claim("jti:a", 10) is False
    assert await hot.claim("jti:b", 10) is True


async def test_concurrent_claims_have_exactly_one_winner(hot: HotState) -> None:
    results = await asyncio.gather(*(hot.claim("jti:race", 10) for _ in range(50)))
    assert results.count(True) == 1


async def test_claim_expires(hot: HotState) -> None:
    assert await hot.claim("jti:short", 0.05) is True
    await asyncio.sleep(0.15)
    assert await hot.claim("jti:short", 0.05) is True


async def test_counter_counts_every_increment(hot: HotState) -> None:
    counts = await asyncio.gather(*(hot.incr("rate:x", 10) for _ in range(40)))
    assert sorted(counts) == list(range(1, 41))


async def test_counter_window_starts_at_first_increment(hot: HotState) -> None:
    assert await hot.incr("rate:w", 0.2) == 1
    await asyncio.sleep(0.1)
    assert await hot.incr("rate:w", 0.2) == 2  # not extended by the second increment
    await asyncio.sleep(0.15)
    assert await hot.incr("rate:w", 0.2) == 1


async def test_apply_claims_and_counts_in_one_call(hot: HotState) -> None:
    # One hash tag: on a Cluster the keys of one call live in one slot.
    first = await hot.apply([Claim("{t}:a", 10), Claim("{t}:b", 10)], [Count("{t}:c", 10)])
    second = await hot.apply([Claim("{t}:a", 10), Claim("{t}:d", 10)], [Count("{t}:c", 10)])
    assert first.claimed == (True, True) and first.counts == (1,)
    assert second.claimed == (False, True) and second.counts == (2,)


@pytest.mark.parametrize("kind", REDIS)
async def test_keys_of_one_apply_without_a_shared_tag_are_refused_on_any_redis(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """A call a Cluster would refuse (CROSSSLOT) is refused on one server too, as a
    programming error, before Redis is asked: so the single-server tests catch it."""
    url = REDIS_URL if kind == "redis" else request.getfixturevalue(f"redis_{kind}").url()
    state = RedisHotState(url, prefix=f"authority-test:{uuid.uuid4().hex}:", timeout=2.0)
    try:
        with pytest.raises(ValueError, match="hash tag"):
            await state.apply([Claim("a", 10)], [Count("b", 10)])
        assert await state.get("a") is None  # nothing was written
    finally:
        await state.close()


async def test_get_and_delete(hot: HotState) -> None:
    assert await hot.get("k") is None
    await hot.claim("k", 10)
    assert await hot.get("k") == b"1"
    await hot.delete("k")
    assert await hot.get("k") is None


async def test_publish_reaches_subscribers(hot: HotState) -> None:
    received: list[bytes] = []
    ready = asyncio.Event()

    async def listen() -> None:
        stream = hot.subscribe("events")
        task = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0.1)  # the subscription is in place once the iterator has started
        ready.set()
        received.append(await task)
        received.append(await stream.__anext__())
        await stream.aclose()  # type: ignore[attr-defined]

    listener = asyncio.create_task(listen())
    await ready.wait()
    await hot.publish("events", b"one")
    await hot.publish("events", b"two")
    await asyncio.wait_for(listener, 5)
    assert received == [b"one", b"two"]


async def test_unreachable_redis_fails_closed() -> None:
    state = RedisHotState("redis://127.0.0.1:1/0", prefix="x:", timeout=0.05)
    try:
        with pytest.raises(HotStateUnavailable):
            await state.claim("jti", 10)
        with pytest.raises(HotStateUnavailable):
            await state.apply([Claim("{x}a", 1)], [Count("{x}b", 1)])
    finally:
        await state.close()


async def test_ping_answers(hot: HotState) -> None:
    """What readiness asks (on a cluster: any one node)."""
    await hot.ping()


async def test_counter_adds_a_reconciled_count(hot: HotState) -> None:
    # authority.rate_window adds what a worker counted in process, in one trip.
    by, other = "rate:{t}:by", "rate:{t}:other"
    outcome = await hot.apply([], [Count(by, 10, by=7), Count(other, 10)])
    assert outcome.counts == (7, 1)
    assert (await hot.apply([], [Count(by, 10, by=0)])).counts == (7,)
    assert await hot.incr(by, 10) == 8


async def test_rate_windows_of_several_clients_reconcile_in_one_slot(hot: HotState) -> None:
    """authority.rate_window adds many clients' counts at once: on a cluster (and so on
    every Redis) they must share a hash tag, across a minute that turns too."""
    from authority.rate_window import RateWindows

    windows = RateWindows(hot, interval=0.0, budget=1, allowance=60.0)
    now = 1_800_000_059
    for client in ("rs_1", "rs_2", "rs_3"):
        assert await windows.count("introspect", client, now) == 1
    assert await windows.count("introspect", "rs_1", now) == 2
    assert await windows.count("introspect", "rs_2", now + 1) == 1  # the next minute
    assert await windows.count("introspect", "rs_3", now) == 2
    await windows.close()
