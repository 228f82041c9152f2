"""The hot path's statements on the database driver (storage.driver)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import bindparam, func, select, text

from authority.context import Services
from authority.storage import sqlite_driver as driver_module
from authority.storage.compiled import Compiled, Row
from authority.storage.pool import ConnectionPool
from authority.storage.schema import owners
from authority.storage.sqlite_driver import SQLiteDriver


# --- statements ---------------------------------------------------------------------------
def test_a_statement_compiles_once_to_positional_sql_with_its_own_literals() -> None:
    from sqlalchemy.dialects.postgresql import asyncpg as pg

    statement = select(owners.c.id).where(
        owners.c.id == bindparam("id"), owners.c.status == "active"
    )
    compiled = Compiled.of(statement, pg.dialect())  # type: ignore[no-untyped-call]
    assert "$1" in compiled.sql and "$2" in compiled.sql
    assert compiled.arguments({"id": "own_1"}) == ["own_1", "active"]
    with pytest.raises(KeyError):
        compiled.arguments({})  # a missing parameter is an error, never NULL


def test_rows_read_as_mappings_and_attributes() -> None:
    row = Row(a=1)
    assert row["a"] == 1 and row.a == 1
    with pytest.raises(AttributeError):
        _ = row.b


async def test_reads_and_writes_run_on_the_driver(services: Services) -> None:
    count = select(func.count().label("n")).select_from(owners)
    before = await services.sql.fetchrow(count, {})
    assert before is not None

    async def fail_half_way() -> None:
        async with services.sql.transaction() as tx:
            await tx.execute(_INSERT_OWNER, {"id": "own_rolled_back", "name": "x"})
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        await fail_half_way()
    assert await services.sql.fetchrow(count, {}) == before
    async with services.sql.transaction() as tx:
        await tx.execute(_INSERT_OWNER, {"id": "own_committed", "name": "y"})
    after = await services.sql.fetchrow(count, {})
    assert after is not None and after.n == before.n + 1


_INSERT_OWNER = owners.insert().values(
    id=bindparam("id"), name=bindparam("name"), status="active", created_at=0, updated_at=0
)


async def test_postgres_driver_sessions_carry_the_transaction_timeout(
    services: Services, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("SQLite transactions are in process and serialised")
    settings = services.settings
    # The hot path's own bound (database_timeout), inside the ledger's straggler window.
    bound = min(settings.ledger_straggler_window / 5, settings.database_timeout)
    expected = str(int(bound * 1000))
    query = text("SELECT setting FROM pg_settings WHERE name = :name")
    for name in ("idle_in_transaction_session_timeout", "statement_timeout"):
        row = await services.sql.fetchrow(query, {"name": name})
        assert row is not None and row.setting == expected, name  # milliseconds


# --- SQLite: one writer, shared with the engine --------------------------------------------
async def test_a_driver_transaction_waits_for_an_engine_transaction(
    services: Services, backend: str
) -> None:
    if backend != "embedded":
        pytest.skip("the in-process write lock is the embedded database's")
    async with services.engine.begin() as conn:
        await conn.execute(_INSERT_OWNER, {"id": "own_engine", "name": "engine"})

        async def write() -> None:
            async with services.sql.transaction() as tx:
                await tx.execute(_INSERT_OWNER, {"id": "own_driver", "name": "driver"})

        task = asyncio.create_task(write())
        await asyncio.sleep(0.05)
        # Inline on the loop, the driver would otherwise meet SQLite's lock and block it.
        assert not task.done()
    await asyncio.wait_for(task, 5)


async def test_no_read_runs_inside_an_open_sqlite_transaction(
    services: Services, backend: str
) -> None:
    if backend != "embedded":
        pytest.skip("one SQLite connection serves reads and writes")
    count = select(func.count().label("n")).select_from(owners)

    async def read_half_way() -> None:
        async with services.sql.transaction():
            # It would see the transaction's uncommitted writes.
            await services.sql.fetchrow(count, {})

    with pytest.raises(RuntimeError, match="inside an open transaction"):
        await read_half_way()


async def test_the_server_checkpoints_the_wal_off_the_event_loop(
    services: Services, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend != "embedded":
        pytest.skip("WAL checkpoints are the embedded database's")
    sql = services.sql
    assert isinstance(sql, SQLiteDriver)
    mode = await sql.fetchrow(text("PRAGMA wal_autocheckpoint"), {})
    assert mode is not None and list(mode.values()) == [0]  # never inside a commit
    ran = asyncio.Event()
    checkpoint = sql._checkpoint

    def spy() -> None:
        checkpoint()
        ran.set()

    monkeypatch.setattr(driver_module, "CHECKPOINT_INTERVAL", 0.01)
    monkeypatch.setattr(sql, "_checkpoint", spy)
    await sql.close()  # restart the checkpointer with the settings above
    sql.start()
    async with sql.transaction() as tx:
        await tx.execute(_INSERT_OWNER, {"id": "own_wal", "name": "wal"})
    await asyncio.wait_for(ran.wait(), 5)


# --- the PostgreSQL connection pool --------------------------------------------------------
class FakeConnection:
    def __init__(self) -> None:
        self.closed = False
        self.in_transaction = False

    def is_closed(self) -> bool:
        return self.closed

    def is_in_transaction(self) -> bool:
        return self.in_transaction

    def terminate(self) -> None:
        self.closed = True

    async def close(self, **_: Any) -> None:
        self.closed = True


def pool(size: int = 2, timeout: float | None = 1.0) -> tuple[ConnectionPool, list[Any]]:
    made: list[Any] = []

    async def connect() -> Any:
        made.append(FakeConnection())
        return made[-1]

    return ConnectionPool(connect, size=size, timeout=timeout), made


async def test_the_pool_reuses_a_healthy_connection() -> None:
    connections, made = pool()
    for _ in range(3):
        connection = await connections.acquire()
        connections.release(connection, healthy=True)
    assert len(made) == 1


async def test_the_pool_never_opens_more_than_its_size_and_hands_over_on_release() -> None:
    connections, made = pool(size=2)
    first, second = await connections.acquire(), await connections.acquire()
    waiting = asyncio.create_task(connections.acquire())
    await asyncio.sleep(0.01)
    assert not waiting.done() and len(made) == 2
    connections.release(first, healthy=True)
    assert await waiting is first
    connections.release(second, healthy=True)
    assert connections.size == 2


async def test_a_connection_that_saw_an_error_is_never_used_again() -> None:
    connections, made = pool(size=1)
    connection = await connections.acquire()
    waiting = asyncio.create_task(connections.acquire())
    await asyncio.sleep(0.01)
    connections.release(connection, healthy=False)
    replacement = await waiting
    assert connection.closed and replacement is not connection and len(made) == 2


@pytest.mark.parametrize("state", ["closed", "in_transaction"])
async def test_a_closed_or_mid_transaction_connection_is_not_pooled(state: str) -> None:
    connections, made = pool(size=1)
    connection = await connections.acquire()
    setattr(connection, state, True)
    connections.release(connection, healthy=True)
    assert await connections.acquire() is not connection
    assert len(made) == 2 and connections.size == 1


async def test_waiting_for_a_connection_times_out() -> None:
    connections, _ = pool(size=1, timeout=0.05)
    await connections.acquire()
    with pytest.raises(TimeoutError):  # storage.driver.UNAVAILABLE: 503 at the endpoint
        await connections.acquire()


async def test_a_connection_handed_to_a_waiter_that_gave_up_is_not_lost() -> None:
    connections, made = pool(size=1)
    connection = await connections.acquire()
    waiting = asyncio.create_task(connections.acquire())
    await asyncio.sleep(0.01)
    connections.release(connection, healthy=True)  # handed over ...
    waiting.cancel()  # ... as the waiter is cancelled
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await connections.acquire() is connection and len(made) == 1


async def test_a_failed_connect_frees_its_slot() -> None:
    attempts = 0

    async def connect() -> Any:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise OSError("refused")
        return FakeConnection()

    connections = ConnectionPool(connect, size=1, timeout=1.0)
    with pytest.raises(OSError, match="refused"):
        await connections.acquire()
    assert connections.size == 0
    await connections.acquire()
    assert connections.size == 1


async def test_a_freed_slot_goes_to_the_first_waiter_not_to_a_newcomer() -> None:
    connections, made = pool(size=1, timeout=0.5)
    broken = await connections.acquire()
    first = asyncio.create_task(connections.acquire())
    await asyncio.sleep(0.01)
    connections.release(broken, healthy=False)  # its slot is handed to ``first``
    newcomer = asyncio.create_task(connections.acquire())
    replacement = await first
    assert replacement is not broken and len(made) == 2
    await asyncio.sleep(0.01)
    assert not newcomer.done()  # waits its turn, the pool still holds one connection
    connections.release(replacement, healthy=True)
    assert await newcomer is replacement and connections.size == 1


async def test_a_slot_handed_to_a_waiter_that_gave_up_is_passed_on() -> None:
    connections, made = pool(size=1)
    broken = await connections.acquire()
    first = asyncio.create_task(connections.acquire())
    second = asyncio.create_task(connections.acquire())
    await asyncio.sleep(0.01)
    connections.release(broken, healthy=False)  # slot to ``first`` ...
    first.cancel()  # ... which gives up before using it
    with pytest.raises(asyncio.CancelledError):
        await first
    assert (await second) is not broken and connections.size == 1 and len(made) == 2


async def test_closing_the_pool_fails_its_waiters() -> None:
    connections, _ = pool(size=1)
    held = await connections.acquire()
    waiting = asyncio.create_task(connections.acquire())
    await asyncio.sleep(0.01)
    await connections.close()
    with pytest.raises(ConnectionError):
        await waiting
    connections.release(held, healthy=True)
    assert held.closed and connections.size == 0


async def test_invalidating_drops_idle_connections_now_and_those_in_use_on_return() -> None:
    connections, made = pool(size=3)
    in_use, idle = await connections.acquire(), await connections.acquire()
    connections.release(idle, healthy=True)
    connections.invalidate()
    assert idle.closed and not in_use.closed
    connections.release(in_use, healthy=True)
    assert in_use.closed and connections.size == 0
    fresh = await connections.acquire()
    connections.release(fresh, healthy=True)
    assert not fresh.closed and connections.size == 1 and len(made) == 3
