"""A PostgreSQL database of each test's own: emptied between tests, or one transaction.

``Emptier``: every table emptied and every sequence restarted, on one connection kept for
the run, before a test that commits. What ``TRUNCATE ... RESTART IDENTITY CASCADE`` left,
at a fraction of its cost: TRUNCATE gives every table and index a new file and syncs it at
commit, about 90 ms for the 16 tables even when they hold a few rows; a DELETE of those
few rows is one round trip (figures in tests/conftest.py).

``Pinned``: one connection in a transaction that the test's end rolls back, shared by the
SQLAlchemy engine and the hot-path driver (``authority.storage.driver``), so that every
statement the test makes runs on it. A transaction the code opens on either handle is a
savepoint in that one (asyncpg nests ``Connection.transaction()`` as SAVEPOINT, and both
handles open theirs that way): its commit releases the savepoint and its rollback rolls
back to it. The code's autocommit reads and writes run in the test's transaction too.

A pinned test must use one connection at a time, as its code would when run alone: a
second use while one is open (two concurrent writers, a read on the autocommit handle
inside a write transaction) raises ``ConcurrentUse`` instead of queueing behind the first,
since on one connection they would no longer be concurrent nor isolated from each other,
and the test would pass without testing what it says. Such a test commits for real
(``@pytest.mark.commits``; ``runs_concurrently`` recognises most without the mark).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from authority.storage.database import session_settings
from authority.storage.driver import Driver
from authority.storage.postgres_driver import PostgresDriver
from authority.storage.schema import metadata


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Emptier:
    """Empties the database ``url`` between tests, on a connection of its own.

    The connection lives on an event loop of its own (each test has its own loop, and an
    asyncpg connection belongs to the loop that opened it), run from synchronous fixtures.
    ``dirty`` is False only while the tables are known to be empty: after ``empty``, and
    after a pinned test, which rolls back whatever it wrote.
    """

    def __init__(self, url: str) -> None:
        self._dsn = asyncpg_dsn(url)
        self._loop = asyncio.new_event_loop()
        self._connection: asyncpg.Connection | None = None
        self._script: str | None = None
        self.dirty = True  # whatever the migrations left

    def empty(self) -> None:
        self._loop.run_until_complete(self._empty())
        self.dirty = False

    async def _empty(self) -> None:
        for attempt in range(2):
            try:
                connection = await self._connect()
                await connection.execute(await self._empty_script(connection))
                return
            except Exception:
                # A test may end every session of the database (test_faults.py): connect
                # again, once.
                await self._drop_connection()
                if attempt:
                    raise

    async def _connect(self) -> asyncpg.Connection:
        if self._connection is None or self._connection.is_closed():
            self._connection = await asyncpg.connect(self._dsn)
        return self._connection

    async def _empty_script(self, connection: asyncpg.Connection) -> str:
        if self._script is None:
            tables = [table.name for table in metadata.sorted_tables]
            sequences = await connection.fetch(
                "SELECT s.relname FROM pg_class s "
                "JOIN pg_depend d ON d.objid = s.oid AND d.deptype IN ('a', 'i') "
                "JOIN pg_class t ON t.oid = d.refobjid "
                "WHERE s.relkind = 'S' AND t.relname = ANY($1::text[]) ORDER BY s.relname",
                tables,
            )
            self._script = "; ".join(
                [
                    "BEGIN",
                    # The ledger's append-only triggers refuse DELETE, and the foreign keys
                    # would want an order: replica mode fires neither, for this transaction
                    # only (the test role is a superuser).
                    "SET LOCAL session_replication_role = replica",
                    *(f"DELETE FROM {_quoted(name)}" for name in tables),  # noqa: S608 (ours)
                    *(f"ALTER SEQUENCE {_quoted(row['relname'])} RESTART" for row in sequences),
                    "COMMIT",
                ]
            )
        return self._script

    async def _drop_connection(self) -> None:
        if self._connection is not None and not self._connection.is_closed():
            self._connection.terminate()
        self._connection = None

    def close(self) -> None:
        self._loop.run_until_complete(self._drop_connection())
        self._loop.close()


class ConcurrentUse(RuntimeError):
    """A second connection was asked for while the test's one connection was in use."""


class _PinnedConnection(asyncpg.Connection):  # type: ignore[misc]
    """An asyncpg connection that the handles sharing it cannot close."""

    held = True

    async def close(self, *, timeout: float | None = None) -> None:  # noqa: ASYNC109 (asyncpg's)
        if not self.held:
            await super().close(timeout=timeout)

    def terminate(self) -> None:
        if not self.held:
            super().terminate()


