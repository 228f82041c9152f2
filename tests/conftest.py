"""Fixtures shared by every test, and the tiers they serve.

Tiers (``pytest`` and ``make pytest`` run all four):

* ``unit/``: rules and parsers on their own, mirroring the package: no app, no database,
  no HTTP, none of the fixtures below; hypothesis where the inputs are open-ended.
* ``contract/``: each storage port on memory, SQLite and PostgreSQL (its conftest).
* ``integration/``: the HTTP suites, mirroring the package, on both backends; under
  ``integration/postgres/`` the suites about PostgreSQL and Redis themselves (several
  instances, faults, slow clients, two processes), on that backend only.
* ``fuzz/``: every fuzz target on its seed corpus (the long runs are ``make fuzz``).

Backends. ``embedded``: a SQLite file and in-process hot state (the default deployment).
``postgres``: a PostgreSQL database and a Redis key prefix of this run's own, removed at
the end. ``AUTHORITY_TEST_POSTGRES_URL`` and ``AUTHORITY_TEST_REDIS_URL`` point elsewhere.

How a test gets a database of its own, by tier (tests/isolation.py has the mechanisms):

* SQLite, every tier: a copy of a file migrated once (``sqlite_template``), 0.3 ms.
* PostgreSQL, ``contract/``: a savepoint (``savepoint``). The engine and the driver that
  ``build_services`` makes share one connection in a transaction rolled back at the end;
  a port's own transactions are savepoints in it. Sound there because a port method runs
  its statements one after the other and nothing runs beside it; a test of concurrent
  writers commits instead (``@pytest.mark.commits``), and an unmarked one fails rather
  than pass with its writers queued on one connection.
* PostgreSQL, everything else: the tables emptied before the test (``postgres_emptier``:
  DELETE and sequences restarted, on a connection kept for the run; it replaces
  ``TRUNCATE ... RESTART IDENTITY``, which leaves the same state), and real commits. Not
  a savepoint: a started app uses the database from its own tasks (ledger sequencer,
  keyring, webhook and feed workers) while requests run, and several at once in the
  race tests; on one connection they would be serialised (a race test would pass without
  a race) or refused; operator commands, second instances and processes open connections
  of their own that would not see uncommitted rows; the fault suites end sessions and
  time transactions out. Tried on the management, token-exchange and revocation suites:
  254 of 277 PostgreSQL tests fail on one connection, nearly all at start-up, the app's
  tasks asking for it while a request holds it.
* Redis: a key prefix per test, its keys deleted at the end.

Costs on this machine (2 cores shared with other work, so figures vary by a factor of
two or more; each pair measured at the same moment): TRUNCATE of the 16 tables 89 ms
median in the full run (132 mean), 290 ms under heavier load, where emptying them takes
8 ms and opening and rolling back a savepoint connection 15 ms. A PostgreSQL contract
test takes 71-86 ms in a savepoint (one connection instead of the app's two), 112-124 ms
committing after an emptying, 266-594 ms committing after a TRUNCATE.
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

import authority.app
from authority.app import build_services, create_app, start, stop
from authority.clock import FrozenClock
from authority.context import Services
from authority.settings import Settings
from authority.storage.database import make_engine, migrate
from authority.storage.driver import make_driver
from authority.storage.hot import RedisHotState
from tests.isolation import Emptier, Pinned, patch_factories, pinned
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


@pytest.fixture(scope="session")
def postgres_emptier(postgres_url: str) -> Iterator[Emptier]:
    """Empties the test database before a test that commits (tests/isolation.py)."""
    emptier = Emptier(postgres_url)
    try:
        yield emptier
    finally:
        emptier.close()


#: Set on a test that runs in a savepoint (``savepoint``) before its settings are made.
SAVEPOINT = pytest.StashKey[bool]()


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
        emptier: Emptier = request.getfixturevalue("postgres_emptier")
        if emptier.dirty:
            emptier.empty()
        # A test in a savepoint leaves the tables as it found them; any other may write.
        emptier.dirty = not request.node.stash.get(SAVEPOINT, False)
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
async def savepoint(
    request: pytest.FixtureRequest, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Pinned]:
    """Every engine and driver the test builds on its PostgreSQL database: one connection,
    in a transaction rolled back when the test ends (tests/isolation.py).

    Ask for it after setting ``SAVEPOINT`` on the test, before its settings are made, and
    before anything connects.
    """
    assert request.node.stash.get(SAVEPOINT, False), "set SAVEPOINT before the settings"
    timeout = settings.ledger_straggler_window / 5  # the engine's, as build_services sets it
    async with pinned(settings.sqlalchemy_url, transaction_timeout=timeout) as pin:
        engine, driver = patch_factories(pin, make_engine, make_driver)
        monkeypatch.setattr(authority.app, "make_engine", engine)
        monkeypatch.setattr(authority.app, "make_driver", driver)
        yield pin


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
