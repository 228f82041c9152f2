"""The hot path's few statements, run on the database driver itself.

Every exchange and every introspection runs a handful of statements. Through
SQLAlchemy's async engine each one costs about 0.2 ms of Python before the database
sees it (connection checkout, the greenlet hand-off, the compiled-cache lookup, result
processing); on the driver the same statement costs 20-30 µs on SQLite and one round
trip on PostgreSQL. So the hot statements are written with SQLAlchemy Core like every
other (one schema, SQLAlchemy's compiler for each dialect), compiled once per dialect
into SQL with positional parameters, and executed here. Everything else uses the engine.

* SQLite (embedded): one sqlite3 connection per process, called inline on the event
  loop like the engine's (``storage.database``). A transaction takes the same
  in-process write lock as the engine's transactions and then ``BEGIN IMMEDIATE``.
* PostgreSQL: asyncpg connections with the engine's session settings (statement and
  idle transaction timeouts), in a pool of their own (``ConnectionPool``); asyncpg
  prepares each statement once per connection.

Rows come back as ``Row``: a dict whose values are also attributes, like SQLAlchemy's.
A database that cannot be reached raises one of ``UNAVAILABLE``, which the endpoints
turn into 503 (``endpoints.guard``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import asyncpg
from sqlalchemy import make_url
from sqlalchemy.dialects.postgresql import asyncpg as pg_dialect
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler

from .database import SQLITE_BUSY_TIMEOUT, session_settings, sqlite_lock_key, sqlite_pragmas
from .database import write_lock as sqlite_write_lock

log = logging.getLogger("authority.storage")

#: How often, in seconds, the server checkpoints the embedded database's WAL when
#: something has been written to it since the last checkpoint.
CHECKPOINT_INTERVAL = 0.25

#: Most compiled statements a driver keeps (the hot path has about a dozen).
MAX_STATEMENTS = 256

#: What a database that is down, unreachable, too slow or overloaded raises here.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # includes ConnectionError
    TimeoutError,  # asyncio's too, since 3.11
    sqlite3.OperationalError,  # locked past the busy timeout, disk I/O, file gone
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # the connection closed under us
    # The protocol met a message it did not expect, such as the notice of a session
    # the server has just ended: the connection is dropped (_BROKEN), the caller told
    # to retry.
    asyncpg.InternalClientError,
    asyncpg.OperatorInterventionError,  # statement_timeout, shutdown, crash, starting up
    asyncpg.InsufficientResourcesError,  # disk full, out of memory, too many connections
    asyncpg.IdleInTransactionSessionTimeoutError,
    asyncpg.ReadOnlySQLTransactionError,  # a standby, during a failover
    asyncpg.TransactionRollbackError,  # deadlock or serialisation failure: retry
)

#: Errors after which a connection's state is unknown: it is closed, not reused.
_BROKEN: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
)


class Row(dict[str, Any]):
    """One result row: ``row["agent_id"]`` or ``row.agent_id``."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True, slots=True)
class Compiled:
    """A Core statement as SQL for one dialect, with its positional parameter order."""

    sql: str
    names: tuple[str, ...]
    fixed: Mapping[str, Any]  # values the statement carries itself (literals)
    source: Executable  # kept alive: the cache is keyed on its id

    @classmethod
    def of(cls, statement: Executable, dialect: Dialect) -> Compiled:
        compiled = cast(SQLCompiler, cast(Any, statement).compile(dialect=dialect))
        names = tuple(compiled.positiontup or ())
        fixed = {
            name: bind.value
            for name, bind in compiled.binds.items()
            if not bind.required and bind.callable is None
        }
        return cls(compiled.string, names, fixed, statement)

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        fixed = self.fixed
        # A parameter neither given nor fixed is a programming error: KeyError.
        return [params[name] if name in params else fixed[name] for name in self.names]


class Executes(Protocol):
    """What writing a row needs: a driver transaction, or an engine connection."""

    async def execute(self, statement: Any, parameters: Any, /) -> Any: ...


