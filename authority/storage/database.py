"""The SQL engine and migrations (SQLAlchemy 2 async; SQLite embedded, PostgreSQL in production)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import await_only

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


AUTOCOMMIT = "AUTOCOMMIT"


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    # No pool_pre_ping: it would add a round trip to every checkout on the hot path. A
    # connection lost while pooled fails its request with 503 (endpoints.guard), and
    # SQLAlchemy then invalidates the whole pool, so the next request reconnects.
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        skip_autocommit_rollback=True,
    )


def reader(engine: AsyncEngine) -> AsyncEngine:
    """The same pool in autocommit mode, for reads that need no transaction.

    Each statement sees a consistent snapshot of its own; no BEGIN and no ROLLBACK are
    sent (two round trips saved on PostgreSQL), and on SQLite no write lock is taken.
    """
    return engine.execution_options(isolation_level=AUTOCOMMIT)


def _sqlite_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url, connect_args={"timeout": 30}, skip_autocommit_rollback=True)
    # One writer at a time, queued in process. SQLite allows one writer anyway, and
    # its own busy handler waits by sleeping and polling, which under concurrent
    # requests costs milliseconds per transaction; an asyncio lock hands over at once.
    # (Other processes on the same file, such as the CLI, still meet the busy timeout.)
    write_lock = asyncio.Lock()

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets readers proceed during a write; foreign keys are off by default.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _sqlite_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("isolation_level") == AUTOCOMMIT:
            return
        # BEGIN IMMEDIATE takes the write lock up front, so a transaction that reads and
        # then writes can never fail to upgrade its lock half-way.
        await_only(write_lock.acquire())
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            write_lock.release()
            raise
        conn.info["holds_write_lock"] = True

    def _release(conn: Connection) -> None:
        if conn.info.pop("holds_write_lock", False):
            write_lock.release()

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
