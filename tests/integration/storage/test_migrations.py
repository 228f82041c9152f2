"""The Alembic history on both databases: up to head, down to nothing, up again, and the
migrated schema equal to the one the code declares (storage/schema.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from authority.storage.database import downgrade, migrate
from authority.storage.schema import metadata
from tests.conftest import PG_ADMIN_URL, _pg_url


@pytest.fixture
async def database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of this test's own."""
    if backend == "embedded":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
        return
    name = f"authority_migrations_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield _pg_url(name)
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def _inspect(url: str) -> tuple[set[str], list[Any]]:
    def run(conn: Connection) -> tuple[set[str], list[Any]]:
        tables = set(inspect(conn).get_table_names())
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return tables, compare_metadata(context, metadata)

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(run)
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    await migrate(database_url)
    tables, differences = await _inspect(database_url)
    assert set(metadata.tables) <= tables
    assert differences == [], differences  # the migration builds exactly schema.py

    await downgrade(database_url, "base")
    tables, _ = await _inspect(database_url)
    assert tables <= {"alembic_version"}

    await migrate(database_url)
    tables, differences = await _inspect(database_url)
    assert set(metadata.tables) <= tables
    assert differences == []
