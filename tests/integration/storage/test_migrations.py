"""The Alembic history on both databases: up to head, down to nothing, up again, and the
migrated schema equal to the one the code declares (storage/schema.py); and the history
itself where ``authority migrate`` and a hand-run ``alembic`` both look for it."""

from __future__ import annotations

import configparser
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from authority.storage.database import MIGRATIONS, alembic_config, downgrade, migrate
from authority.storage.schema import metadata
from tests.conftest import PG_ADMIN_URL, _pg_url

ROOT = Path(__file__).resolve().parents[3]
#: Every revision ever released, oldest first. A database records the id it is at, so
#: these never change: a renamed id would leave an existing database unable to upgrade.
RELEASED = [
    "0001",
    "0002_used_jtis",
    "0003_containment_cascade",
    "0004_revocation_event_tool",
    "0005_call_recordings",
    "0006_console",
    "0007_trust_domains",
    "0008_policy_versions",
    "0009_behaviour_baseline",
    "0010_tools_by_server",
]


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


def test_the_history_lives_with_the_schema_it_migrates() -> None:
    assert MIGRATIONS == ROOT / "authority" / "storage" / "migrations"
    assert (MIGRATIONS / "env.py").is_file()
    # A hand-run ``alembic`` (alembic.ini at the checkout's root) reads the same history.
    ini = configparser.ConfigParser()
    ini.read(ROOT / "alembic.ini")
    assert (ROOT / ini["alembic"]["script_location"]).resolve() == MIGRATIONS


def test_released_revisions_keep_their_ids_and_order() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite://"))
    chain = [revision.revision for revision in script.walk_revisions("base", "heads")]
    assert list(reversed(chain))[: len(RELEASED)] == RELEASED
    assert len(script.get_heads()) == 1
