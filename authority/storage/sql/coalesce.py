"""Reads asked for in one turn of the event loop, answered by one query (PostgreSQL).

Each ``ask`` queues its question and awaits its own answer; the first of a turn
schedules the query for the end of the turn, in a task of its own, so that a cancelled
caller cancels nobody else's read (its answer is dropped: a read writes nothing). A lone
question is answered by ``one``, the single-row statement, with no timer; more by
``many``, at most ``max_batch`` to a query. A failure of that query (a lost connection, a
timeout) is raised to every question it would have answered: each becomes a 503, none
an answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, NamedTuple, TypeVar

Q = TypeVar("Q")
A = TypeVar("A")


class _Asked(NamedTuple, Generic[Q, A]):
    question: Q
    answer: asyncio.Future[A]


class Coalesced(Generic[Q, A]):
    def __init__(
        self,
        one: Callable[[Q], Awaitable[A]],
        many: Callable[[Sequence[Q]], Awaitable[list[A]]],
        *,
        max_batch: int,
    ) -> None:
        self._one = one
        self._many = many
        self._max_batch = max_batch
        self._asked: list[_Asked[Q, A]] = []
        self._running: set[asyncio.Task[None]] = set()

    async def ask(self, question: Q) -> A:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[A] = loop.create_future()
        if not self._asked:
            loop.call_soon(self._dispatch)
        self._asked.append(_Asked(question, answer))
        return await answer

    def _dispatch(self) -> None:
        asked, self._asked = self._asked, []
        waiting = [one for one in asked if not one.answer.done()]
        for start in range(0, len(waiting), self._max_batch):
            task = asyncio.create_task(self._answer(waiting[start : start + self._max_batch]))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _answer(self, asked: list[_Asked[Q, A]]) -> None:
        try:
            if len(asked) == 1:
                answers = [await self._one(asked[0].question)]
            else:
                answers = await self._many([one.question for one in asked])
            if len(answers) != len(asked):  # one answer per question: cannot happen
                raise RuntimeError("a coalesced query answered the wrong number of questions")
        except BaseException as exc:
            for one in asked:
                if one.answer.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    one.answer.cancel()
                else:
                    one.answer.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for one, answer in zip(asked, answers, strict=True):
            if not one.answer.done():  # a cancelled caller's answer is dropped
                one.answer.set_result(answer)
