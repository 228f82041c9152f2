"""How a policy change reaches every instance (``policy.active``): each confirms the
active version at most every interval, a change installed here decides at once, and a
version that cannot be confirmed is a 503, never a decision on a stale one."""

from __future__ import annotations

import asyncio

import pytest

from authority.errors import TemporarilyUnavailable
from authority.policy.active import BUILT_IN, ActivePolicy
from authority.policy.cedar import CedarPolicy
from authority.policy.versions import change_entry, digest
from authority.storage.memory import Tables
from authority.storage.memory.policies import MemoryPolicyStore
from authority.storage.policies import NewPolicy, PolicyStore

FORBID = "forbid(principal, action, resource);"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def store_version(store: PolicyStore, text: str) -> int:
    new = NewPolicy(text, digest(text), "key_admin", None, 1_800_000_000)
    entry = change_entry(now=1_800_000_000, actor="key_admin", change="created")
    info = await store.create(new, actor="key_admin", entry=entry)
    assert info is not None
    return info.version


def worker(store: PolicyStore, clock: Clock, interval: float = 1.0) -> ActivePolicy:
    return ActivePolicy(store, interval=interval, timeout=5, monotonic=clock)


async def test_every_worker_decides_on_a_change_within_one_interval() -> None:
    store, clock = MemoryPolicyStore(Tables()), Clock()
    one, other = worker(store, clock), worker(store, clock)
    assert (await one.current()).version == (await other.current()).version == BUILT_IN

    version = await store_version(store, FORBID)
    one.install(version, CedarPolicy(FORBID))  # the worker that made the change
    assert (await one.current()).version == version
    # The other worker's confirmation is still fresh: the bounded window.
    assert (await other.current()).version == BUILT_IN
    clock.now += 1.0
    assert (await other.current()).version == version
    assert (await other.current()).policy.count == 1  # the stored text, compiled there


async def test_an_interval_of_zero_reads_on_every_decision() -> None:
    store, clock = MemoryPolicyStore(Tables()), Clock()
    every = worker(store, clock, interval=0)
    assert (await every.current()).version == BUILT_IN
    version = await store_version(store, FORBID)
    assert (await every.current()).version == version


class Failing:
    """A store whose reads fail, or never answer."""

    def __init__(self, inner: PolicyStore, *, hang: bool = False) -> None:
        self.inner, self.hang, self.failing = inner, hang, False

    async def active_version(self) -> int | None:
        if self.failing:
            if self.hang:
                await asyncio.Event().wait()
            raise OSError("database down")
        return await self.inner.active_version()

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


@pytest.mark.parametrize("hang", [False, True])
async def test_a_version_that_cannot_be_confirmed_is_a_503(hang: bool) -> None:
    clock = Clock()
    store = Failing(MemoryPolicyStore(Tables()), hang=hang)
    holder = ActivePolicy(
        store,  # type: ignore[arg-type]
        interval=1.0,
        timeout=0.01,
        monotonic=clock,
    )
    await holder.current()
    store.failing = True
    assert (await holder.current()).version == BUILT_IN  # confirmed within the interval
    clock.now += 1.0
    with pytest.raises(TemporarilyUnavailable):
        await holder.current()
    with pytest.raises(TemporarilyUnavailable):  # and again: never the stale one
        await holder.current()
    store.failing = False
    if hang:
        holder._reading = None  # the hung read is abandoned
    assert (await holder.current()).version == BUILT_IN


async def test_a_read_that_started_before_a_change_does_not_undo_it() -> None:
    store, clock = MemoryPolicyStore(Tables()), Clock()
    holder = worker(store, clock, interval=0)
    version = await store_version(store, FORBID)
    gate = asyncio.Event()
    real = store.active_version

    async def slow() -> int | None:
        await gate.wait()
        return None  # what it read before the change

    store.active_version = slow  # type: ignore[method-assign]
    reading = asyncio.ensure_future(holder.current())
    await asyncio.sleep(0)
    clock.now += 1
    holder.install(version, CedarPolicy(FORBID))
    gate.set()
    await reading
    store.active_version = real  # type: ignore[method-assign]
    holder._interval = 10
    assert (await holder.current()).version == version


def test_a_fixed_policy_is_never_read() -> None:
    policy = CedarPolicy(FORBID)
    holder = ActivePolicy.fixed(policy, 7)
    assert asyncio.run(holder.current()).version == 7