class Transaction(Protocol):
    """Statements inside one of ``Driver.transaction``'s transactions."""

    async def fetchrow(self, statement: Executable, params: Mapping[str, Any]) -> Any:
        """Run ``statement``; its first row (attribute access), or None."""

    async def execute(self, statement: Executable, params: Mapping[str, Any]) -> None:
        """Run ``statement`` for its effect."""


class Driver(Protocol):
    """The hot path's statements, on the driver (SQLite or PostgreSQL).

    Statements must be built once (module level) with ``bindparam`` for every value
    that varies: each is compiled on first use and kept for the process's life.
    """

    #: "sqlite" or "postgresql", for the few statements written for one of them.
    dialect: str

    async def fetchrow(self, statement: Executable, params: Mapping[str, Any]) -> Row | None:
        """Run a read outside any transaction (it sees one consistent snapshot)."""

    async def commit_one(self, statement: Executable, params: Mapping[str, Any]) -> Row | None:
        """Run one write in a transaction of its own; its first row, or None."""

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """``async with driver.transaction() as tx``: commit on exit, roll back on error."""

    def start(self) -> None:
        """Start background upkeep, if the database needs any (from the running loop)."""

    async def close(self) -> None:
        """Release every connection."""


class _Statements:
    """Each Core statement compiled once for the driver's dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._compiled: dict[int, Compiled] = {}

    def __call__(self, statement: Executable) -> Compiled:
        compiled = self._compiled.get(id(statement))
        if compiled is None or compiled.source is not statement:
            compiled = Compiled.of(statement, self._dialect)
            # Statements are built once, so a handful are kept; a statement built per
            # call would be a mistake, and is compiled each time rather than hoarded.
            if len(self._compiled) < MAX_STATEMENTS:
                self._compiled[id(statement)] = compiled
        return compiled


def make_driver(
    url: str,
    *,
    pool_size: int = 10,
    transaction_timeout: float | None = None,
    background_checkpoints: bool = False,
) -> Driver:
    """The driver for the engine's ``url``; nothing is connected until first used."""
    if url.startswith("sqlite"):
        return SQLiteDriver(
            make_url(url).database or ":memory:", background_checkpoints=background_checkpoints
        )
    return PostgresDriver(url, pool_size=pool_size, transaction_timeout=transaction_timeout)


# --- SQLite -----------------------------------------------------------------------------------
def _row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> Row:
    return Row(zip([d[0] for d in cursor.description], values, strict=True))


class _SQLiteTransaction:
    def __init__(self, connection: sqlite3.Connection, statements: _Statements) -> None:
        self._connection = connection
        self._statements = statements

    async def fetchrow(self, statement: Executable, params: Mapping[str, Any]) -> Row | None:
        compiled = self._statements(statement)
        row: Row | None = self._connection.execute(
            compiled.sql, compiled.arguments(params)
        ).fetchone()
        return row

    async def execute(self, statement: Executable, params: Mapping[str, Any]) -> None:
        compiled = self._statements(statement)
        self._connection.execute(compiled.sql, compiled.arguments(params))


