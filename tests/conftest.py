"""Fixtures shared by every test: the same suite runs on both backends.

``embedded``: a SQLite file and in-process hot state (the default deployment).
``postgres``: a PostgreSQL database and a Redis key prefix of this run's own, removed at
the end. ``AUTHORITY_TEST_POSTGRES_URL`` and ``AUTHORITY_TEST_REDIS_URL`` point elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette

from authority.app import build_services, create_app, start, stop
from authority.clock import FrozenClock
from authority.context import Services
from authority.settings import Settings
from authority.storage.database import migrate
from authority.storage.hot import RedisHotState
from authority.storage.schema import metadata
from tests.support import World

PG_ADMIN_URL = os.environ.get(
    "AUTHORITY_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("AUTHORITY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:10]
TEST_SECRET = "test-secret-key-with-at-least-32-characters!"
BACKENDS = ["embedded", "postgres"]

# Nothing in the environment may change the settings the tests build.
for _name in [k for k in os.environ if k.startswith("AUTHORITY_") and "_TEST_" not in k]:
    del os.environ[_name]
os.environ["AUTHORITY_CONFIG_FILE"] = os.devnull


def _pg_url(database: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of this run's own, migrated once, dropped at the end."""
    name = f"authority_test_{RUN_ID}"

    async def admin(sql: str) -> None:
        engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(sql))
        finally:
            await engine.dispose()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = _pg_url(name)
    asyncio.run(migrate(url))
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies instead of migrating again."""
    path = tmp_path_factory.mktemp("template") / "authority.db"
    asyncio.run(migrate(f"sqlite+aiosqlite:///{path}"))
    return path


async def _truncate_postgres(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            # The ledger tables refuse TRUNCATE by trigger; replica mode skips triggers
            # for this transaction only (the test role is a superuser).
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FrozenClock:
    import time

    return FrozenClock(float(int(time.time())))


@pytest.fixture
def settings_factory(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Build ``Settings`` for this test's backend, with any overrides."""
    redis_prefix = f"authority-test:{RUN_ID}:{uuid.uuid4().hex[:8]}:"
    if backend == "embedded":
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copy(template, tmp_path / "authority.db")
        base: dict[str, Any] = {"data_dir": tmp_path}
    else:
        url: str = request.getfixturevalue("postgres_url")
        asyncio.run(_truncate_postgres(url))
        base = {
            "data_dir": tmp_path,
            "database_url": url,
            "redis_url": REDIS_URL,
            "redis_prefix": redis_prefix,
            "redis_timeout": 2.0,
        }

    def make(**overrides: Any) -> Settings:
        values = {
            "secret_key": TEST_SECRET,
            "auto_migrate": False,
            "issuer": "http://127.0.0.1:8400",
            **base,
            **overrides,
        }
        return Settings(**values)

    yield make
    if backend == "postgres":
        asyncio.run(_drop_redis_prefix(redis_prefix))


async def _drop_redis_prefix(prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def settings(settings_factory: Any) -> Settings:
    result: Settings = settings_factory()
    return result


@pytest.fixture
async def services(settings: Settings, clock: FrozenClock) -> AsyncIterator[Services]:
    svc = build_services(settings, clock=clock)
    await start(svc)
    try:
        yield svc
    finally:
        await stop(svc)


@pytest.fixture
def app(settings: Settings, services: Services) -> Starlette:
    return create_app(settings, services=services)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8400") as c:
        yield c


def is_redis(services: Services) -> bool:
    return isinstance(services.hot, RedisHotState)


@pytest.fixture
async def world(client: httpx.AsyncClient, services: Services, clock: FrozenClock) -> World:
    """An owner, an agent, a resource server, a tool and a delegation, made over HTTP."""
    return await World(client, services, clock).setup()
