"""The SQL engine and migrations (SQLAlchemy 2 async; SQLite embedded, PostgreSQL in production)."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import weakref
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, NamedTuple

import aiosqlite
from sqlalchemy import event, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import await_only

from .postgres_connect import connector, several_hosts

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


AUTOCOMMIT = "AUTOCOMMIT"
#: Execution option marking a SQLite connection that only reads (see ``reader``).
READ_ONLY = "authority_read_only"
#: Seconds a statement waits for another process's write lock on the SQLite file.
SQLITE_BUSY_TIMEOUT = 5.0


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    transaction_timeout: float | None = None,
    wait_timeout: float | None = None,
    background_checkpoints: bool = False,
) -> AsyncEngine:
    """The engine for ``url``.

    ``transaction_timeout`` (seconds) bounds every statement and every idle spell inside
    a transaction on PostgreSQL. The ledger's sequencer relies on no transaction that
    appends an entry staying open longer than its straggler window (ledger/sequencer.py);
    the server enforces that rather than trusting it.

    ``wait_timeout`` (seconds) bounds, on this side, how long a request waits for a
    connection from the pool, for a new connection, and for any one statement's answer:
    a server that has stopped answering (a network partition, a stalled host) cannot
    enforce its own timeouts, and the request must still end (503) within a bound.

    ``background_checkpoints``: SQLite connections leave WAL checkpoints to the server's
    checkpointer thread (``storage.driver.SQLiteDriver``) instead of running them inside
    whichever commit crosses the threshold, on the event loop.
    """
    if url.startswith("sqlite"):
        return _sqlite_engine(url, background_checkpoints=background_checkpoints)
    connect_args: dict[str, Any] = {}
    if transaction_timeout is not None:
        connect_args["server_settings"] = session_settings(transaction_timeout)
    pool_timeout = 30.0  # SQLAlchemy's default
    if wait_timeout is not None:
        # A second more than the server's own bound where that is shorter, so that its
        # error (which leaves the connection usable) arrives first.
        connect_args["command_timeout"] = wait_timeout + 1.0
        connect_args["timeout"] = wait_timeout
        pool_timeout = wait_timeout
    # No pool_pre_ping: it would add a round trip to every checkout. ``_drop_dead``
    # skips, for free, a connection the server has closed while it was pooled; one lost
    # without a word fails its request with 503 (endpoints.guard), and SQLAlchemy then
    # invalidates the whole pool, so the next request reconnects.
    options: dict[str, Any] = {"connect_args": connect_args}
    if several_hosts(url):  # each host with a timeout of its own (storage.postgres_connect)
        extra = {k: v for k, v in connect_args.items() if k != "timeout"}
        timeout = connect_args.get("timeout", 60.0)  # asyncpg's default
        options = {"async_creator": connector(url, timeout=timeout, **extra)}
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        pool_timeout=pool_timeout,
        skip_autocommit_rollback=True,
        **options,
    )
    event.listen(engine.sync_engine, "checkout", _drop_dead)
    event.listen(engine.sync_engine, "handle_error", _standby_is_a_disconnect)
    return engine


def _drop_dead(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection whose socket the server closed (a restart, a failover) is
    replaced at checkout: asyncpg learns of the close from the event loop, so asking
    costs no round trip, unlike ``pool_pre_ping``."""
    from sqlalchemy.exc import DisconnectionError

    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the database closed this connection while it was pooled")


#: SQLSTATE of a write refused by a read-only server: a primary demoted to a standby.
_READ_ONLY_TRANSACTION = "25006"


def _standby_is_a_disconnect(context: Any) -> None:
    """After a failover the old primary, if it is back, is a standby: its connections are
    dropped with the pool's others, so the next ones find the primary
    (``target_session_attrs=read-write``)."""
    if getattr(context.original_exception, "sqlstate", None) == _READ_ONLY_TRANSACTION:
        context.is_disconnect = True


class PoolUsage(NamedTuple):
    """A pool's connections in use and its size, for the metrics."""

    checked_out: int
    size: int


def pool_usage(engine: AsyncEngine) -> PoolUsage:
    """The engine's pool: in use now, and the size it keeps (it may overflow as many)."""
    pool = engine.pool
    checked_out = getattr(pool, "checkedout", None)
    size = getattr(pool, "size", None)
    if not callable(checked_out) or not callable(size):  # a pool that keeps no count
        return PoolUsage(0, 0)
    return PoolUsage(int(checked_out()), int(size()))


def session_settings(transaction_timeout: float | None) -> dict[str, str]:
    """PostgreSQL session settings bounding statements and idle spells in a transaction."""
    if transaction_timeout is None:
        return {}
    milliseconds = str(max(1, int(transaction_timeout * 1000)))
    return {
        "statement_timeout": milliseconds,
        "idle_in_transaction_session_timeout": milliseconds,
    }


