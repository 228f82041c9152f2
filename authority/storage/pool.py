"""The PostgreSQL driver's own pool of asyncpg connections.

A module of its own because it is a concurrency primitive with its own invariants (every
slot is either idle, in use, or handed to the first waiter), tested on its own, and used
by the benchmarks without the driver around it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable

import asyncpg


class ConnectionPool:
    """Connections for the hot path: a stack of idle ones and a queue of waiters.

    asyncpg's own pool costs about 60 µs of CPU per use on top of the statement (each
    release runs in a task of its own, shielded, after a reset query that undoes session
    state nothing here creates). This one hands a connection over in a list operation.
    A connection whose exchange with the server broke off, or that is closed, or that
    was left in a transaction, is terminated on release rather than trusted again; its
    slot goes to the next waiter.

    ``invalidate`` drops every connection opened so far (idle ones at once, those in use
    when they come back): after the server behind one is lost or demoted, the others
    reach the same server. A connection the server closed while idle is noticed for free
    (the event loop sees the socket close: ``is_closed``) and skipped at checkout, so no
    round trip is spent to check connections on the hot path.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        *,
        size: int,
        timeout: float | None,
    ) -> None:
        self._connect = connect
        self._size = size
        self._timeout = timeout
        self._idle: list[asyncpg.Connection] = []
        self._open = 0  # connections made and not yet terminated, idle or in use
        self._waiters: collections.deque[asyncio.Future[asyncpg.Connection | None]] = (
            collections.deque()
        )
        self._closed = False
        self._generation = 0
        self._born: dict[int, int] = {}  # id(connection) -> generation it was opened in

    @property
    def size(self) -> int:
        """Connections open now (idle or in use); at most the pool's size."""
        return self._open

    @property
    def in_use(self) -> int:
        """Connections handed out and not released yet."""
        return self._open - len(self._idle)

    @property
    def capacity(self) -> int:
        return self._size

    async def acquire(self) -> asyncpg.Connection:
        """A connection for one use; ``TimeoutError`` if none frees up in time."""
        connection = self._idle_connection()
        if connection is not None:  # the usual case: no timer, no suspension
            return connection
        async with asyncio.timeout(self._timeout):
            connection = self._idle_connection()
            if connection is not None:
                return connection
            if self._open < self._size:
                self._open += 1
                return await self._connect_on_slot()
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    given = waiter.result()
                    if given is not None:  # handed over as this waiter gave up
                        self.release(given, healthy=True)
                    else:
                        self._free_slot()  # pass the reserved slot on
                raise
            if handed is not None:
                return handed
            # None: a terminated connection's slot, reserved for this waiter.
            return await self._connect_on_slot()

    async def _connect_on_slot(self) -> asyncpg.Connection:
        """Open a connection on a slot already counted in ``_open``."""
        generation = self._generation
        try:
            connection = await self._connect()
        except BaseException:
            self._free_slot()
            raise
        self._born[id(connection)] = generation
        return connection

    def _idle_connection(self) -> asyncpg.Connection | None:
        if self._closed:
            raise ConnectionError("the connection pool is closed")
        while self._idle:
            connection = self._idle.pop()
            if not connection.is_closed():
                return connection
            self._born.pop(id(connection), None)
            self._free_slot()
        return None

    def release(self, connection: asyncpg.Connection, *, healthy: bool) -> None:
        """Give a connection back, to the next waiter or the idle stack."""
        if (
            self._closed
            or not healthy
            or connection.is_closed()
            or connection.is_in_transaction()
            or self._born.get(id(connection), self._generation) < self._generation
        ):
            self._born.pop(id(connection), None)
            connection.terminate()
            self._free_slot()
            return
        if not self._wake(connection):
            self._idle.append(connection)

    def invalidate(self) -> None:
        """Drop every connection opened until now (the server behind them is gone)."""
        self._generation += 1
        idle, self._idle = self._idle, []
        for connection in idle:
            self._born.pop(id(connection), None)
            connection.terminate()
            self._free_slot()

    def _free_slot(self) -> None:
        """A connection is gone: its slot goes to the first waiter, or back to the pool.

        Handed over, not just freed, so that a request arriving meanwhile cannot take
        it and leave the waiter that was first in line to time out.
        """
        if self._closed or not self._wake(None):
            self._open -= 1

    def _wake(self, connection: asyncpg.Connection | None) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return True
        return False

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        self._born.clear()
        for connection in idle:
            self._open -= 1
            with contextlib.suppress(Exception):
                await connection.close(timeout=1)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionError("the connection pool is closed"))
