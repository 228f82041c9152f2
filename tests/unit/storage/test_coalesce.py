"""storage.sql.coalesce: the reads of one event-loop turn, one query."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from authority.storage.sql.coalesce import Coalesced


class Reads:
    def __init__(self, fail: bool = False) -> None:
        self.ones: list[int] = []
        self.manys: list[list[int]] = []
        self.fail = fail

    async def one(self, question: int) -> str:
        self.ones.append(question)
        await asyncio.sleep(0)
        return f"answer {question}"

    async def many(self, questions: Sequence[int]) -> list[str]:
        self.manys.append(list(questions))
        await asyncio.sleep(0)
        if self.fail:
            raise ConnectionError("lost")
        return [f"answer {q}" for q in questions]


async def test_a_lone_question_is_the_single_statement() -> None:
    reads = Reads()
    coalesced = Coalesced(reads.one, reads.many, max_batch=4)
    assert await coalesced.ask(7) == "answer 7"
    assert (reads.ones, reads.manys) == ([7], [])


async def test_one_turn_s_questions_are_one_query_each_its_own_answer() -> None:
    reads = Reads()
    coalesced = Coalesced(reads.one, reads.many, max_batch=4)
    answers = await asyncio.gather(*(coalesced.ask(q) for q in range(10)))
    assert answers == [f"answer {q}" for q in range(10)]
    assert reads.manys == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] and reads.ones == []


async def test_a_failure_is_every_waiter_s_and_a_cancelled_one_is_left_out() -> None:
    reads = Reads(fail=True)
    coalesced = Coalesced(reads.one, reads.many, max_batch=8)
    tasks = [asyncio.create_task(coalesced.ask(q)) for q in range(3)]
    await asyncio.sleep(0)
    tasks[0].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(isinstance(r, ConnectionError) for r in results[1:])
    assert reads.manys == [[1, 2]]


async def test_a_cancelled_caller_cancels_nobody_else_s_read() -> None:
    reads = Reads()
    coalesced = Coalesced(reads.one, reads.many, max_batch=8)
    first = asyncio.create_task(coalesced.ask(1))
    second = asyncio.create_task(coalesced.ask(2))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the query is under way
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == "answer 2"