class _OnePool:
    """Stands in for ``storage.pool.ConnectionPool`` in the driver: the pinned connection."""

    def __init__(self, pinned: Pinned) -> None:
        self._pinned = pinned

    @property
    def size(self) -> int:
        return 1

    async def acquire(self) -> asyncpg.Connection:
        self._pinned.take("the driver")
        return self._pinned.connection

    def release(self, connection: asyncpg.Connection, *, healthy: bool) -> None:
        self._pinned.give_back("the driver")

    def invalidate(self) -> None:
        """The pinned connection stays: the test ends it."""

    async def close(self) -> None:
        """The connection is the test's: it is closed when the test ends."""


class Pinned:
    """One connection in a transaction, for every engine and driver built on ``url``."""

    def __init__(self, url: str, connection: _PinnedConnection) -> None:
        self.database = make_url(url).database
        self.connection = connection
        self._user: str | None = None
        self._engines = 0

    def take(self, user: str) -> None:
        if self._user is not None:
            raise ConcurrentUse(
                f"{user} asked for a connection while {self._user} held the test's one: "
                "a test that runs transactions concurrently commits on real connections "
                "(mark it @pytest.mark.commits)"
            )
        self._user = user

    def give_back(self, user: str) -> None:
        if self._user == user:
            self._user = None

    def serves(self, url: str) -> bool:
        return make_url(url).database == self.database

    def engine(self, url: str) -> AsyncEngine:
        self._engines += 1
        user = f"engine {self._engines}"
        pinned = self

        class OneConnection(AsyncAdaptedQueuePool):
            """A pool of the one connection, refusing (not queueing) a second checkout."""

            def _do_get(self) -> Any:
                if self.checkedout():
                    pinned.take(user)  # raises: this engine holds it
                return super()._do_get()

        async def connect() -> asyncpg.Connection:
            return self.connection

        engine = create_async_engine(
            url,
            async_creator=connect,
            poolclass=OneConnection,
            pool_size=1,
            max_overflow=0,
            pool_timeout=0,
        )
        event.listen(engine.sync_engine, "checkout", lambda *_: self.take(user))
        event.listen(engine.sync_engine, "checkin", lambda *_: self.give_back(user))
        return engine

    def driver(self, url: str, transaction_timeout: float | None) -> Driver:
        driver = PostgresDriver(url, pool_size=1, transaction_timeout=transaction_timeout)
        driver._pool = _OnePool(self)  # type: ignore[assignment]
        return driver


@asynccontextmanager
async def pinned(url: str, *, transaction_timeout: float | None) -> AsyncIterator[Pinned]:
    """A connection to ``url`` in a transaction, rolled back (and closed) on exit.

    With the engine's statement timeout, and no idle-in-transaction timeout: the test's
    transaction is idle between the code's statements for as long as the test pleases.
    """
    settings = session_settings(transaction_timeout)
    settings.pop("idle_in_transaction_session_timeout", None)
    connection = await asyncpg.connect(
        asyncpg_dsn(url), connection_class=_PinnedConnection, server_settings=settings
    )
    outer = connection.transaction(isolation="read_committed")
    await outer.start()
    try:
        yield Pinned(url, connection)
    finally:
        connection.held = False
        try:
            if not connection.is_closed():
                await outer.rollback()
        finally:
            await connection.close()


def patch_factories(
    pin: Pinned,
    make_engine: Callable[..., AsyncEngine],
    make_driver: Callable[..., Driver],
) -> tuple[Callable[..., AsyncEngine], Callable[..., Driver]]:
    """``make_engine`` and ``make_driver`` as ``authority.app`` calls them, on ``pin``."""

    def engine(url: str, **options: Any) -> AsyncEngine:
        return pin.engine(url) if pin.serves(url) else make_engine(url, **options)

    def driver(url: str, **options: Any) -> Driver:
        if not pin.serves(url):
            return make_driver(url, **options)
        return pin.driver(url, options.get("transaction_timeout"))

    return engine, driver


def runs_concurrently(test: Callable[..., Any]) -> bool:
    """A test that says it is about concurrency, or starts tasks itself.

    Only a hint, read from the name and the source: one it misses still fails in a
    savepoint (``ConcurrentUse``), and one it wrongly takes commits, which is sound.
    """
    if "concurren" in test.__name__:
        return True
    try:
        source = inspect.getsource(test)
    except (OSError, TypeError):
        return False
    return any(call in source for call in ("gather(", "create_task(", "TaskGroup("))


__all__: Sequence[str] = (
    "ConcurrentUse",
    "Emptier",
    "Pinned",
    "patch_factories",
    "pinned",
    "runs_concurrently",
)
