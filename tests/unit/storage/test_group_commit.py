"""Group commit (``storage.sql.group_commit``): batches, and each waiter's own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from authority.storage.sql.group_commit import CommitUnknown, GroupCommit, RolledBack


class Lost(Exception):
    """Stands for a lost connection: the commit's outcome unknown."""


class Writes:
    """A fake database: records what was written alone and in batches."""

    def __init__(self) -> None:
        self.alone: list[str] = []
        self.batches: list[list[str]] = []
        self.fail_batch: Exception | None = None
        self.fail_after: Exception | None = None  # raised once the batch has committed
        self.bad = {"bad"}
        self.gate: asyncio.Event | None = None  # a batch waits on it (a batch in flight)

    async def one(self, item: str) -> str:
        await asyncio.sleep(0)
        if item in self.bad:
            raise ValueError(item)
        self.alone.append(item)
        return f"ok {item}"

    async def many(self, items: Sequence[str]) -> list[str]:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_batch is not None:
            raise self.fail_batch
        if self.bad & set(items):
            raise RolledBack() from ValueError("a bad row: the transaction rolls back")
        self.batches.append(list(items))
        if self.fail_after is not None:
            raise self.fail_after
        return [f"ok {item}" for item in items]

    def queue(self) -> GroupCommit[str, str]:
        return GroupCommit(self.one, self.many)


async def test_a_lone_write_is_a_batch_of_one_written_alone() -> None:
    writes = Writes()
    assert await writes.queue().submit("a") == "ok a"
    assert (writes.alone, writes.batches) == (["a"], [])


async def test_concurrent_writes_share_one_batch_and_each_gets_its_own_outcome() -> None:
    writes = Writes()
    queue = writes.queue()
    outcomes = await asyncio.gather(*(queue.submit(f"w{i}") for i in range(5)))
    assert outcomes == [f"ok w{i}" for i in range(5)]
    assert writes.batches == [[f"w{i}" for i in range(5)]]
    assert writes.alone == []


async def test_the_next_batch_forms_while_one_is_in_flight() -> None:
    writes = Writes()
    writes.gate = asyncio.Event()
    queue = writes.queue()
    first = [asyncio.create_task(queue.submit(f"a{i}")) for i in range(2)]
    await asyncio.sleep(0.01)  # the first batch is in flight, waiting on the gate
    later = [asyncio.create_task(queue.submit(f"b{i}")) for i in range(3)]
    await asyncio.sleep(0.01)
    assert writes.batches == []
    writes.gate.set()
    await asyncio.gather(*first, *later)
    assert writes.batches == [["a0", "a1"], ["b0", "b1", "b2"]]


async def test_one_items_error_fails_no_other() -> None:
    writes = Writes()
    queue = writes.queue()
    outcomes = await asyncio.gather(
        queue.submit("a"), queue.submit("bad"), queue.submit("c"), return_exceptions=True
    )
    assert outcomes[0] == "ok a" and outcomes[2] == "ok c"
    assert isinstance(outcomes[1], ValueError)
    # The batch rolled back, then each item was written alone.
    assert writes.batches == [] and sorted(writes.alone) == ["a", "c"]


async def test_a_lost_connection_fails_every_waiter_and_retries_none() -> None:
    writes = Writes()
    writes.fail_batch = Lost("connection lost at commit")
    queue = writes.queue()
    outcomes = await asyncio.gather(
        *(queue.submit(f"w{i}") for i in range(4)), return_exceptions=True
    )
    assert all(isinstance(o, CommitUnknown) for o in outcomes)
    assert all(isinstance(o.__cause__, Lost) for o in outcomes if isinstance(o, BaseException))
    assert writes.alone == []  # a commit of unknown outcome is never written again


@pytest.mark.parametrize("error", [KeyError("claimed_2"), ValueError("an answer misread")])
async def test_an_error_after_the_commit_fails_every_waiter_and_retries_none(
    error: Exception,
) -> None:
    """Not ``RolledBack``: the batch may have committed, so writing any item again could
    write it twice (or answer a written grant with a refusal)."""
    writes = Writes()
    writes.fail_after = error
    queue = writes.queue()
    outcomes = await asyncio.gather(
        *(queue.submit(f"w{i}") for i in range(4)), return_exceptions=True
    )
    assert all(isinstance(o, CommitUnknown) for o in outcomes)  # 503, as a lost connection
    assert writes.batches == [[f"w{i}" for i in range(4)]] and writes.alone == []


async def test_a_batch_that_answers_for_too_few_items_answers_none() -> None:
    writes = Writes()

    async def many(items: Sequence[str]) -> list[str]:
        writes.batches.append(list(items))
        return ["ok"]

    queue = GroupCommit(writes.one, many)
    outcomes = await asyncio.gather(queue.submit("a"), queue.submit("b"), return_exceptions=True)
    assert all(isinstance(o, CommitUnknown) for o in outcomes) and writes.alone == []


async def test_a_waiter_cancelled_before_its_batch_is_dropped_from_it() -> None:
    writes = Writes()
    queue = writes.queue()
    tasks = [asyncio.create_task(queue.submit(f"w{i}")) for i in range(3)]
    await asyncio.sleep(0)  # each task has enqueued its write; the batch has not run
    tasks[1].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    assert writes.batches == [["w0", "w2"]]


async def test_a_waiter_cancelled_in_flight_leaves_its_batch_whole() -> None:
    writes = Writes()
    writes.gate = asyncio.Event()
    queue = writes.queue()
    tasks = [asyncio.create_task(queue.submit(f"w{i}")) for i in range(3)]
    await asyncio.sleep(0.01)
    tasks[0].cancel()
    writes.gate.set()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[0], asyncio.CancelledError)
    assert list(done[1:]) == ["ok w1", "ok w2"]
    assert writes.batches == [["w0", "w1", "w2"]]  # written whole, with the others


async def test_a_lone_write_waiting_on_a_lock_holds_up_no_batch() -> None:
    writes = Writes()
    held = asyncio.Event()

    async def one(item: str) -> str:
        if item == "held":
            await held.wait()  # a row lock another transaction holds
        return f"ok {item}"

    queue = GroupCommit(one, writes.many)
    stuck = asyncio.create_task(queue.submit("held"))
    await asyncio.sleep(0.01)
    assert list(await asyncio.gather(queue.submit("a"), queue.submit("b"))) == ["ok a", "ok b"]
    assert not stuck.done()
    held.set()
    assert await stuck == "ok held"


@pytest.mark.parametrize("size", [1, 3])
async def test_a_cancelled_drain_fails_its_waiters_closed(size: int) -> None:
    writes = Writes()
    writes.gate = asyncio.Event()
    queue = writes.queue()
    tasks = [asyncio.create_task(queue.submit(f"w{i}")) for i in range(size)]
    await asyncio.sleep(0.01)
    if queue._drain is not None:
        queue._drain.cancel()
    writes.gate.set()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    if size > 1:
        assert all(isinstance(d, ConnectionError) for d in done)
    else:
        assert done == ["ok w0"]  # a lone write runs in a task of its own