class SQLiteDriver:
    """One connection, called inline: every call here takes microseconds on a local file.

    Python's sqlite3 is used with ``isolation_level=None``: it opens no transaction of
    its own, a lone SELECT reads a snapshot of committed data (WAL), and transactions
    are the explicit ``BEGIN IMMEDIATE`` ... ``COMMIT`` below.

    With ``background_checkpoints`` (the server: every connection of its engine and this
    one run with ``wal_autocheckpoint=0``), ``start`` runs the WAL checkpoints on a
    worker thread with a connection of its own, every ``CHECKPOINT_INTERVAL`` seconds
    when something has been written; sqlite3 releases the GIL while it copies and
    syncs, so requests go on meanwhile. A PASSIVE checkpoint never blocks a writer or a
    reader.
    """

    dialect = "sqlite"

    def __init__(self, path: str, *, background_checkpoints: bool = False) -> None:
        if path == ":memory:":
            raise ValueError("the embedded database must be a file shared with the engine")
        self._path = path
        self._key = sqlite_lock_key(path)
        self._connection: sqlite3.Connection | None = None
        self._statements = _Statements(sqlite_dialect())
        self._background_checkpoints = background_checkpoints
        self._checkpointer: asyncio.Task[None] | None = None
        self._checkpoint_connection: sqlite3.Connection | None = None
        self._running: asyncio.Future[None] | None = None  # a checkpoint on its thread

    def _connect(self) -> sqlite3.Connection:
        connection = self._connection
        if connection is None:
            connection = sqlite3.connect(
                self._path,
                timeout=SQLITE_BUSY_TIMEOUT,
                isolation_level=None,
                check_same_thread=False,
            )
            sqlite_pragmas(connection, background_checkpoints=self._background_checkpoints)
            connection.row_factory = _row
            self._connection = connection
        return connection

    async def fetchrow(self, statement: Executable, params: Mapping[str, Any]) -> Row | None:
        connection = self._connect()
        if connection.in_transaction:
            # A transaction's body suspended and let this read in: it would see that
            # transaction's uncommitted writes. No body awaits anything that suspends.
            raise RuntimeError("a read on the SQLite driver inside an open transaction")
        return await _SQLiteTransaction(connection, self._statements).fetchrow(statement, params)

    async def commit_one(self, statement: Executable, params: Mapping[str, Any]) -> Row | None:
        # Never in autocommit: SQLite's own lock would make this wait, blocking the
        # loop, for a transaction of the engine's that holds the in-process lock.
        async with self.transaction() as tx:
            row: Row | None = await tx.fetchrow(statement, params)
        return row

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with sqlite_write_lock(self._key):
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLiteTransaction(connection, self._statements)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise

    def start(self) -> None:
        if self._background_checkpoints and self._checkpointer is None:
            self._checkpointer = asyncio.create_task(
                self._checkpoints(), name="sqlite-wal-checkpoints"
            )

    async def _checkpoints(self) -> None:
        checkpointed: tuple[int, int] | None = None
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL)
            # The WAL file keeps its size after a checkpoint (SQLite reuses it from the
            # start), so what tells of new frames is its size or time having changed.
            written = self._wal_stamp()
            if written == checkpointed:
                continue
            self._running = asyncio.ensure_future(asyncio.to_thread(self._checkpoint))
            try:
                await asyncio.shield(self._running)
                checkpointed = written
            except (OSError, sqlite3.Error) as exc:
                log.warning("WAL checkpoint failed: %s", exc)

    def _wal_stamp(self) -> tuple[int, int] | None:
        """The WAL's size and modification time: one stat call, microseconds."""
        try:
            status = Path(self._path + "-wal").stat()
        except FileNotFoundError:
            return None
        return status.st_size, status.st_mtime_ns

    def _checkpoint(self) -> None:
        """On a worker thread: copy what the WAL holds into the database file."""
        connection = self._checkpoint_connection
        if connection is None:
            connection = sqlite3.connect(
                self._path,
                timeout=SQLITE_BUSY_TIMEOUT,
                isolation_level=None,
                check_same_thread=False,
            )
            self._checkpoint_connection = connection
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
            # A checkpoint already on its thread runs to its end before the last one.
            for last in (self._running, asyncio.to_thread(self._checkpoint)):
                if last is not None:
                    with contextlib.suppress(OSError, sqlite3.Error):
                        await last
            self._running = None
        for connection in (self._connection, self._checkpoint_connection):
            if connection is not None:
                connection.close()
        self._connection = self._checkpoint_connection = None


# --- PostgreSQL -------------------------------------------------------------------------------
class _PostgresTransaction:
    def __init__(self, connection: Any, statements: _Statements) -> None:
        self._connection = connection
        self._statements = statements

    async def fetchrow(self, statement: Executable, params: Mapping[str, Any]) -> Row | None:
        compiled = self._statements(statement)
        record = await self._connection.fetchrow(compiled.sql, *compiled.arguments(params))
        return None if record is None else Row(record.items())

    async def execute(self, statement: Executable, params: Mapping[str, Any]) -> None:
        compiled = self._statements(statement)
        await self._connection.execute(compiled.sql, *compiled.arguments(params))