def reader(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, for reads that need no transaction.

    On PostgreSQL: autocommit, so no BEGIN and no ROLLBACK are sent (two round trips).
    On SQLite: no write lock and no BEGIN; not the autocommit isolation level, whose
    switch runs a PRAGMA on every checkout that expires SQLite's prepared statements
    (the exchange's load query then took 150 µs to re-prepare instead of 30 µs to run).
    Each statement sees a consistent snapshot of its own.
    """
    if engine.dialect.name == "sqlite":
        return engine.execution_options(**{READ_ONLY: True})
    return engine.execution_options(isolation_level=AUTOCOMMIT)


# One writer lock per database file and event loop, shared by every engine of the process
# on that file: with calls made inline, two engines contending inside SQLite would block
# the one thread both of them run on.
_WRITE_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def write_lock(key: str) -> asyncio.Lock:
    """This event loop's writer lock for the SQLite file ``key`` (``sqlite_lock_key``)."""
    locks = _WRITE_LOCKS.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(key, asyncio.Lock())


class _RunAtOnce:
    """Stands in for aiosqlite's queue to its worker thread: runs each call immediately."""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except Exception as exc:
            if future is not None:
                future.set_exception(exc)
        else:
            if future is not None:
                future.set_result(result)


class InlineSQLiteConnection(aiosqlite.Connection):
    """aiosqlite's connection, with every sqlite3 call made on the event loop's thread.

    aiosqlite hands each call (cursor, execute, fetch, close...) to a thread of its own
    and back: about fifteen hand-offs per exchange, each waiting for the GIL, which under
    load made a write transaction last milliseconds while holding SQLite's one write lock.
    SQLite calls on a local file take microseconds, far less than a hand-off, so they run
    inline. Writers in this process never wait on SQLite's lock (they queue on an asyncio
    lock first); only another process writing the same file (the CLI) can make a call
    wait, for at most the busy timeout.
    """

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._tx = _RunAtOnce()  # type: ignore[assignment]

    def __await__(self) -> Generator[Any, None, InlineSQLiteConnection]:
        return self._inline_connect().__await__()

    async def _inline_connect(self) -> InlineSQLiteConnection:
        await self._connect()
        return self


def sqlite_lock_key(path: str) -> str:
    """The name every engine and driver of this process uses for one database file."""
    return str(Path(path).resolve())


def sqlite_pragmas(connection: Any, *, background_checkpoints: bool = False) -> None:
    """Run on every new connection to the embedded database."""
    # WAL lets readers proceed during a write; foreign keys are off by default.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    if background_checkpoints:
        # A checkpoint copies the WAL into the file and syncs it: milliseconds, which a
        # commit made inline on the event loop would stall every request for.
        cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _sqlite_engine(url: str, *, background_checkpoints: bool) -> AsyncEngine:
    path = make_url(url).database or ":memory:"

    async def connect() -> InlineSQLiteConnection:
        return await InlineSQLiteConnection(
            functools.partial(
                sqlite3.connect, path, timeout=SQLITE_BUSY_TIMEOUT, check_same_thread=False
            )
        )

    engine = create_async_engine(url, async_creator=connect, skip_autocommit_rollback=True)
    # One writer at a time, queued in process. SQLite allows one writer anyway, and
    # its own busy handler waits by sleeping and polling, which under concurrent
    # requests costs milliseconds per transaction; an asyncio lock hands over at once.
    # (Other processes on the same file, such as the CLI, still meet the busy timeout.)
    key = sqlite_lock_key(path) if path != ":memory:" else f":memory:{id(engine)}"

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        sqlite_pragmas(dbapi_connection, background_checkpoints=background_checkpoints)

    @event.listens_for(engine.sync_engine, "begin")
    def _sqlite_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get("isolation_level") == AUTOCOMMIT or options.get(READ_ONLY):
            return  # Python's sqlite3 runs a SELECT without opening a transaction
        # BEGIN IMMEDIATE takes the write lock up front, so a transaction that reads and
        # then writes can never fail to upgrade its lock half-way.
        lock = write_lock(key)
        await_only(lock.acquire())
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            lock.release()
            raise
        conn.info["write_lock"] = lock

    def _release(conn: Connection) -> None:
        held = conn.info.pop("write_lock", None)
        if held is not None:
            held.release()

    event.listen(engine.sync_engine, "commit", _release)
    event.listen(engine.sync_engine, "rollback", _release)
    return engine


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _run_alembic(url: str, action: str, revision: str) -> None:
    from alembic import command

    cfg = alembic_config(url)
    if action == "upgrade":
        command.upgrade(cfg, revision)
    else:
        command.downgrade(cfg, revision)


async def migrate(url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (Alembic's env runs its own event loop in a thread)."""
    await asyncio.to_thread(_run_alembic, url, "upgrade", revision)


async def downgrade(url: str, revision: str) -> None:
    await asyncio.to_thread(_run_alembic, url, "downgrade", revision)


async def schema_is_current(url: str) -> bool:
    """Whether the database is at the newest revision, changing nothing.

    For a server that does not migrate (``auto_migrate`` false) and must not start on an
    older schema than its code: it waits for the one migration run instead. A SQLite
    file that does not exist is not opened (which would create it): it is not current.
    """
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    if _sqlite_file_missing(url):
        return False
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            current = await conn.run_sync(
                lambda sync: set(MigrationContext.configure(sync).get_current_heads())
            )
    finally:
        await engine.dispose()
    return current == heads


def _sqlite_file_missing(url: str) -> bool:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return False
    return not Path(parsed.database).is_file()
