"""The hot path's few statements, run on the database driver itself.

Every exchange and every introspection runs a handful of statements. Through
SQLAlchemy's async engine each one costs about 0.2 ms of Python before the database
sees it (connection checkout, the greenlet hand-off, the compiled-cache lookup, result
processing); on the driver the same statement costs 20-30 µs on SQLite and one round
trip on PostgreSQL. So the hot statements are written with SQLAlchemy Core like every
other (one schema, SQLAlchemy's compiler for each dialect), compiled once per dialect
into SQL with positional parameters, and executed here. Everything else uses the engine.

* SQLite (embedded, ``storage.sqlite_driver``): one sqlite3 connection per process,
  called inline on the event loop like the engine's (``storage.database``). A
  transaction takes the same in-process write lock as the engine's transactions and
  then ``BEGIN IMMEDIATE``.
* PostgreSQL (``storage.postgres_driver``): asyncpg connections with the engine's
  session settings (statement and idle transaction timeouts), in a pool of their own
  (``storage.pool.ConnectionPool``); asyncpg prepares each statement once per connection.

This module holds what the rest of the authority sees: the protocols, the errors that
mean "unavailable" and ``make_driver``. The compilation is ``storage.compiled``.
Rows come back as ``storage.compiled.Row``: a dict whose values are also attributes,
like SQLAlchemy's. A database that cannot be reached raises one of ``UNAVAILABLE``,
which the endpoints turn into 503 (``endpoints.guard``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import asyncpg
from sqlalchemy import make_url
from sqlalchemy.sql import Executable

from .compiled import Row
from .database import PoolUsage
from .postgres_driver import PostgresDriver
from .sqlite_driver import SQLiteDriver

#: What a database that is down, unreachable, too slow or overloaded raises here.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # includes ConnectionError
    TimeoutError,  # asyncio's too, since 3.11
    sqlite3.OperationalError,  # locked past the busy timeout, disk I/O, file gone
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # the connection closed under us
    # The protocol met a message it did not expect, such as the notice of a session
    # the server has just ended: the connection is dropped (postgres_driver.BROKEN),
    # the caller told to retry.
    asyncpg.InternalClientError,
    asyncpg.OperatorInterventionError,  # statement_timeout, shutdown, crash, starting up
    asyncpg.InsufficientResourcesError,  # disk full, out of memory, too many connections
    asyncpg.IdleInTransactionSessionTimeoutError,
    asyncpg.ReadOnlySQLTransactionError,  # a standby, during a failover
    asyncpg.TransactionRollbackError,  # deadlock or serialisation failure: retry
)


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

    async def fetch(self, statement: Executable, params: Mapping[str, Any]) -> list[Row]:
        """Every row of a read outside any transaction (one consistent snapshot)."""

    async def commit_one(self, statement: Executable, params: Mapping[str, Any]) -> Row | None:
        """Run one write in a transaction of its own; its first row, or None."""

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """``async with driver.transaction() as tx``: commit on exit, roll back on error."""

    def pool_usage(self) -> PoolUsage:
        """Connections in use now, and how many the driver keeps (for the metrics)."""

    def start(self) -> None:
        """Start background upkeep, if the database needs any (from the running loop)."""

    async def close(self) -> None:
        """Release every connection."""


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


__all__: Sequence[str] = (
    "UNAVAILABLE",
    "Driver",
    "Executes",
    "Transaction",
    "make_driver",
)