class ConnectionPool:
    """Connections for the hot path: a stack of idle ones and a queue of waiters.

    asyncpg's own pool costs about 60 µs of CPU per use on top of the statement (each
    release runs in a task of its own, shielded, after a reset query that undoes session
    state nothing here creates). This one hands a connection over in a list operation.
    A connection whose exchange with the server broke off, or that is closed, or that
    was left in a transaction, is terminated on release rather than trusted again; its
    slot goes to the next waiter.
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

    @property
    def size(self) -> int:
        """Connections open now (idle or in use); at most the pool's size."""
        return self._open

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
        try:
            return await self._connect()
        except BaseException:
            self._free_slot()
            raise

    def _idle_connection(self) -> asyncpg.Connection | None:
        if self._closed:
            raise ConnectionError("the connection pool is closed")
        while self._idle:
            connection = self._idle.pop()
            if not connection.is_closed():
                return connection
            self._free_slot()
        return None

    def release(self, connection: asyncpg.Connection, *, healthy: bool) -> None:
        """Give a connection back, to the next waiter or the idle stack."""
        if self._closed or not healthy or connection.is_closed() or connection.is_in_transaction():
            connection.terminate()
            self._free_slot()
            return
        if not self._wake(connection):
            self._idle.append(connection)

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
        for connection in idle:
            self._open -= 1
            with contextlib.suppress(Exception):
                await connection.close(timeout=1)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionError("the connection pool is closed"))


class PostgresDriver:
    """asyncpg connections of its own (``ConnectionPool``), opened on first use."""

    dialect = "postgresql"

    def __init__(
        self, url: str, *, pool_size: int, transaction_timeout: float | None = None
    ) -> None:
        parsed = make_url(url)
        dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        settings = session_settings(transaction_timeout)
        # A statement the server has not answered in this long has lost its connection.
        timeout = None if transaction_timeout is None else transaction_timeout + 1.0

        async def connect() -> asyncpg.Connection:
            return await asyncpg.connect(
                dsn, timeout=timeout, command_timeout=timeout, server_settings=dict(settings)
            )

        self._pool = ConnectionPool(connect, size=pool_size, timeout=timeout)
        self._statements = _Statements(pg_dialect.dialect())  # type: ignore[no-untyped-call]

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        connection = await self._pool.acquire()
        healthy = True
        try:
            yield connection
        except BaseException as exc:
            # An error the server reported, or one of ours between statements, leaves
            # the connection usable (asyncpg has rolled its transaction back); a lost,
            # timed out or cancelled exchange of messages does not.
            healthy = isinstance(exc, Exception) and not isinstance(exc, _BROKEN)
            if isinstance(exc, asyncpg.PostgresError) and connection.is_closed():
                # The server reported an error and hung up (a crash, a restart).
                raise ConnectionError("the database closed the connection") from exc
            raise
        finally:
            self._pool.release(connection, healthy=healthy)

    async def fetchrow(self, statement: Executable, params: Mapping[str, Any]) -> Row | None:
        async with self._connection() as connection:
            return await _PostgresTransaction(connection, self._statements).fetchrow(
                statement, params
            )

    async def commit_one(self, statement: Executable, params: Mapping[str, Any]) -> Row | None:
        # One statement is its own transaction in autocommit: no BEGIN, no COMMIT.
        return await self.fetchrow(statement, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._connection() as connection, connection.transaction():
            yield _PostgresTransaction(connection, self._statements)

    def start(self) -> None:
        """PostgreSQL needs no upkeep from here."""

    async def close(self) -> None:
        await self._pool.close()


__all__: Sequence[str] = (
    "UNAVAILABLE",
    "Compiled",
    "ConnectionPool",
    "Driver",
    "Executes",
    "PostgresDriver",
    "Row",
    "SQLiteDriver",
    "Transaction",
    "make_driver",
)
