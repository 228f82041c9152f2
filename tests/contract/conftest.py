"""Each storage port on every implementation: memory, SQLite (embedded) and PostgreSQL.

A test asks for ``store``: the ports as ``authority.app.build_services`` wires them for
the SQL backends (on the shared fixtures' migrated database of this run), or on one
``storage.memory.Tables`` for memory. ``support.Store.insert`` seeds rows the same way on each,
and the reads (``grant``, ``ledger``, ``events``) look at what the ports wrote.

On PostgreSQL each test runs in a savepoint: the engine and the driver ``build_services``
makes share one connection, in a transaction rolled back at the end (tests/isolation.py),
so a port's transaction is a savepoint of it. A test of concurrent writers needs real
connections, each with its own transaction: mark it ``@pytest.mark.commits``. A test
named for concurrency, or that starts tasks itself (``asyncio.gather``, ``create_task``),
commits without the mark; one that runs writers concurrently otherwise fails unmarked,
the second writer refused the connection the first one holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from authority.app import build_services
from authority.settings import Settings
from authority.storage.hot import MemoryHotState
from authority.storage.memory import Tables
from authority.storage.memory.introspection import MemoryIntrospectionStore
from authority.storage.memory.revocation import MemoryRevocationStore
from tests.conftest import SAVEPOINT
from tests.isolation import runs_concurrently

from .support import Store

#: "embedded" and "postgres" are the shared fixtures' SQL backends (tests/conftest.py).
IMPLEMENTATIONS = ["memory", "embedded", "postgres"]


@pytest.fixture(params=IMPLEMENTATIONS)
def backend(request: pytest.FixtureRequest) -> str:
    """Overrides the shared fixture: the same SQL backends, and memory."""
    return str(request.param)


@pytest.fixture
def sql_settings(backend: str, request: pytest.FixtureRequest) -> Settings | None:
    """The shared fixtures' settings for a SQL backend (they set its database up)."""
    if backend == "memory":
        return None
    in_savepoint = (
        backend == "postgres"
        and request.node.get_closest_marker("commits") is None
        and not runs_concurrently(request.function)
    )
    if in_savepoint:
        request.node.stash[SAVEPOINT] = True
    settings: Settings = request.getfixturevalue("settings")
    if in_savepoint:
        request.getfixturevalue("savepoint")
    return settings


@pytest.fixture
async def store(sql_settings: Settings | None) -> AsyncIterator[Store]:
    if sql_settings is None:
        tables = Tables()
        yield Store(MemoryIntrospectionStore(tables), MemoryRevocationStore(tables), tables, None)
        return
    services = build_services(sql_settings, hot=MemoryHotState())
    try:
        yield Store(services.introspection_store, services.revocation_store, None, services)
    finally:
        await services.sql.close()
        await services.hot.close()
        await services.engine.dispose()
