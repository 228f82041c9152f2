"""The driver on PostgreSQL: asyncpg connections with the engine's session settings.

Apart from the SQLite driver because its concerns are the network's: a pool of its own
(``storage.pool``), connections that break mid-exchange and must not be reused, and
statements asyncpg prepares once per connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql import asyncpg as pg_dialect
from sqlalchemy.sql import Executable

from .compiled import Row, Statements
from .database import PoolUsage, session_settings
from .pool import ConnectionPool
from .postgres_connect import connector

#: Errors after which a connection's state is unknown: it is closed, not reused.
BROKEN: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
)


#: Errors after which the server behind a connection is gone or no longer the primary
#: (a failover): every connection opened before is dropped, not just this one.
_SERVER_LOST: tuple[type[BaseException], ...] = (
    OSError,
    # Our own timeout, a second past the server's statement_timeout: the server has not
    # answered even with its own error, so it is gone or cut off.
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.ReadOnlySQLTransactionError,
)


class _PostgresTransaction:
    def __init__(self, connection: Any, statements: Statements) -> None:
        self._connection = connection
        self._statements = statements

    async def fetchrow(self, statement: Executable, params: Mapping[str, Any]) -> Row | None:
        compiled = self._statements(statement)
        record = await self._connection.fetchrow(compiled.sql, *compiled.arguments(params))
        return None if record is None else Row(record.items())

    async def execute(self, statement: Executable, params: Mapping[str, Any]) -> None:
        compiled = self._statements(statement)
        await self._connection.execute(compiled.sql, *compiled.arguments(params))


class PostgresDriver:
    """asyncpg connections of its own (``ConnectionPool``), opened on first use."""

    dialect = "postgresql"

    def __init__(
        self, url: str, *, pool_size: int, transaction_timeout: float | None = None
    ) -> None:
        settings = session_settings(transaction_timeout)
        # A statement the server has not answered in this long has lost its connection.
        timeout = None if transaction_timeout is None else transaction_timeout + 1.0
        connect = connector(
            url, timeout=timeout, command_timeout=timeout, server_settings=dict(settings)
        )

        self._pool = ConnectionPool(connect, size=pool_size, timeout=timeout)
        self._statements = Statements(pg_dialect.dialect())  # type: ignore[no-untyped-call]

    def pool_usage(self) -> PoolUsage:
        return PoolUsage(self._pool.in_use, self._pool.capacity)

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
            healthy = isinstance(exc, Exception) and not isinstance(exc, BROKEN)
            if isinstance(exc, _SERVER_LOST) or (
                isinstance(exc, asyncpg.PostgresError) and connection.is_closed()
            ):
                # The rest of the pool reached the same server: a primary lost or demoted
                # would fail a request per idle connection. They are reopened instead,
                # on the hosts' first primary (``target_session_attrs``).
                self._pool.invalidate()
                healthy = False
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

    async def fetch(self, statement: Executable, params: Mapping[str, Any]) -> list[Row]:
        compiled = self._statements(statement)
        async with self._connection() as connection:
            records = await connection.fetch(compiled.sql, *compiled.arguments(params))
        return [Row(record.items()) for record in records]

    async def commit_one(self, statement: Executable, params: Mapping[str, Any]) -> Row | None:
        # One statement is its own transaction in autocommit: no BEGIN, no COMMIT.
        return await self.fetchrow(statement, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PostgresTransaction]:
        async with self._connection() as connection, connection.transaction():
            yield _PostgresTransaction(connection, self._statements)

    def start(self) -> None:
        """PostgreSQL needs no upkeep from here."""

    async def close(self) -> None:
        await self._pool.close()
