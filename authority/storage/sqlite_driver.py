"""The driver on the embedded SQLite database: one sqlite3 connection, called inline.

Apart from the PostgreSQL driver because nothing of it is shared but the compiled
statements: SQLite is a file in this process, with the engine's in-process write lock and
a WAL whose checkpoints this driver runs off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.sql import Executable

from .compiled import Row, Statements
from .database import SQLITE_BUSY_TIMEOUT, sqlite_lock_key, sqlite_pragmas
from .database import write_lock as sqlite_write_lock

log = logging.getLogger("authority.storage")

#: How often, in seconds, the server checkpoints the embedded database's WAL when
#: something has been written to it since the last checkpoint.
CHECKPOINT_INTERVAL = 0.25


def _row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> Row:
    return Row(zip([d[0] for d in cursor.description], values, strict=True))


class _SQLiteTransaction:
    def __init__(self, connection: sqlite3.Connection, statements: Statements) -> None:
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
        self._statements = Statements(sqlite_dialect())
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

    async def fetch(self, statement: Executable, params: Mapping[str, Any]) -> list[Row]:
        connection = self._connect()
        if connection.in_transaction:  # as in fetchrow
            raise RuntimeError("a read on the SQLite driver inside an open transaction")
        compiled = self._statements(statement)
        rows: list[Row] = connection.execute(compiled.sql, compiled.arguments(params)).fetchall()
        return rows

    async def commit_one(self, statement: Executable, params: Mapping[str, Any]) -> Row | None:
        # Never in autocommit: SQLite's own lock would make this wait, blocking the
        # loop, for a transaction of the engine's that holds the in-process lock.
        async with self.transaction() as tx:
            row: Row | None = await tx.fetchrow(statement, params)
        return row

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SQLiteTransaction]:
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
