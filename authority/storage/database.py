"""The SQL engine and migrations (SQLAlchemy 2 async; SQLite embedded, PostgreSQL in production)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

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
            # BEGIN IMMEDIATE takes the write lock up front, so two writers queue instead of
            # one failing with "database is locked" when it upgrades a read lock.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # No pool_pre_ping: it would add a round trip to every checkout on the hot path. A
    # connection lost while pooled fails its request with 503 (endpoints.guard), and
    # SQLAlchemy then invalidates the whole pool, so the next request reconnects.
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
    )


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
