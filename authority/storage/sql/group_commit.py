"""Group commit: the writes that concurrent requests of one worker ask for, in one transaction.

Each request enqueues its write and awaits its own outcome. The first writer of an idle
queue starts a drain task; everything enqueued before that task runs (the same turn of
the event loop), or while its batch is in flight, forms the next batch. There is no
timer: a lone request is a batch of one and costs what it cost without this.

The honest semantics, each owed to a caller that does not know it shares a transaction:

* a batch of one runs ``one`` (the write alone, as without batching), in a task of its
  own: the queue goes on while it waits (for a lock, say);
* a larger batch runs ``many`` in one transaction, whose lock waits ``many`` bounds;
  if that fails with ``RolledBack`` (``many`` knows nothing of it was committed: one
  item's bad row, a lock wait past the bound, a deadlock, all reported by the database
  for the statement itself), each item is retried alone (``one``, in tasks of their
  own), so one item's error fails no other and a lock held on one owner's rows stalls
  the others' writes no longer than that bound;
* any other error leaves the commit's outcome unknown (the connection lost, or an error
  after the statement returned, when the batch may well have committed): every waiter
  of the batch gets ``CommitUnknown`` (a 503), none is retried, none is told
  "committed" (a retry could write twice what the batch already wrote);
* a waiter cancelled before its batch starts is dropped from it (nothing written); one
  cancelled while its batch is in flight gets nothing, and its write is committed or not
  as a whole with the others, never in part.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger("authority.storage")

Item = TypeVar("Item")
Out = TypeVar("Out")


class RolledBack(Exception):
    """Raised by ``many`` from the error of a batch known not to have committed."""


class CommitUnknown(ConnectionError):
    """The batch may or may not have committed: its waiters answer 503, none retried."""


class GroupCommit(Generic[Item, Out]):
    """One queue per worker (per store): ``await submit(item)`` is that item's outcome.

    ``one(item)``: the item written alone, in its own transaction. ``many(items)``: all
    of them in one transaction, outcomes in the items' order; it raises ``RolledBack``
    only when nothing of the batch was committed.
    """

    def __init__(
        self,
        one: Callable[[Item], Awaitable[Out]],
        many: Callable[[Sequence[Item]], Awaitable[Sequence[Out]]],
        *,
        most: int = 64,
    ) -> None:
        self._one = one
        self._many = many
        self._most = most
        self._queue: list[tuple[Item, asyncio.Future[Out]]] = []
        self._drain: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # lone writes in flight
        #: Batches written, and items in them, since start (the bench reads them).
        self.batches = 0
        self.items = 0

    async def submit(self, item: Item) -> Out:
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._drain is None:
            self._drain = asyncio.create_task(self._run(), name="group-commit")
        return await future

    async def _run(self) -> None:
        batch: list[tuple[Item, asyncio.Future[Out]]] = []
        try:
            while self._queue:
                taken, self._queue = self._queue[: self._most], self._queue[self._most :]
                # Cancelled before their batch started: dropped, nothing written.
                batch = [(item, future) for item, future in taken if not future.done()]
                if len(batch) > 1:
                    await self._write(batch)
                elif batch:
                    self._alone(batch)
                batch = []
        except BaseException as exc:  # the task itself cancelled (shutdown): fail closed
            _fail(batch + self._queue, ConnectionError("the write was not completed"))
            self._queue = []
            if not isinstance(exc, Exception):
                raise
        finally:
            self._drain = None

    async def _write(self, batch: list[tuple[Item, asyncio.Future[Out]]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            outcomes = await self._many([item for item, _ in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError("the batch did not answer for every item")
        except RolledBack as exc:  # nothing committed: each item alone
            log.info("group commit of %d items retried one by one: %r", len(batch), exc.__cause__)
            self._alone(batch)
        except Exception as exc:  # committed or not: unknown, so never a success
            log.warning("group commit of %d items: outcome unknown: %r", len(batch), exc)
            unknown = CommitUnknown("the outcome of the write is unknown")
            unknown.__cause__ = exc
            _fail(batch, unknown)
        else:
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)

    def _alone(self, batch: list[tuple[Item, asyncio.Future[Out]]]) -> None:
        """Each item in a task of its own, not awaited here: one that waits for a lock
        (unbounded, as without batching) holds up neither the queue nor the others."""
        for item, future in batch:
            if future.done():  # cancelled meanwhile: nothing of it was committed
                continue
            task = asyncio.create_task(self._write_alone(item, future), name="group-commit-one")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _write_alone(self, item: Item, future: asyncio.Future[Out]) -> None:
        try:
            outcome = await self._one(item)
        except BaseException as exc:
            _fail([(item, future)], exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if not future.done():
                future.set_result(outcome)


def _fail(batch: Sequence[tuple[object, asyncio.Future[Out]]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
